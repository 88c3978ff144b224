"""Wire protocol v1: message ids, header layout, payload layouts and limits, defined once.

    python -m firmware_bridge.protocol --c-header    # prints firmware/pxby_protocol.h

Everything the host (Python) and the device (the simulator and the C core) must agree on lives
here. The C header ``firmware/pxby_protocol.h`` is generated from this module
(``python -m firmware_bridge.vectors --write`` rewrites it with the test vectors) and a test
checks that the committed copy matches, so the ids cannot drift apart. docs/protocol.md explains
the rules; this file is the reference for numbers.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, fields

from pxby_edge.constants import DEVICE_AUDIO_RATE

# -- versions ---------------------------------------------------------------------------------
# The header layout (first 8 bytes) and the HELLO / HELLO_ACK payloads are frozen across all
# versions, so that two sides of different versions can always tell each other so.
PROTOCOL_VERSION = 1
PROTOCOL_MIN = 1
PROTOCOL_MAX = 1
FIRMWARE_VERSION = (0, 1, 0)

# -- framing ----------------------------------------------------------------------------------
HEADER_FMT = "<BBBBHH"  # version, type, flags, channel, seq, ack
HEADER_SIZE = struct.calcsize(HEADER_FMT)
CRC_SIZE = 4
# The largest payload any v1 device may advertise; the decoder refuses longer frames before
# looking at them, so a stream of garbage without zeros cannot grow a buffer without bound.
MAX_PAYLOAD = 1024
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
# COBS adds one byte per 254 and one in front.
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 2

# -- message types ----------------------------------------------------------------------------
HELLO = 0x01
HELLO_ACK = 0x02
PING = 0x03
PONG = 0x04
ACK = 0x05
NAK = 0x06
RESET = 0x07
PALETTE = 0x10
TILES = 0x11
MAP_RECT = 0x12
COMMIT = 0x13
TEXT = 0x14
AUDIO_CFG = 0x20
AUDIO_CHUNK = 0x21
STATUS = 0x30
LOG = 0x31

MESSAGE_NAMES = {
    HELLO: "HELLO",
    HELLO_ACK: "HELLO_ACK",
    PING: "PING",
    PONG: "PONG",
    ACK: "ACK",
    NAK: "NAK",
    RESET: "RESET",
    PALETTE: "PALETTE",
    TILES: "TILES",
    MAP_RECT: "MAP_RECT",
    COMMIT: "COMMIT",
    TEXT: "TEXT",
    AUDIO_CFG: "AUDIO_CFG",
    AUDIO_CHUNK: "AUDIO_CHUNK",
    STATUS: "STATUS",
    LOG: "LOG",
}

# -- flags and channels -----------------------------------------------------------------------
F_RELIABLE = 0x01  # sequenced: the device accepts it only in order and acknowledges it
F_END = 0x02  # AUDIO_CHUNK: the last chunk of the sound (play out, do not wait for more)

CH_CONTROL = 0
CH_GRAPHICS = 1
CH_AUDIO = 2
CH_TEXT = 3
CH_LOG = 4

# NAK reasons
NAK_OUT_OF_ORDER = 1  # a reliable frame other than the expected one arrived
NAK_NO_SESSION = 2  # no HELLO since boot (or a stale session tag): the host must re-handshake
NAK_BAD_PAYLOAD = 3  # the frame passed its CRC but its payload is malformed or out of range
NAK_UNKNOWN_TYPE = 4

# audio sample formats (bit mask in the capabilities, one value in AUDIO_CFG)
AUDIO_U8 = 0x01  # unsigned 8-bit, 128 = silence
AUDIO_U4 = 0x02  # unsigned 4-bit, two per byte, high nibble first (the Game Boy wave RAM order)

# The device remembers where the stream jumps (a gap) inside its audio buffer at this many places,
# so the speaker is told each sample's true offset; past that, offsets run on (docs/protocol.md).
AUDIO_MARKS = 32

# -- Game Boy screen geometry -----------------------------------------------------------------
TILE_W = 8
TILE_BYTES = 16  # 8 rows x 2 bitplanes
SCREEN_W = 160
SCREEN_H = 144
MAP_W = SCREEN_W // TILE_W  # 20
MAP_H = SCREEN_H // TILE_W  # 18

# -- payload layouts --------------------------------------------------------------------------
# name -> (struct format of the fixed part, field names). Variable tails (tile data, map
# indices, samples, text) follow the fixed part and are described in docs/protocol.md.
PAYLOADS: dict[int, tuple[str, tuple[str, ...]]] = {
    HELLO: ("<BBIH", ("proto_min", "proto_max", "nonce", "max_payload")),
    HELLO_ACK: (
        "<BBBBBBIIHHBHIBBHIH",
        (
            "version",  # 0: no common version
            "proto_min",
            "proto_max",
            "fw_major",
            "fw_minor",
            "fw_patch",
            "nonce",
            "boot_id",
            "screen_w",
            "screen_h",
            "bpp",
            "tile_slots",
            "audio_rate",
            "audio_formats",
            "rx_window",
            "max_payload",
            "audio_buffer",
            "text_buffer",
        ),
    ),
    PING: ("<I", ("token",)),
    PONG: ("<I", ("token",)),
    # sack: bit i set = reliable frame (ack + 1 + i) is held by the device (selective repeat)
    ACK: ("<HIII", ("session", "audio_next", "audio_limit", "sack")),
    NAK: ("<HBHI", ("session", "reason", "expected", "sack")),
    RESET: ("", ()),
    PALETTE: ("<12B", tuple(f"{c}{i}" for i in range(4) for c in "rgb")),
    TILES: ("<H", ("first_slot",)),  # + n x 16 bytes
    MAP_RECT: ("<BBBB", ("x", "y", "w", "h")),  # + w*h uint16 slots, row by row
    COMMIT: ("<I", ("frame",)),
    TEXT: ("<B", ("append",)),  # + ASCII bytes
    AUDIO_CFG: ("<IBII", ("rate", "format", "start", "prebuffer")),
    AUDIO_CHUNK: ("<I", ("offset",)),  # + samples
    STATUS: (
        "<IIIIIIIIIII",
        (
            "audio_fill",
            "audio_capacity",
            "underruns",
            "gaps",
            "frames_ok",
            "crc_errors",
            "frames_bad",
            "dup_frames",
            "out_of_order",
            "commits",
            "samples_played",
        ),
    ),
    LOG: ("<B", ("level",)),  # + ASCII text
}

for _t, (_fmt, _names) in PAYLOADS.items():
    assert (len(struct.unpack(_fmt, bytes(struct.calcsize(_fmt)))) if _fmt else 0) == len(_names), _t


def seq_before(a: int, b: int) -> bool:
    """True when 16-bit sequence ``a`` comes before ``b`` (serial-number arithmetic, RFC 1982)."""
    return 0 < ((b - a) & 0xFFFF) < 0x8000


U32 = 0xFFFFFFFF  # sample offsets, counters and the device's millisecond timer are u32 and wrap


def offset_diff(a: int, b: int) -> int:
    """``a - b`` for 32-bit sample offsets that wrap: the signed distance in [-2**31, 2**31)."""
    return ((a - b + 0x80000000) & U32) - 0x80000000


def fixed_size(msg_type: int) -> int:
    fmt = PAYLOADS[msg_type][0]
    return struct.calcsize(fmt) if fmt else 0


def pack(msg_type: int, tail: bytes = b"", **values) -> bytes:
    """Payload of ``msg_type`` from named fields (all required) plus a variable tail."""
    fmt, names = PAYLOADS[msg_type]
    missing = [n for n in names if n not in values]
    extra = [n for n in values if n not in names]
    if missing or extra:
        raise ValueError(f"{MESSAGE_NAMES[msg_type]} needs fields {names}; missing {missing}, unknown {extra}")
    head = struct.pack(fmt, *(values[n] for n in names)) if fmt else b""
    return head + bytes(tail)


def unpack(msg_type: int, payload: bytes) -> tuple[dict, bytes]:
    """(fields, tail) of a payload; ``ValueError`` when it is shorter than its fixed part."""
    fmt, names = PAYLOADS[msg_type]
    n = fixed_size(msg_type)
    if len(payload) < n:
        raise ValueError(f"{MESSAGE_NAMES.get(msg_type, msg_type)} payload of {len(payload)} bytes, needs {n}")
    values = dict(zip(names, struct.unpack(fmt, payload[:n]))) if fmt else {}
    return values, bytes(payload[n:])


@dataclass(frozen=True)
class Capabilities:
    """What a device says about itself in HELLO_ACK. The defaults are the reference device's."""

    screen_w: int = SCREEN_W
    screen_h: int = SCREEN_H
    bpp: int = 2
    tile_slots: int = 384
    audio_rate: int = DEVICE_AUDIO_RATE
    audio_formats: int = AUDIO_U8 | AUDIO_U4
    rx_window: int = 8  # at most 32: the SACK bitmap
    max_payload: int = 512
    audio_buffer: int = 4096  # samples
    text_buffer: int = 256

    def as_fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_fields(cls, values: dict) -> Capabilities:
        return cls(**{f.name: int(values[f.name]) for f in fields(cls)})


def c_header() -> str:
    """firmware/pxby_protocol.h, generated from the constants above."""
    lines = [
        "/* Generated by `python -m firmware_bridge.vectors --write` from firmware_bridge/protocol.py.",
        " * Do not edit: change protocol.py and regenerate. */",
        "#ifndef PXBY_PROTOCOL_H",
        "#define PXBY_PROTOCOL_H",
        "",
    ]

    def define(name, value):
        lines.append(f"#define PXBY_{name} {value}")

    for name in (
        "PROTOCOL_VERSION PROTOCOL_MIN PROTOCOL_MAX HEADER_SIZE CRC_SIZE MAX_PAYLOAD MAX_FRAME MAX_ENCODED "
        "F_RELIABLE F_END CH_CONTROL CH_GRAPHICS CH_AUDIO CH_TEXT CH_LOG NAK_OUT_OF_ORDER NAK_NO_SESSION "
        "NAK_BAD_PAYLOAD NAK_UNKNOWN_TYPE AUDIO_U8 AUDIO_U4 AUDIO_MARKS TILE_W TILE_BYTES SCREEN_W SCREEN_H MAP_W MAP_H"
    ).split():
        define(name, getattr(sys.modules[__name__], name))
    define("FW_MAJOR", FIRMWARE_VERSION[0])
    define("FW_MINOR", FIRMWARE_VERSION[1])
    define("FW_PATCH", FIRMWARE_VERSION[2])
    lines.append("")
    for t, name in MESSAGE_NAMES.items():
        define(f"MSG_{name}", f"0x{t:02X}")
    lines.append("")
    for t, name in MESSAGE_NAMES.items():
        define(f"{name}_FIXED", fixed_size(t))
    lines += ["", "#endif", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--c-header" in sys.argv:
        sys.stdout.write(c_header())
