"""The pure frame codec: ``encode(msg) -> bytes`` and ``Decoder.feed(data) -> [Message | BadFrame]``.

    python -c "from firmware_bridge.frame import *; print(Decoder().feed(encode(Message(type=3, payload=b'hi'))))"

A frame on the wire is ``COBS(header | payload | CRC-32C(header | payload)) 0x00``. The 0x00
delimiter lets a receiver that lost sync (noise, a dropped byte, a device that just booted)
find the next frame at the next zero. Nothing in a frame is read before its CRC passes: the
decoder only counts bytes until then, and refuses to buffer more than ``MAX_ENCODED`` of them.
Bad input is returned as a ``BadFrame`` with a reason, never raised, so a reading loop never
stops on noise. No I/O and no clock here: the link and the simulator drive it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union

from firmware_bridge import protocol as pr
from firmware_bridge.errors import FrameError

# -- CRC-32C (Castagnoli, reflected 0x82F63B78): better error detection than CRC-32 on short
# frames, and the same polynomial as iSCSI/ext4, so hardware CRC units often have it.


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
    c = crc ^ 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# -- COBS -------------------------------------------------------------------------------------


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result holds no 0x00."""
    out = bytearray()
    for part in bytes(data).split(b"\x00"):
        # each zero-free run longer than 254 is cut into 254-byte blocks marked 0xFF
        while len(part) >= 254:
            out.append(0xFF)
            out += part[:254]
            part = part[254:]
        out.append(len(part) + 1)
        out += part
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    """Inverse of ``cobs_encode``; None when ``data`` is not valid COBS."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            return None
        block = data[i + 1 : end]
        if 0 in block:
            return None
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One decoded frame. ``seq`` counts reliable frames; ``ack`` is the device's cumulative
    acknowledgement (next sequence it expects) or, from the host, the session tag."""

    type: int
    payload: bytes = b""
    flags: int = 0
    channel: int = 0
    seq: int = 0
    ack: int = 0
    version: int = pr.PROTOCOL_VERSION

    @property
    def name(self) -> str:
        return pr.MESSAGE_NAMES.get(self.type, f"0x{self.type:02X}")


@dataclass(frozen=True)
class BadFrame:
    """Bytes between two delimiters that are not a frame, and why."""

    reason: str  # "cobs" | "short" | "crc" | "too_long" | "version"
    size: int  # bytes dropped (encoded)


Decoded = Union[Message, BadFrame]

BAD_REASONS = ("cobs", "short", "crc", "too_long", "version")


def encode(msg: Message) -> bytes:
    """Wire bytes of ``msg``, delimiter included."""
    if len(msg.payload) > pr.MAX_PAYLOAD:
        raise FrameError(f"{msg.name} payload of {len(msg.payload)} bytes exceeds the {pr.MAX_PAYLOAD}-byte limit")
    for name, value, top in (
        ("version", msg.version, 0xFF),
        ("type", msg.type, 0xFF),
        ("flags", msg.flags, 0xFF),
        ("channel", msg.channel, 0xFF),
        ("seq", msg.seq, 0xFFFF),
        ("ack", msg.ack, 0xFFFF),
    ):
        if not 0 <= value <= top:
            raise FrameError(f"{name} {value} out of range 0..{top}")
    body = struct.pack(pr.HEADER_FMT, msg.version, msg.type, msg.flags, msg.channel, msg.seq, msg.ack) + bytes(msg.payload)
    return cobs_encode(body + struct.pack("<I", crc32c(body))) + b"\x00"


def parse(body: bytes, versions: tuple[int, int] = (pr.PROTOCOL_MIN, pr.PROTOCOL_MAX)) -> Decoded:
    """A COBS-decoded frame body to a message, checking size, CRC, then the header."""
    if len(body) < pr.HEADER_SIZE + pr.CRC_SIZE:
        return BadFrame("short", len(body))
    if len(body) > pr.MAX_FRAME:
        return BadFrame("too_long", len(body))
    (crc,) = struct.unpack_from("<I", body, len(body) - pr.CRC_SIZE)
    if crc32c(body[: -pr.CRC_SIZE]) != crc:
        return BadFrame("crc", len(body))
    version, mtype, flags, channel, seq, ack = struct.unpack_from(pr.HEADER_FMT, body)
    # HELLO and HELLO_ACK have a frozen layout, so they are read whatever the version: that is how
    # two sides of different versions learn that they differ.
    if not versions[0] <= version <= versions[1] and mtype not in (pr.HELLO, pr.HELLO_ACK):
        return BadFrame("version", len(body))
    return Message(mtype, bytes(body[pr.HEADER_SIZE : -pr.CRC_SIZE]), flags, channel, seq, ack, version)


class Decoder:
    """Streaming frame decoder: feed any bytes, get the messages and bad frames they complete.

    Memory is bounded: at most ``max_encoded`` bytes are kept between delimiters; a longer run
    is dropped as ``too_long`` when its delimiter arrives.
    """

    def __init__(self, max_encoded: int = pr.MAX_ENCODED, versions: tuple[int, int] = (pr.PROTOCOL_MIN, pr.PROTOCOL_MAX)):
        self.max_encoded = max_encoded
        self.versions = versions
        self._buf = bytearray()
        self._overflow = 0

    def feed(self, data: bytes) -> list[Decoded]:
        out: list[Decoded] = []
        data = bytes(data)
        start = 0
        while True:
            end = data.find(b"\x00", start)
            chunk = data[start:] if end < 0 else data[start:end]
            room = self.max_encoded - len(self._buf)
            if len(chunk) > room:
                self._overflow += len(chunk) - max(room, 0)
                chunk = chunk[: max(room, 0)]
            self._buf += chunk
            if end < 0:
                return out
            start = end + 1
            if self._overflow:
                out.append(BadFrame("too_long", len(self._buf) + self._overflow))
            elif self._buf:
                body = cobs_decode(bytes(self._buf))
                out.append(BadFrame("cobs", len(self._buf)) if body is None else parse(body, self.versions))
            # empty frames (two zeros in a row) are idle fill, not errors
            self._buf.clear()
            self._overflow = 0

    @property
    def pending(self) -> int:
        """Bytes waiting for their delimiter."""
        return len(self._buf)
