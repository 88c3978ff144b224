"""The host end of the link: a pure protocol state machine (``HostSession``) and a port driver (``Link``).

    python -c "from firmware_bridge.link import Link; l = Link('loop://'); print(l)"

``HostSession`` knows nothing of ports or clocks: ``receive(data, now_ms)`` takes the device's
bytes, ``poll(now_ms)`` returns the bytes to send now. It does the handshake (HELLO with a
version range and a nonce; HELLO_ACK with the device's capabilities), reliable in-order
delivery of graphics and control messages (sequence numbers, a window, cumulative ACKs,
go-back-N retransmission on NAK or timeout with exponential back-off), audio chunks addressed by
sample offset under credits (the device says up to which offset it has room), a heartbeat
(PING when the line is quiet) and re-handshake after a device reset (NAK "no session") or
silence. After every handshake it calls ``on_session`` so the caller can redraw a device that
may have lost its screen. ``Link`` opens any pyserial URL and pumps bytes between the port and
the session with the real clock, turning silence into ``LinkTimeout`` naming port and baud; it is
one ``PumpedLink``, the base every transport's link shares (``firmware_bridge/transports.py``).
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from firmware_bridge import protocol as pr
from firmware_bridge.errors import CapabilityError, LinkError, LinkTimeout, ProtocolVersionError
from firmware_bridge.frame import BadFrame, Decoder, Message, encode
from firmware_bridge.ports import port_error


@dataclass
class _Sent:
    seq: int
    wire: bytes
    mtype: int
    payload: bytes
    channel: int
    flags: int
    sent_ms: float = 0.0  # when its last byte left (estimated from the line rate)
    retransmitted: bool = False
    sacked: bool = False  # the device holds it (selective ACK): never resend

    @property
    def payload_len(self) -> int:
        return len(self.payload)


class RttEstimator:
    """The retransmission timeout from measured round trips: docs/protocol.md, "Reliability", gives the rule
    (RFC 6298, its two guards for a slow device, the back-off) and why; this is that paragraph in code.

    ``sample`` takes a round trip (Karn's rule is the caller's), ``timed_out`` doubles the timeout until the
    next sample, ``rto`` is the timeout now: ``initial_ms`` until ``warmup`` samples, never below 1.25 × the
    slowest of the last ``recent``, within ``floor_ms``..``ceiling_ms``.
    """

    def __init__(self, initial_ms: int = 150, floor_ms: int = 30, ceiling_ms: int = 1000, *, warmup: int = 3,
                 recent: int = 32):
        self.initial, self.floor, self.ceiling, self.warmup = initial_ms, floor_ms, ceiling_ms, warmup
        self.srtt: Optional[float] = None
        self.rttvar = 0.0
        self.samples = 0
        self.recent: deque = deque(maxlen=recent)
        self.backoff = 1

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.samples += 1
        self.recent.append(rtt)
        self.backoff = 1

    def timed_out(self) -> None:
        self.backoff = min(self.backoff * 2, 64)

    @property
    def rto(self) -> int:
        if self.srtt is None:
            base = float(self.initial)
        else:
            base = max(self.srtt + 4 * self.rttvar, 1.25 * max(self.recent))
            if self.samples < self.warmup:
                base = max(base, self.initial)
        return int(min(self.ceiling, max(self.floor, base) * self.backoff))


class HostSession:
    """The protocol state machine of the host, clocked by the caller's ``now_ms``."""

    COUNTERS = ("frames_sent", "bytes_sent", "bytes_received", "frames_received", "crc_errors", "bad_frames",
                "retransmits", "timeouts", "naks", "reconnects", "device_resets", "pings", "audio_chunks",
                "audio_samples_sent", "payload_bytes_acked")

    def __init__(
        self,
        *,
        max_payload: int = pr.MAX_PAYLOAD,
        window: int = 32,
        rto_ms: int = 150,
        rto_min_ms: int = 30,
        rto_max_ms: int = 1000,
        ping_ms: int = 100,
        silence_ms: int = 2000,
        nak_holdoff_ms: int = 5,
        line_bps: Optional[float] = None,
        hello_ms: int = 30,
        versions: tuple[int, int] = (pr.PROTOCOL_MIN, pr.PROTOCOL_MAX),
        need: Optional[dict] = None,
        seed: Optional[int] = None,
        on_session: Optional[Callable[[HostSession], None]] = None,
    ):
        self.want_payload = max_payload
        self.want_window = window
        self.rtt = RttEstimator(rto_ms, rto_min_ms, rto_max_ms)
        self.ping_ms = ping_ms
        self.silence_ms = silence_ms
        self.hello_ms = hello_ms
        self.nak_holdoff = nak_holdoff_ms
        # bytes per second the line carries (baud / 10), or None for ptys and sockets: on a slow
        # line a frame's round trip starts when its last byte leaves, not when it was queued
        self.line_bps = line_bps
        self.versions = versions
        self.need = dict(need or {})
        self.on_session = on_session
        self._rng = random.Random(seed)
        self.decoder = Decoder(versions=(1, 255))
        self.counters = dict.fromkeys(self.COUNTERS, 0)
        self._init_state()

    def _init_state(self) -> None:
        """Everything a session learns or keeps while it runs, as at its start."""
        self._tx_done = 0.0
        self._replay: list = []
        self.loss = 0.0  # smoothed fraction of reliable frames that needed resending
        self.state = "closed"
        self.epoch = 0
        self.caps: Optional[pr.Capabilities] = None
        self.boot_id: Optional[int] = None
        self.tag = 0
        self.last_status: dict = {}
        self.history: deque = deque(maxlen=64)  # (now_ms, what): handshakes, resets, silences
        self._cfg_seq_pending: Optional[int] = None
        self._reset_reliable()
        self._audio_clear()
        self._out = bytearray()
        self._now = 0
        self.handshake_since: Optional[int] = None
        self.ready_since: Optional[int] = None

    @property
    def rto(self) -> int:
        """The retransmission timeout now (ms)."""
        return self.rtt.rto

    @property
    def srtt(self) -> Optional[float]:
        return self.rtt.srtt

    # -- reliable queue ----------------------------------------------------------------------
    def _reset_reliable(self) -> None:
        self.pending: deque = deque()  # (type, payload, channel, flags) not yet given a sequence number
        self.in_flight: deque = deque()  # _Sent, oldest first
        self.next_seq = 0
        self._rto_deadline: Optional[int] = None
        self._last_timeout = -(10**9)

    @property
    def backlog(self) -> int:
        """Reliable messages not yet acknowledged (queued or in flight)."""
        return len(self.pending) + len(self.in_flight)

    @property
    def max_payload(self) -> int:
        return min(self.want_payload, self.caps.max_payload) if self.caps else self.want_payload

    @property
    def window(self) -> int:
        return max(1, min(self.want_window, self.caps.rx_window)) if self.caps else 1

    def queue(self, mtype: int, payload: bytes, channel: int = pr.CH_CONTROL) -> None:
        """Send ``payload`` reliably, in order with every other queued message."""
        if len(payload) > self.max_payload:
            raise LinkError(
                f"{pr.MESSAGE_NAMES[mtype]} payload of {len(payload)} bytes exceeds the link's {self.max_payload}"
            )
        self.pending.append((mtype, bytes(payload), channel, pr.F_RELIABLE))

    # -- audio -------------------------------------------------------------------------------
    def _audio_clear(self) -> None:
        self.audio_cfg: Optional[dict] = None
        self.audio_buf = np.zeros(0, dtype=np.uint8)  # samples not yet sent; audio_buf[0] is offset audio_sent
        self.audio_sent = 0
        self.audio_end = False
        self.audio_end_sent = False
        self.audio_done = False  # the end mark was acknowledged
        self.audio_limit = 0
        self.audio_hold = 0  # samples to gather before the first chunk (the host-side prebuffer)
        self.audio_cfg_seq: Optional[int] = None

    def audio_start(self, rate: int, fmt: int, prebuffer: int = 0, device_prebuffer: int = 0, start: int = 0) -> None:
        """Open a sound at sample ``start``: samples follow with ``audio_push``."""
        if self.caps is not None:
            if rate != self.caps.audio_rate:
                raise CapabilityError(f"device plays {self.caps.audio_rate} Hz, asked for {rate} Hz")
            if not fmt & self.caps.audio_formats:
                raise CapabilityError(f"device does not take audio format {fmt} (formats mask {self.caps.audio_formats})")
            device_prebuffer = min(device_prebuffer, self.caps.audio_buffer)
        self.audio_buf = np.zeros(0, dtype=np.uint8)
        self.audio_sent = start
        self.audio_end = self.audio_end_sent = self.audio_done = False
        self.audio_hold = prebuffer
        self.audio_cfg = dict(rate=rate, format=fmt, start=start, prebuffer=device_prebuffer)
        self._queue_audio_cfg()

    def _queue_audio_cfg(self) -> None:
        cfg = dict(self.audio_cfg, start=self.audio_sent & pr.U32)
        self.audio_limit = 0
        self.audio_cfg_seq = None
        # the cfg gets its sequence number when it leaves `pending`; chunks wait for its ACK
        self.queue(pr.AUDIO_CFG, pr.pack(pr.AUDIO_CFG, **cfg), pr.CH_AUDIO)

    def audio_push(self, samples, end: bool = False) -> None:
        """Append device-rate samples (values 0..255 for u8, 0..15 for u4) to the sound."""
        samples = np.asarray(samples, dtype=np.uint8).reshape(-1)
        self.audio_buf = np.concatenate([self.audio_buf, samples]) if self.audio_buf.size else samples.copy()
        self.audio_end = self.audio_end or end

    @property
    def audio_copies(self) -> int:
        """How many times each audio chunk is sent: 1 on a clean line, up to 3 when frames get lost."""
        return 1 if self.loss < 0.1 else (2 if self.loss < 0.35 else 3)

    @property
    def audio_pending(self) -> int:
        """Samples given to ``audio_push`` that have not left yet."""
        return int(self.audio_buf.size) + (1 if self.audio_end and not self.audio_done else 0)

    def _audio_chunks(self) -> None:
        if self.audio_cfg is None or self.audio_cfg_seq is None or self.state != "ready":
            return
        if self.audio_hold and self.audio_buf.size < self.audio_hold and not self.audio_end:
            return
        self.audio_hold = 0
        u4 = self.audio_cfg["format"] == pr.AUDIO_U4
        per_byte = 2 if u4 else 1
        cap = (self.max_payload - pr.fixed_size(pr.AUDIO_CHUNK)) * per_byte
        while True:
            if u4 and self.audio_end and self.audio_buf.size % 2:
                self.audio_buf = np.append(self.audio_buf, np.uint8(8))  # pad the last byte with silence
            room = self.audio_limit - self.audio_sent
            n = min(cap, room, int(self.audio_buf.size))
            if u4:
                n -= n % 2
            if n <= 0:
                break
            # small chunks waste header bytes: wait for a fuller one unless it is the last
            if n < min(cap, 64) and not (self.audio_end and n == self.audio_buf.size):
                return
            chunk = self.audio_buf[:n]
            tail = (chunk[0::2] << 4 | chunk[1::2]).astype(np.uint8).tobytes() if u4 else chunk.tobytes()
            msg = Message(pr.AUDIO_CHUNK, pr.pack(pr.AUDIO_CHUNK, tail, offset=self.audio_sent & pr.U32), 0, pr.CH_AUDIO, 0, self.tag)
            # audio is never resent (late is useless), so on a lossy line it goes more than once
            # up front; the device drops the copies it already has by their offset
            for _ in range(self.audio_copies):
                self._emit(msg)
            self.counters["audio_chunks"] += 1
            self.counters["audio_samples_sent"] += n
            self.audio_sent += n
            self.audio_buf = self.audio_buf[n:]
        if self.audio_end and not self.audio_end_sent and self.audio_buf.size == 0:
            # the end mark goes reliably and in order: once it is acknowledged, every chunk sent
            # before it has arrived (or was lost for good), so "flushed" means "at the device"
            self.pending.append((pr.AUDIO_CHUNK, pr.pack(pr.AUDIO_CHUNK, offset=self.audio_sent & pr.U32), pr.CH_AUDIO,
                                 pr.F_RELIABLE | pr.F_END))
            self.audio_end_sent = True

    # -- state -------------------------------------------------------------------------------
    def connect(self, now_ms: int) -> None:
        """Start (or restart) the handshake."""
        if self.state == "ready":
            self.counters["reconnects"] += 1
        self.state = "handshake"
        self.nonce = self._rng.getrandbits(32)
        self.tag = (self.nonce & 0xFFFF) or 1
        self.handshake_since = now_ms
        self._hello_every = self.hello_ms
        self._next_hello = now_ms
        self.hellos_sent = 0

    def _emit(self, msg: Message) -> None:
        self._write(encode(msg))
        self.counters["frames_sent"] += 1

    def _write(self, wire: bytes) -> float:
        """Queue ``wire`` for the port; returns when its last byte will have left (ms)."""
        self._out += wire
        self.counters["bytes_sent"] += len(wire)
        if self.line_bps:
            self._tx_done = max(self._tx_done, self._now) + len(wire) * 1000.0 / self.line_bps
        else:
            self._tx_done = self._now
        return self._tx_done

    def poll(self, now_ms: int) -> bytes:
        """Bytes to write now: HELLO retries, pings, retransmissions, audio, new frames."""
        if self.state == "ready" and now_ms - self._now > self.silence_ms // 2:
            # we were not polled for a long while (a slow import, a stalled generator): the
            # device's answers waited in the port, so this quiet is ours, not the device's
            self._last_rx = max(self._last_rx, now_ms - self.ping_ms)
        self._now = now_ms
        if self.state == "handshake" and now_ms >= self._next_hello:
            self._emit(Message(pr.HELLO, pr.pack(pr.HELLO, proto_min=self.versions[0], proto_max=self.versions[1],
                                                nonce=self.nonce, max_payload=self.want_payload)))
            self.hellos_sent += 1
            if self.hellos_sent >= 5:  # quick tries first (a reset device is back at once), then back off
                self._hello_every = min(int(self._hello_every * 1.5), 500)
            self._next_hello = now_ms + self._hello_every
        elif self.state == "ready":
            quiet = now_ms - self._last_rx
            if quiet >= self.silence_ms:
                self.history.append((now_ms, "silent"))
                self.connect(now_ms)  # the device went away: find it again
                return self.poll(now_ms)
            if quiet >= self.ping_ms and now_ms - self._last_ping >= self.ping_ms:
                self._last_ping = now_ms
                self.counters["pings"] += 1
                self._emit(Message(pr.PING, pr.pack(pr.PING, token=now_ms & 0xFFFFFFFF), 0, pr.CH_CONTROL, 0, self.tag))
            if self.in_flight and self._rto_deadline is not None and now_ms >= self._rto_deadline:
                self.counters["timeouts"] += 1
                if self._last_rx <= self._last_timeout:
                    # nothing heard since the last timeout: the device is busy or the line is
                    # saturated, so back off; a device that talks but lost a frame gets it at once
                    self.rtt.timed_out()
                self._last_timeout = now_ms
                self._retransmit(0, now_ms)
            self._audio_chunks()
            while self.pending and len(self.in_flight) < self.window:
                mtype, payload, channel, flags = self.pending.popleft()
                seq = self.next_seq
                self.next_seq = (seq + 1) & 0xFFFF
                if mtype == pr.AUDIO_CFG and self.audio_cfg_seq is None:
                    self._cfg_seq_pending = seq
                wire = encode(Message(mtype, payload, flags, channel, seq, self.tag))
                done = self._write(wire)
                self.in_flight.append(_Sent(seq, wire, mtype, payload, channel, flags, done))
                self.counters["frames_sent"] += 1
                if self._rto_deadline is None:
                    self._rto_deadline = done + self.rto
        out, self._out = bytes(self._out), bytearray()
        return out

    def drop_unacked(self) -> None:
        """Forget every reliable message not yet acknowledged (a redraw is about to supersede them)."""
        self.pending.clear()
        self._replay = []

    def _retransmit(self, start_index: int, now_ms: int) -> None:
        """Timeout: resend every frame in flight the device has not said it holds."""
        self._now = now_ms
        for sent in list(self.in_flight)[start_index:]:
            if not sent.sacked:
                self._resend(sent)
        if self.in_flight:
            self._rto_deadline = max(now_ms, self.in_flight[0].sent_ms) + self.rto

    def receive(self, data: bytes, now_ms: int) -> None:
        self.counters["bytes_received"] += len(data)
        for item in self.decoder.feed(data):
            if isinstance(item, BadFrame):
                self.counters["crc_errors" if item.reason == "crc" else "bad_frames"] += 1
                continue
            self.counters["frames_received"] += 1
            self._on_message(item, now_ms)

    def _on_message(self, msg: Message, now_ms: int) -> None:
        try:
            fields, tail = pr.unpack(msg.type, msg.payload) if msg.type in pr.PAYLOADS else ({}, b"")
        except ValueError:
            self.counters["bad_frames"] += 1
            return
        if msg.type == pr.HELLO_ACK:
            if self.state == "handshake" and fields["nonce"] == self.nonce:
                self._handshake_done(fields, now_ms)
            return
        if self.state != "ready":
            return
        self._last_rx = now_ms
        if msg.type == pr.NAK and fields["reason"] == pr.NAK_NO_SESSION:
            # the device rebooted (or never heard our HELLO): start over, then redraw
            self.counters["device_resets"] += 1
            self.history.append((now_ms, "no session"))
            self.connect(now_ms)
        elif msg.type in (pr.ACK, pr.NAK):
            self._on_ack(msg, fields, now_ms)
        elif msg.type == pr.PONG:
            # the token is our clock when we pinged: a clean round-trip sample even when every
            # data frame got retransmitted (which Karn's rule leaves without one)
            self._rtt_sample((now_ms - fields["token"]) & pr.U32)
        elif msg.type == pr.STATUS:
            self.last_status = fields

    def _on_ack(self, msg: Message, fields: dict, now_ms: int) -> None:
        if fields["session"] != self.tag:
            return  # left over from an earlier session
        self._acked(msg.ack, now_ms)
        if msg.type == pr.ACK and self.audio_cfg_seq is not None:
            # the device's offsets are u32 and wrap; ours count on: read its limit near where we are
            limit = self.audio_sent + pr.offset_diff(fields["audio_limit"], self.audio_sent)
            self.audio_limit = max(self.audio_limit, limit)
        if msg.type == pr.NAK:
            self.counters["naks"] += 1
        if fields["sack"] or (msg.type == pr.NAK and fields["reason"] == pr.NAK_OUT_OF_ORDER):
            self._selective(msg.ack, fields["sack"], now_ms)

    def _acked(self, ack: int, now_ms: int) -> None:
        progressed = False
        while self.in_flight and 0 < ((ack - self.in_flight[0].seq) & 0xFFFF) <= len(self.in_flight):
            sent = self.in_flight.popleft()
            if not sent.retransmitted:
                self.loss *= 0.95
            # Karn: no sample from a resent frame; none either from one the device held behind
            # a hole (its ACK waited for the hole); only the frame that caused this ACK counts
            if not sent.retransmitted and not sent.sacked and ((sent.seq + 1) & 0xFFFF) == ack:
                self._rtt_sample(max(0.0, now_ms - sent.sent_ms))
            self.counters["payload_bytes_acked"] += sent.payload_len
            if sent.mtype == pr.AUDIO_CHUNK and sent.flags & pr.F_END:
                self.audio_done = True
            if getattr(self, "_cfg_seq_pending", None) == sent.seq:
                # the device has opened the sound: chunks may flow, into its whole buffer
                self.audio_cfg_seq = sent.seq
                self._cfg_seq_pending = None
                self.audio_limit = max(self.audio_limit, self.audio_sent + (self.caps.audio_buffer if self.caps else 0))
            progressed = True
        if progressed:
            self._rto_deadline = max(now_ms, self.in_flight[0].sent_ms) + self.rto if self.in_flight else None

    def _rtt_sample(self, rtt: float) -> None:
        self.rtt.sample(rtt)

    def _selective(self, ack: int, sack: int, now_ms: int) -> None:
        """Resend the holes the device reported: frames below its highest held one that it lacks."""
        highest = ack  # the hole itself is always missing
        for sent in self.in_flight:
            d = ((sent.seq - ack) & 0xFFFF) - 1
            if 0 <= d < 32 and sack >> d & 1:
                sent.sacked = True
                highest = sent.seq
        # a frame resent less than a round trip ago may still be on its way: leave it
        holdoff = max(self.nak_holdoff, 1.5 * self.srtt) if self.srtt is not None else self.nak_holdoff
        self._now = now_ms
        for sent in self.in_flight:
            if sent.sacked or (sent.seq != highest and not pr.seq_before(sent.seq, highest)):
                continue
            if now_ms - sent.sent_ms >= holdoff:
                self._resend(sent)

    def _resend(self, sent: _Sent) -> None:
        first = self.in_flight and self.in_flight[0] is sent
        sent.retransmitted = True
        sent.sent_ms = self._write(sent.wire)
        self.counters["retransmits"] += 1
        self.loss += 0.05 * (1.0 - self.loss)
        if first:
            self._rto_deadline = sent.sent_ms + self.rto

    def _handshake_done(self, fields: dict, now_ms: int) -> None:
        if fields["version"] == 0:
            raise ProtocolVersionError(
                f"the device speaks protocol v{fields['proto_min']}..v{fields['proto_max']} "
                f"(firmware {fields['fw_major']}.{fields['fw_minor']}.{fields['fw_patch']}), this host "
                f"v{self.versions[0]}..v{self.versions[1]}: update the firmware or pxby-edge so that they overlap"
            )
        caps = pr.Capabilities.from_fields(fields)
        check_capabilities(caps, self.need)
        self.caps = caps
        self.boot_id = fields["boot_id"]
        if self.hellos_sent == 1:
            self._rtt_sample(now_ms - self.handshake_since)
        self.state = "ready"
        self.epoch += 1
        self.history.append((now_ms, f"ready (boot {self.boot_id})"))
        self.ready_since = now_ms
        self._last_rx = now_ms
        self._last_ping = now_ms
        # whatever the old session did not get acknowledged goes again, in order, with new
        # sequence numbers (after the caller's redraw, which it may make redundant: see
        # ``drop_unacked``)
        self._replay = [(m.mtype, m.payload, m.channel, m.flags) for m in self.in_flight] + list(self.pending)
        self._reset_reliable()
        self._cfg_seq_pending = None
        if self.on_session is not None:
            self.on_session(self)
        self.pending.extend(m for m in self._replay if m[0] != pr.AUDIO_CFG)
        self._replay = []
        if self.audio_cfg is not None and not self.audio_done:
            # resume the sound where the host got to; what the reset swallowed is the device's gap
            self._queue_audio_cfg()


CAPABILITY_NAMES = {
    "screen_w": "screen width",
    "screen_h": "screen height",
    "bpp": "bits per pixel",
    "tile_slots": "tile slots",
    "audio_buffer": "audio buffer (samples)",
    "max_payload": "frame payload (bytes)",
    "rx_window": "receive window (frames)",
    "text_buffer": "text buffer (bytes)",
}


def check_capabilities(caps: pr.Capabilities, need: dict) -> None:
    """``CapabilityError`` listing every capability below what ``need`` asks for."""
    short = []
    for key, want in need.items():
        if key == "audio_rate":
            if want and caps.audio_rate != want:
                short.append(f"audio rate {caps.audio_rate} Hz (need {want} Hz)")
        elif getattr(caps, key) < want:
            short.append(f"{CAPABILITY_NAMES.get(key, key)} {getattr(caps, key)} (need {want})")
    if short:
        raise CapabilityError("the device is too small for this stream: " + ", ".join(short))


def monotonic_ms() -> int:
    """The real clock of the link and the simulator, in integer milliseconds."""
    return time.monotonic_ns() // 1_000_000


class PumpedLink(ABC):
    """What a ``Streamer`` drives: a ``HostSession`` and ``pump()``, the one method a transport writes.

    ``pump()`` moves bytes once between the session and the device; everything else (the handshake,
    waiting with a deadline, sending under the window, flushing) is written here once, on the
    session and ``clock()``. The subclasses: ``Link`` (a pyserial port and the real clock),
    ``virtual.VirtualLink`` (a simulated line to an in-process ``DeviceCore``, one simulated ms per
    pump) and ``gameboy.session.GameBoyLink`` (a ``VirtualLink`` whose device mirrors onto a Game Boy
    port). Single-threaded: the caller pumps it."""

    url: str = ""
    baud: Optional[int] = None
    connect_timeout_s: float = 3.0
    session: HostSession
    # the link's time in integer milliseconds: ``Link`` takes it as an argument (the real clock, or a test's),
    # ``VirtualLink`` counts one simulated ms per pump
    clock: Callable[[], int]

    @abstractmethod
    def pump(self, block: bool = True) -> None:
        """Move bytes once between the session and the device (waiting for some when ``block``)."""

    def open(self) -> PumpedLink:
        """Open the transport (nothing to open for an in-process one)."""
        return self

    def connect(self, timeout_s: Optional[float] = None) -> PumpedLink:
        """Open (if needed) and handshake; raises ``LinkTimeout`` if the device stays silent."""
        self.open()
        self.session.connect(self.clock())
        self._wait_ready(self.connect_timeout_s if timeout_s is None else timeout_s)
        return self

    def _where(self) -> str:
        return f"{self.url} at {self.baud} baud" if self.baud else self.url

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = self.clock() + int(timeout_s * 1000)
        while self.session.state != "ready":
            if self.clock() >= deadline:
                raise LinkTimeout(
                    f"device silent on {self._where()}: no answer to HELLO for {timeout_s:g} s "
                    f"(is it running pxby firmware or `pxby-edge handheld`, at this baud?)"
                )
            self.pump()

    def wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Pump until ``predicate()``; ``LinkTimeout`` naming ``what`` after ``timeout_s``."""
        deadline = self.clock() + int(timeout_s * 1000)
        while not predicate():
            if self.clock() >= deadline:
                raise LinkTimeout(f"{what}: no progress on {self._where()} for {timeout_s:g} s")
            self.pump()

    def send(self, mtype: int, payload: bytes, channel: int = pr.CH_CONTROL, timeout_s: float = 10.0) -> None:
        """Queue a reliable message, pumping first while the backlog is above two windows."""
        s = self.session
        self.wait(lambda: s.state == "ready" and s.backlog < 2 * s.window, timeout_s, "waiting for the device to take frames")
        s.queue(mtype, payload, channel)
        self.pump()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Pump until every reliable message is acknowledged and all audio has left."""
        s = self.session
        self.wait(lambda: s.state == "ready" and s.backlog == 0 and s.audio_pending == 0, timeout_s, "flushing")

    def close(self) -> None:  # noqa: B027 (optional: an in-process transport has nothing to close)
        """Close the transport (nothing to close for an in-process one)."""

    def __enter__(self) -> PumpedLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Link(PumpedLink):
    """A ``HostSession`` on a pyserial port (any URL ``serial.serial_for_url`` opens), on the real clock."""

    def __init__(self, url: str, baud: int = 115200, *, clock: Callable[[], int] = monotonic_ms, connect_timeout_s: float = 3.0,
                 reconnect_timeout_s: float = 10.0, read_wait_s: float = 0.002, **session_opts):
        self.url, self.baud, self.clock = url, baud, clock
        self.connect_timeout_s, self.reconnect_timeout_s = connect_timeout_s, reconnect_timeout_s
        self.read_wait_s = read_wait_s
        session_opts.setdefault("line_bps", baud / 10.0)
        self.session = HostSession(**session_opts)
        self.port = None

    def __repr__(self) -> str:
        return f"Link({self.url!r}, baud={self.baud}, state={self.session.state})"

    def open(self) -> Link:
        import serial

        from firmware_bridge.transports import socket_address

        if self.port is not None:
            return self
        socket_address(self.url)  # pyserial's own message for a bad socket:// URL names its logging options
        try:
            # exclusive: a second program on the same tty would steal half the bytes
            self.port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=self.read_wait_s,
                                              write_timeout=5.0, exclusive=True)
        except (serial.SerialException, OSError, ValueError, OverflowError, TypeError) as exc:
            raise port_error(self.url, exc) from exc
        return self

    def pump(self, block: bool = True) -> None:
        """Move bytes once: read what arrived (waiting up to ``read_wait_s`` if ``block``), then write."""
        port, s = self.port, self.session
        try:
            n = port.in_waiting
            data = port.read(n) if n else (port.read(1) if block else b"")
            if data:
                s.receive(data, self.clock())
            out = s.poll(self.clock())
            if out:
                port.write(out)
        except OSError as exc:  # pyserial's SerialException is an OSError too (a cable pulled, a socket closed)
            raise LinkError(f"{self.url}: {exc}") from exc
        if s.state == "handshake" and s.handshake_since is not None:
            if self.clock() - s.handshake_since > self.reconnect_timeout_s * 1000:
                raise LinkTimeout(
                    f"device silent on {self.url} at {self.baud} baud: lost for {self.reconnect_timeout_s:g} s"
                )

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None
