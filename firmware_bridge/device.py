"""The device side of the protocol as a pure state machine: what the firmware does, in Python.

    python -c "from firmware_bridge.device import DeviceCore; d = DeviceCore(); print(d.caps)"

``DeviceCore`` has the firmware's state (session, expected sequence, tile store, tile map,
front screen, text buffer, audio ring) and its limits (tile slots, receive frame size, audio
buffer in samples), and answers exactly as ``firmware/pxby_core.c`` does. No I/O, no clock:
``feed(data, now_ms)`` takes wire bytes, ``tick(now_ms)`` plays audio, ``take_output()`` returns
the bytes to send back. ``simulator.py`` puts it on a pty or a socket; the link benchmark wires
it to a host with a simulated baud rate.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional

import numpy as np

from firmware_bridge import protocol as pr
from firmware_bridge.display import DMG_PALETTE
from firmware_bridge.errors import LinkError
from firmware_bridge.frame import BadFrame, Decoder, Message, encode


def decode_tiles(data: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 Game Boy 2bpp tiles -> (n, 8, 8) shades (Pan Docs: low plane byte first, bit 7 left)."""
    data = np.asarray(data, dtype=np.uint8).reshape(-1, 8, 2)
    bits = np.arange(7, -1, -1, dtype=np.uint8)
    lo = (data[:, :, 0:1] >> bits) & 1
    hi = (data[:, :, 1:2] >> bits) & 1
    return (lo | (hi << 1)).astype(np.uint8)


NAK_REPEAT_MS = 5  # while a hole is open, remind the host this often
U32 = pr.U32


class DeviceCore:
    """One device: feed it wire bytes, get wire bytes back. Counters in ``counters``."""

    def __init__(
        self,
        caps: Optional[pr.Capabilities] = None,
        *,
        versions: tuple[int, int] = (pr.PROTOCOL_MIN, pr.PROTOCOL_MAX),
        boot_id: int = 1,
        on_commit: Optional[Callable[[np.ndarray, int], None]] = None,
        on_play: Optional[Callable[[int, np.ndarray], None]] = None,
        on_text: Optional[Callable[[str], None]] = None,
        on_audio_cfg: Optional[Callable[[int], None]] = None,
    ):
        caps = caps or pr.Capabilities()
        if caps.max_payload > pr.MAX_PAYLOAD:
            raise ValueError(f"max_payload {caps.max_payload} exceeds the protocol's {pr.MAX_PAYLOAD}")
        self.caps, self.versions, self.boot_id = caps, versions, boot_id
        # what the device does with what it decoded: the simulator draws and plays, tests record
        self.on_commit, self.on_play, self.on_text, self.on_audio_cfg = on_commit, on_play, on_text, on_audio_cfg
        # The receive buffer is sized from what the device accepts, so an oversize frame is
        # dropped while it streams in, before any of it is interpreted.
        frame = pr.HEADER_SIZE + caps.max_payload + pr.CRC_SIZE
        self.decoder = Decoder(max_encoded=frame + frame // 254 + 2, versions=(1, 255))
        self.map_w = caps.screen_w // pr.TILE_W
        self.map_h = caps.screen_h // pr.TILE_W
        self.tiles = np.zeros((caps.tile_slots, pr.TILE_BYTES), dtype=np.uint8)
        self.tilemap = self._identity_map()
        self.screen = np.zeros((caps.screen_h, caps.screen_w), dtype=np.uint8)
        self.palette = DMG_PALETTE
        self.text = bytearray()
        self.frame_no = 0
        self.session: Optional[int] = None
        self.expected = 0
        self.held: dict[int, Message] = {}  # early reliable frames, by sequence (at most rx_window - 1)
        self._nak_at = 0
        self.out = bytearray()
        self.counters = {k: 0 for k in pr.PAYLOADS[pr.STATUS][1]}
        self.counters.update(bytes_in=0, hellos=0, naks_sent=0, acks_sent=0, bad_payload=0, audio_overflow=0,
                             handler_errors=0)
        self._audio_reset()

    def _identity_map(self) -> np.ndarray:
        # at boot and after RESET, screen tile (x, y) shows slot y * map_w + x, so a host can
        # draw by sending tiles alone
        n = self.map_w * self.map_h
        return (np.arange(n, dtype=np.int64) % self.caps.tile_slots).reshape(self.map_h, self.map_w)

    # -- audio ring --------------------------------------------------------------------------
    def _audio_reset(self, rate: int = 0, fmt: int = 0, start: int = 0, prebuffer: int = 0) -> None:
        self.audio_rate = rate
        self.audio_format = fmt
        self.audio_next = start
        self.audio_prebuffer = prebuffer
        # (offset the speaker is told, samples uint8 array, starts at a remembered jump)
        self.ring: deque = deque()
        self._marks = 0  # jumps of the offsets waiting in the ring (at most pr.AUDIO_MARKS)
        self._tail_offset = start  # the offset told after the last buffered sample
        self.fill = 0
        self.playing = False
        self.ended = False
        self._due_milli = 0  # integer, as in the C core, so both play the same sample counts
        self._last_ms: Optional[int] = None
        self._played_since_ack = 0

    @property
    def audio_limit(self) -> int:
        # credits: the host may send samples up to this offset; anything it sends beyond the
        # next expected one occupies free room, whatever got lost in between
        return (self.audio_next + (self.caps.audio_buffer - self.fill)) & U32

    # -- I/O ---------------------------------------------------------------------------------
    def take_output(self) -> bytes:
        out, self.out = bytes(self.out), bytearray()
        return out

    def _send(self, mtype: int, payload: bytes = b"", channel: int = pr.CH_CONTROL) -> None:
        self.out += encode(Message(mtype, payload, 0, channel, 0, self.expected))

    def _ack(self) -> None:
        self._count("acks_sent")
        self._played_since_ack = 0
        self._send(pr.ACK, pr.pack(pr.ACK, session=self.session or 0, audio_next=self.audio_next,
                                   audio_limit=self.audio_limit, sack=self._sack()))

    def _nak(self, reason: int) -> None:
        self._count("naks_sent")
        self._send(pr.NAK, pr.pack(pr.NAK, session=self.session or 0, reason=reason, expected=self.expected,
                                   sack=self._sack()))

    def _sack(self) -> int:
        # bit i: frame expected + 1 + i is held. A held frame equal to ``expected`` (its hole was
        # just filled by a frame that is being refused) is delivered next, so it is no bit
        bits = 0
        for seq in self.held:
            ahead = (seq - self.expected) & 0xFFFF
            if 1 <= ahead <= 32:
                bits |= 1 << (ahead - 1)
        return bits

    def status_fields(self) -> dict:
        c = dict(self.counters)
        c["audio_fill"] = self.fill
        c["audio_capacity"] = self.caps.audio_buffer
        return {k: c[k] & 0xFFFFFFFF for k in pr.PAYLOADS[pr.STATUS][1]}

    def feed(self, data: bytes, now_ms: int = 0) -> None:
        self._count("bytes_in", len(data))
        for item in self.decoder.feed(data):
            if isinstance(item, BadFrame):
                self._count("crc_errors" if item.reason == "crc" else "frames_bad")
            else:
                self._count("frames_ok")
                self._on_message_guarded(item, now_ms)
        self.tick(now_ms)

    def _on_message_guarded(self, msg: Message, now_ms: int) -> None:
        # The device never dies from input: a frame whose handling fails is counted and refused,
        # and the loop goes on. ``handler_errors`` stays 0 in the differential test against the
        # C core, so this is a last line, not a way to hide a disagreement.
        # A ``LinkError`` is not the frame's fault: it comes from the owner's callback (a Game Boy link
        # behind ``on_commit`` that timed out) and must reach the owner's caller, never be counted here.
        try:
            self._on_message(msg, now_ms)
        except LinkError:
            raise
        except Exception:  # any failure of one frame must not stop the device
            self._count("handler_errors")
            self._count("bad_payload")
            self._nak(pr.NAK_BAD_PAYLOAD)

    def _on_message(self, msg: Message, now_ms: int) -> None:
        if len(msg.payload) > self.caps.max_payload:
            self._count("bad_payload")
            self._nak(pr.NAK_BAD_PAYLOAD)
            return
        if msg.type == pr.HELLO:
            self._hello(msg)
            return
        if msg.type in (pr.HELLO_ACK, pr.PONG, pr.ACK, pr.NAK, pr.STATUS, pr.LOG):
            return  # device-to-host messages echoed back: ignore
        if msg.version != pr.PROTOCOL_VERSION or self.session is None or msg.ack != self.session:
            self._nak(pr.NAK_NO_SESSION)
        elif msg.type == pr.PING:
            self._ping(msg)
        elif not msg.flags & pr.F_RELIABLE:
            self._unreliable(msg, now_ms)
        else:
            self._reliable(msg, now_ms)

    def _fields_or_nak(self, kind: int, msg: Message) -> Optional[dict]:
        """The payload's fields, or None after a NAK (bad payload) when it does not unpack."""
        try:
            return pr.unpack(kind, msg.payload)[0]
        except ValueError:
            self._nak(pr.NAK_BAD_PAYLOAD)
            return None

    def _ping(self, msg: Message) -> None:
        fields = self._fields_or_nak(pr.PING, msg)
        if fields is None:
            return
        self._send(pr.PONG, pr.pack(pr.PONG, token=fields["token"]))
        self._send(pr.STATUS, pr.pack(pr.STATUS, **self.status_fields()))
        self._ack()

    def _unreliable(self, msg: Message, now_ms: int) -> None:
        if msg.type != pr.AUDIO_CHUNK:
            self._count("bad_payload")
            self._nak(pr.NAK_UNKNOWN_TYPE)
        elif self._apply(msg, now_ms):
            self._ack()
        else:
            self._nak(pr.NAK_BAD_PAYLOAD)

    def _reliable(self, msg: Message, now_ms: int) -> None:
        if msg.seq == self.expected:
            self._deliver(msg, now_ms)
            # frames that came early, held in the window, follow in order
            while self.expected in self.held:
                self._deliver(self.held.pop(self.expected), now_ms)
            self._ack()
        elif pr.seq_before(msg.seq, self.expected):
            self._count("dup_frames")
            self._ack()
        else:
            self._count("out_of_order")
            ahead = (msg.seq - self.expected) & 0xFFFF
            if ahead < min(self.caps.rx_window, 33):
                if msg.seq in self.held:
                    self._count("dup_frames")
                self.held[msg.seq] = msg  # selective repeat: keep it, the host resends only the hole
            # every early frame is answered with the hole and the SACK bitmap: the host learns
            # exactly what to resend (and tick() repeats it while the hole stays open)
            self._nak_at = now_ms
            self._nak(pr.NAK_OUT_OF_ORDER)

    def _deliver(self, msg: Message, now_ms: int) -> None:
        self.expected = (self.expected + 1) & 0xFFFF
        # a malformed payload that passed its CRC is a host bug: skip it (and say so) rather
        # than stall the sequence forever
        if not self._apply(msg, now_ms):
            self._nak(pr.NAK_BAD_PAYLOAD)

    def _hello(self, msg: Message) -> None:
        fields = self._fields_or_nak(pr.HELLO, msg)
        if fields is None:
            return
        self._count("hellos")
        lo = max(fields["proto_min"], self.versions[0])
        hi = min(fields["proto_max"], self.versions[1])
        version = hi if lo <= hi else 0
        if version:
            # a new session: sequence from 0, audio stopped; the screen stays as it is (no
            # flicker) until the host redraws it
            self.session = fields["nonce"] & 0xFFFF or 1
            self.expected = 0
            self.held.clear()
            self._audio_reset()
        fw = pr.FIRMWARE_VERSION
        payload = pr.pack(
            pr.HELLO_ACK,
            version=version,
            proto_min=self.versions[0],
            proto_max=self.versions[1],
            fw_major=fw[0],
            fw_minor=fw[1],
            fw_patch=fw[2],
            nonce=fields["nonce"],
            boot_id=self.boot_id,
            **self.caps.as_fields(),
        )
        self._send(pr.HELLO_ACK, payload)

    # -- message effects ---------------------------------------------------------------------
    def _apply(self, msg: Message, now_ms: int) -> bool:
        try:
            fields, tail = pr.unpack(msg.type, msg.payload)
        except (KeyError, ValueError):
            self._count("bad_payload")
            return False
        handler = getattr(self, f"_do_{pr.MESSAGE_NAMES[msg.type].lower()}", None)
        ok = handler is not None and handler(fields, tail, msg, now_ms)
        if not ok:
            self._count("bad_payload")
        return bool(ok)

    def _do_reset(self, fields, tail, msg, now_ms) -> bool:
        self.tiles[:] = 0
        self.tilemap = self._identity_map()
        self.screen[:] = 0
        self.text.clear()
        self._audio_reset()
        return True

    def _do_palette(self, fields, tail, msg, now_ms) -> bool:
        if tail:
            return False
        v = [fields[f"{c}{i}"] for i in range(4) for c in "rgb"]
        self.palette = tuple(tuple(v[3 * i : 3 * i + 3]) for i in range(4))
        return True

    def _do_tiles(self, fields, tail, msg, now_ms) -> bool:
        first, n = fields["first_slot"], len(tail) // pr.TILE_BYTES
        if n == 0 or len(tail) % pr.TILE_BYTES or first + n > self.caps.tile_slots:
            return False
        self.tiles[first : first + n] = np.frombuffer(tail, dtype=np.uint8).reshape(n, pr.TILE_BYTES)
        return True

    def _do_map_rect(self, fields, tail, msg, now_ms) -> bool:
        x, y, w, h = fields["x"], fields["y"], fields["w"], fields["h"]
        if w == 0 or h == 0 or x + w > self.map_w or y + h > self.map_h or len(tail) != 2 * w * h:
            return False
        slots = np.frombuffer(tail, dtype="<u2").reshape(h, w)
        if int(slots.max()) >= self.caps.tile_slots:
            return False
        self.tilemap[y : y + h, x : x + w] = slots
        return True

    def _do_commit(self, fields, tail, msg, now_ms) -> bool:
        pix = decode_tiles(self.tiles)[self.tilemap]  # (map_h, map_w, 8, 8)
        self.screen = pix.transpose(0, 2, 1, 3).reshape(self.caps.screen_h, self.caps.screen_w).copy()
        self.frame_no = fields["frame"]
        self._count("commits")
        if self.on_commit is not None:
            self.on_commit(self.screen, self.frame_no)
        return True

    def _do_text(self, fields, tail, msg, now_ms) -> bool:
        if not fields["append"]:
            self.text.clear()
        self.text += tail
        del self.text[: max(0, len(self.text) - self.caps.text_buffer)]  # keep the newest
        if self.on_text is not None:
            self.on_text(self.text.decode("ascii", "replace"))
        return True

    def _do_audio_cfg(self, fields, tail, msg, now_ms) -> bool:
        if fields["rate"] != self.caps.audio_rate or fields["format"] not in (pr.AUDIO_U8, pr.AUDIO_U4):
            return False
        if not fields["format"] & self.caps.audio_formats or fields["prebuffer"] > self.caps.audio_buffer:
            return False
        self._audio_reset(fields["rate"], fields["format"], fields["start"], fields["prebuffer"])
        if self.on_audio_cfg is not None:
            self.on_audio_cfg(fields["start"])
        return True

    def _do_audio_chunk(self, fields, tail, msg, now_ms) -> bool:
        if not self.audio_format:
            return False
        raw = np.frombuffer(tail, dtype=np.uint8)
        if self.audio_format == pr.AUDIO_U4:
            raw = np.stack([raw >> 4, raw & 0x0F], axis=1).reshape(-1)
        # offsets wrap at 2**32 and are compared by their signed distance (docs/protocol.md)
        ahead, n = pr.offset_diff(fields["offset"], self.audio_next), len(raw)
        if n == 0:  # the end mark (sent reliably): what never came before it is a gap
            if ahead > 0:
                self._count("gaps", ahead)
                self.audio_next = fields["offset"]
            self.ended = self.ended or bool(msg.flags & pr.F_END)
            return True
        if ahead + n <= 0:
            self._count("dup_frames")  # late or repeated: already past it
            return True
        if ahead < 0:
            raw, ahead = raw[-ahead:], 0  # overlaps what we have: keep the new part
        if self.fill + len(raw) > self.caps.audio_buffer:
            self._count("audio_overflow")  # the host ignored its credits
            return True
        if ahead:
            self._count("gaps", ahead)
        offset = (self.audio_next + ahead) & U32
        self.ring.append((*self._told_offset(offset), raw.copy()))
        self._tail_offset = (self.ring[-1][0] + len(raw)) & U32
        self.fill += len(raw)
        self.audio_next = (offset + len(raw)) & U32
        if msg.flags & pr.F_END:
            self.ended = True
        return True

    def _told_offset(self, first: int) -> tuple[int, bool]:
        """(the offset the speaker is told for samples from ``first``, whether that is a jump to
        remember): exact while at most ``AUDIO_MARKS`` jumps wait in the buffer, then running on,
        as the firmware's fixed table of marks does."""
        if not self.ring or first == self._tail_offset:
            return first, False
        if self._marks < pr.AUDIO_MARKS:
            self._marks += 1
            return first, True
        return self._tail_offset, False

    def _count(self, name: str, n: int = 1) -> None:
        # the firmware's counters are u32 and wrap; so do these, or the two would disagree
        self.counters[name] = (self.counters[name] + n) & U32

    def tick(self, now_ms: int) -> None:
        """Play what is due at ``now_ms`` (the audio timer of the firmware); repeat a hole's NAK."""
        if self.held and self.session is not None and (now_ms - self._nak_at) & U32 >= NAK_REPEAT_MS:
            # the NAK or the resent frame was lost, and with its window full the host sends
            # nothing new that would make us say it again
            self._nak_at = now_ms
            self._nak(pr.NAK_OUT_OF_ORDER)
        if not self.audio_format:
            return
        if not self.playing:
            if self.fill and (self.fill >= max(1, self.audio_prebuffer) or self.ended):
                self.playing, self._last_ms, self._due_milli = True, now_ms, 0
            return
        # u32 arithmetic as the firmware's millisecond timer does it (it may wrap)
        self._due_milli = (self._due_milli + ((now_ms - self._last_ms) & U32) * self.audio_rate) & U32
        self._last_ms = now_ms
        want, self._due_milli = divmod(self._due_milli, 1000)
        want = self._play(want)
        if want:
            # ran dry: stop and wait for the prebuffer again (or stop for good after the last chunk)
            if not self.ended:
                self._count("underruns")
            self.playing = False
        if self.session is not None and self._played_since_ack >= max(1, self.caps.audio_buffer // 4):
            self._ack()  # room opened: give the host its credits without waiting for a chunk

    def _play(self, want: int) -> int:
        """Hand up to ``want`` due samples to the speaker; returns how many were missing."""
        while want and self.ring:
            offset, marked, samples = self.ring[0]
            if marked:
                self._marks -= 1
            take = min(want, len(samples))
            if self.on_play is not None:
                self.on_play(offset, samples[:take])
            self._count("samples_played", take)
            self.fill -= take
            want -= take
            self._played_since_ack += take
            if take == len(samples):
                self.ring.popleft()
            else:
                self.ring[0] = ((offset + take) & U32, False, samples[take:])
        return want
