"""The Game Boy link layer (docs/protocol.md, "Game Boy link layer"): packets, status bytes, host state machine.

    python -m firmware_bridge.gameboy.packets --c-header    # prints rom/packets.h (a test checks the committed copy)

The link port moves one byte each way per exchange, clocked by the host: the host shifts a byte
in while the Game Boy's status byte (loaded after the previous byte) shifts out. ``LinkHost`` is
pure: ``exchange(status) -> byte`` is called once per byte, whoever clocks it (spidev, PyBoy's
serial peer, an mGBA master, a test), so the same code paces real hardware and the emulators.
The ROM receives in its serial interrupt and queues whole packets (8 slots); it acknowledges a
packet once it is queued *and* a slot is free for the next one, so the host sends the next at
once and the Game Boy is never sent more than it can hold, while the ROM applies the queue in
order (VRAM in VBlank, flips, sound). ``ST_APPLIED`` in the ack says the queue is empty.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass

from firmware_bridge.errors import FrameError

SYNC = 0xA5
IDLE = 0x00  # what the host clocks while it waits: never taken for a packet start
MAX_LEN = 130  # VRAM: 2 address bytes + 128 data bytes (8 tiles)
VRAM_CHUNK = MAX_LEN - 2
SEQ_MOD = 63  # ACK is 0x80 | seq or 0xC0 | seq: seq <= 62 keeps 0xFF (a floating line) from being one

T_HELLO = 0x01  # open a session: blank screen and sound, expect seq + 1 next
T_VRAM = 0x02  # address (LE) + bytes to write into 0x8000..0x9FFF, inside VBlank
T_FLIP = 0x03  # map (0: 0x9800, 1: 0x9C00), BGP: shown from the next VBlank, acknowledged after it
T_SOUND = 0x04  # (register 0x10..0x3F, value) pairs; register 0xFF ends a frame (1/59.7 s)
# Game Boy Color (ignored, but checked and acknowledged, on a DMG): the next FLIP applies the palettes
T_PALETTE = 0x07  # the first palette (0..7), then 1..8 palettes of 4 colours, RGB555 little-endian
T_ATTR = 0x08  # address (LE) + bytes to write into VRAM bank 1 (tile attributes), 0x9800..0x9FFF

# Host bytes outside a packet that ask the ROM something; it answers in its status byte with the
# same high nibble (never an ACK's, an error's or ready/busy's): low nibble = the answer
Q_BUTTONS = 0x50  # A 1, B 2, Select 4, Start 8: pressed (gone down) since the last Q_CLEAR
Q_DPAD = 0x60  # Right 1, Left 2, Up 4, Down 8: the same
Q_CLEAR = 0x70  # forget the latched presses; bit 0: the ROM runs on a Game Boy Color
QUERIES = (Q_BUTTONS, Q_DPAD, Q_CLEAR)

ST_READY = 0x11  # booted, no packet yet
ST_BUSY_RX = 0x22  # a packet is arriving
ST_BUSY_APPLY = 0x33  # the last packet is queued but every slot is taken: wait, it is being applied
ST_ERR = 0x40  # | error code
ST_ACK = 0x80  # | seq: queued, and a slot is free for the next packet
ST_APPLIED = 0x40  # with ST_ACK: every packet received is applied (VRAM written, flip shown)

ERR_CHECKSUM = 1
ERR_LENGTH = 2
ERR_TYPE = 3
ERR_SEQ = 4
ERR_OVERRUN = 5
ERR_PAYLOAD = 6
ERR_SESSION = 7
ERROR_NAMES = {ERR_CHECKSUM: "checksum", ERR_LENGTH: "length", ERR_TYPE: "type", ERR_SEQ: "sequence",
               ERR_OVERRUN: "overrun", ERR_PAYLOAD: "payload", ERR_SESSION: "no session"}

SND_END = 0xFF

LCDC_BASE = 0x91  # LCD on, tile data at 0x8000 (top rows), BG map 0x9800, BG on
BGP_DEFAULT = 0xE4  # shade i shows as colour i
LYC_LINE = 68  # inside tile row 8: rows below read tile data with 0x8800 addressing

# exchanges with the same reading needed before the host believes it: a corrupted status byte
# could otherwise pass for the ACK it waits for
CONFIRM = 2
# polls without a verdict (ACK or error) before resending; longer than the longest packet, which
# a Game Boy that lost the packet's length byte completes from idle bytes and then rejects
POLL_LIMIT = MAX_LEN + 16
# identical readings before the host believes the ROM holds a session that is not its own (and starts
# a new one, redrawing everything): costly when wrong, so more than for an ACK; the ROM's status
# stands still for as long as it waits, so a real loss is seen this many times at once
LOSS_CONFIRM = 4
# identical "before this packet" readings after it was sent whole (the ROM says "receiving" from the
# sync byte on, so these mean the packet never began there): resend without waiting for POLL_LIMIT
UNSEEN = 6
# A Game Boy port armed in the middle of one of our bytes counts its 8 edges across two of them; at a
# slow clock it never falls back into step by itself. After a timeout, or every RESYNC_AFTER-th refusal
# of one packet, the host stops clocking for RESYNC_PAUSE_S: the ROM re-arms its port after 7 quiet
# frames (rom/isr.s, _watchdog), in step with the next byte.
RESYNC_AFTER = 4
RESYNC_PAUSE_S = 0.2
# exchanges a query byte is clocked without an answer before the ROM is taken not to know it (an
# older ROM): the serial interrupt answers at once, so the answer is the status two exchanges on
ASK_LIMIT = 64
# from this clock on a bit is shorter than the serial interrupt's re-arm (~31 us): a slipped byte
# boundary heals within a few bytes by itself (none stayed slipped in mGBA from 32 kHz on), so the
# host does not pause there
SELF_HEALING_HZ = 32768


def resync_pause(hz: int) -> float:
    """The pause a host clocking at ``hz`` takes to let the ROM realign its port (0: it needs none)."""
    return RESYNC_PAUSE_S if hz < SELF_HEALING_HZ else 0.0


def fletcher(data: bytes) -> tuple[int, int]:
    """Two running sums mod 256: an add and an add per byte on the Game Boy, and every single-byte
    error and every swap of two bytes changes them."""
    a = b = 0
    for x in data:
        a = (a + x) & 0xFF
        b = (b + a) & 0xFF
    return a, b


def encode_packet(seq: int, ptype: int, payload: bytes = b"") -> bytes:
    if not 0 <= seq < SEQ_MOD:
        raise FrameError(f"seq {seq} outside 0..{SEQ_MOD - 1}")
    if len(payload) > MAX_LEN:
        raise FrameError(f"payload of {len(payload)} bytes, at most {MAX_LEN}")
    body = bytes([seq, len(payload), ptype]) + bytes(payload)
    return bytes([SYNC]) + body + bytes(fletcher(body))


def status_name(status: int) -> str:
    if status & ST_ACK:
        return f"ack {status & 0x3F}" + (", all applied" if status & ST_APPLIED else "")
    if status & 0xF0 == ST_ERR:
        return f"error {ERROR_NAMES.get(status & 0x0F, status & 0x0F)}"
    if status & 0xF0 in QUERIES:
        return f"answer 0x{status:02x}"
    return {ST_READY: "ready", ST_BUSY_RX: "receiving", ST_BUSY_APPLY: "applying"}.get(status, f"0x{status:02x}")


@dataclass
class _InFlight:
    seq: int
    wire: bytes
    ptype: int
    pos: int = 0  # next byte of wire to send; len(wire): waiting for the verdict
    polls: int = 0
    last: int = -1
    same: int = 0
    seq_errors: int = 0
    resends: int = 0


class LinkHost:
    """The host end: queue packets with ``send``, then call ``exchange`` once per link byte."""

    def __init__(self, seq: int = 0, *, resync_pause_s: float = RESYNC_PAUSE_S):
        self.queue: deque = deque()
        self.seq = seq % SEQ_MOD
        self.current: _InFlight | None = None
        self.counters = {"packets": 0, "bytes": 0, "payload_bytes": 0, "retransmits": 0, "timeouts": 0,
                         "idle_bytes": 0, "pauses": 0, **{f"err_{n}": 0 for n in ERROR_NAMES.values()}}
        self.last_status = -1
        self.acked: dict[int, int] = {}  # packet type -> packets acknowledged
        self.applied = False  # the ROM's last statuses say every packet it acknowledged is applied
        self._applied_run = 0
        # the ROM answered "no session" (it was reset or power-cycled), or shows a session that is not
        # ours (another host's HELLO reached it): what was queued is void, the owner must HELLO and
        # redraw (``GameBoyLink`` does)
        self.session_lost = False
        # seconds the port should stop clocking before the next byte (``take_pause``), and how long
        # a pause to realign is (``resync_pause``: 0 at a clock where a slip heals by itself)
        self.pause_s = 0.0
        self.resync_pause_s = resync_pause_s
        # status bytes that a running ROM could have sent: 0x00 and 0xFF never are (SEQ_MOD keeps ACKs
        # under 0xFF), they are what a pulled cable or an unarmed port reads; the owner watches this
        # to end a dead link in bounded time
        self.answers = 0
        self._idle_last, self._idle_same = -1, 0
        # queries (Q_*) to clock while no packet is due, and their replies (low nibble; None: no reply)
        self.asks: deque = deque()
        self.replies: dict[int, int | None] = {}
        self._ask_n = self._ask_same = 0
        self._ask_last = -1

    def send(self, ptype: int, payload: bytes = b"") -> None:
        self.queue.append((ptype, bytes(payload)))

    def hello(self) -> None:
        self.send(T_HELLO)

    def ask(self, *queries: int) -> None:
        """Clock these query bytes, in order, once no packet is due; the replies land in ``replies``."""
        for q in queries:
            self.replies.pop(q, None)
            self.asks.append(q)

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing awaiting its ACK, nothing asked."""
        return self.current is None and not self.queue and not self.asks

    def take_pause(self) -> float:
        """Seconds to wait before clocking the next byte (0 mostly); a port calls this after ``exchange``."""
        pause, self.pause_s = self.pause_s, 0.0
        return pause

    def backlog(self) -> int:
        """Payload bytes queued and not yet begun on the wire."""
        return sum(len(payload) for _, payload in self.queue)

    @property
    def drained(self) -> bool:
        """Idle, and the ROM says it has applied everything (the screen is final)."""
        return self.idle and self.applied

    def exchange(self, status: int) -> int:
        """The Game Boy's status byte from this exchange in, the byte to clock out next."""
        self.last_status = status
        self.counters["bytes"] += 1
        # believed as an ACK is: read twice in a row (a corrupted byte cannot end a stream early)
        done = status == ST_ACK | ST_APPLIED | (self.seq - 1) % SEQ_MOD
        self._applied_run = self._applied_run + 1 if done else 0
        self.applied = self._applied_run >= CONFIRM
        if status not in (0x00, 0xFF):
            self.answers += 1
        cur = self.current
        if cur is not None and cur.pos >= len(cur.wire):
            cur = self._judge(cur, status)
        elif cur is None and not self.session_lost:
            self._watch_idle(status)
            if self.session_lost:
                return IDLE
        if cur is None and self.queue:
            ptype, payload = self.queue.popleft()
            cur = self.current = _InFlight(self.seq, encode_packet(self.seq, ptype, payload), ptype)
            self.counters["payload_bytes"] += len(payload)
            self._ask_n = 0  # a query a packet interrupts starts over after it: its answer is gone
        if cur is None and self.asks:
            return self._asking(status)
        if cur is None or cur.pos >= len(cur.wire):
            self.counters["idle_bytes"] += 1
            return IDLE
        byte = cur.wire[cur.pos]
        cur.pos += 1
        return byte

    def _asking(self, status: int) -> int:
        """The query byte to clock next; the answer counts once read twice in a row, from the third
        exchange on (before that the status predates the query)."""
        q = self.asks[0]
        self._ask_n += 1
        self._ask_same = self._ask_same + 1 if status == self._ask_last else 1
        self._ask_last = status
        answered = self._ask_n > 3 and status & 0xF0 == q and self._ask_same >= CONFIRM
        if answered or self._ask_n > ASK_LIMIT:
            self.replies[q] = status & 0x0F if answered else None
            self.asks.popleft()
            self._ask_n = self._ask_same = 0
            self._ask_last = -1
            if not self.asks:
                return IDLE
            q = self.asks[0]
            self._ask_n = 1
        return q

    def _judge(self, cur: _InFlight, status: int):
        """Waiting for the verdict on ``cur``: the in-flight packet, or None once acknowledged."""
        cur.same = cur.same + 1 if status == cur.last else 1
        cur.last = status
        cur.polls = 0 if status == ST_BUSY_APPLY else cur.polls + 1
        if status & ST_ACK and status & 0x3F == cur.seq and cur.same >= CONFIRM:
            self.counters["packets"] += 1
            self.acked[cur.ptype] = self.acked.get(cur.ptype, 0) + 1
            self.seq = (self.seq + 1) % SEQ_MOD
            self.current = None
            return None
        if cur.ptype != T_HELLO and cur.same == LOSS_CONFIRM and self._foreign_ack(status, (cur.seq - 1) % SEQ_MOD, cur.seq):
            return self._lose_session()
        if status & 0xF0 == ST_ERR and 0 < status & 0x0F and cur.same == CONFIRM:
            self.counters[f"err_{ERROR_NAMES.get(status & 0x0F, 'payload')}"] += 1
            if status == ST_ERR | ERR_SEQ and cur.ptype != T_HELLO:
                # once can be a packet that line noise made out of idle bytes (0xA5 then zeros passes
                # the checksum); twice for the same packet, resent between, the ROM expects another seq
                cur.seq_errors += 1
                if cur.seq_errors > 1:
                    return self._lose_session()
            if status == ST_ERR | ERR_SESSION and cur.ptype != T_HELLO:
                return self._lose_session()
            self._resend(cur)
        elif cur.polls > POLL_LIMIT:
            self.counters["timeouts"] += 1
            self._resend(cur, timeout=True)
        elif cur.same == UNSEEN and self._before(status, cur.seq):
            # the ROM shows the state it had before this packet and never said "receiving": the sync
            # byte was lost (a Game Boy still starting up, a dropped byte), nothing is on its way
            self.counters["timeouts"] += 1
            self._resend(cur)
        return cur

    @staticmethod
    def _before(status: int, seq: int) -> bool:
        """``status`` is what the ROM says before it has seen packet ``seq`` at all: ready (no session
        yet), or the ACK of the packet before it."""
        return status == ST_READY or (bool(status & ST_ACK) and status & 0x3F == (seq - 1) % SEQ_MOD)

    @staticmethod
    def _foreign_ack(status: int, *ours: int) -> bool:
        """An ACK of a packet we did not send last: another host's HELLO reached the ROM. 0xFF is what a
        floating line reads, never an ACK."""
        return bool(status & ST_ACK) and status != 0xFF and (status & 0x3F) not in ours

    def _watch_idle(self, status: int) -> None:
        """Idle, the ROM must keep acknowledging our last packet; another ACK read LOSS_CONFIRM times in
        a row means another host's packet reached it since."""
        self._idle_same = self._idle_same + 1 if status == self._idle_last else 1
        self._idle_last = status
        if self.acked and self._idle_same == LOSS_CONFIRM and self._foreign_ack(status, (self.seq - 1) % SEQ_MOD):
            self._lose_session()

    def _lose_session(self) -> None:
        self.session_lost = True
        self.queue.clear()
        self.current = None
        self._idle_same = 0
        return None

    def _resend(self, cur: _InFlight, timeout: bool = False) -> None:
        cur.resends += 1
        if self.resync_pause_s and (timeout or cur.resends % RESYNC_AFTER == 0):
            # no answer, or the same packet refused again and again: maybe the Game Boy's port counts
            # its 8 edges across two of our bytes (armed mid-byte); a pause lets it realign
            self.pause_s = self.resync_pause_s
            self.counters["pauses"] += 1
        self.counters["retransmits"] += 1
        cur.pos = cur.polls = cur.same = 0
        cur.last = -1


def _vector(name: str, seq: int, ptype: int, payload: bytes, answer: int, wire: bytes | None = None) -> dict:
    return {"name": name, "wire": (wire if wire is not None else encode_packet(seq, ptype, payload)).hex(),
            "answer": answer}


# Shared test vectors, in order (the ROM's session state carries from one to the next): the wire
# bytes and the status the ROM settles on (an ACK settles once the packet is applied). docs/protocol.md lists them; tests/test_gameboy.py
# checks encode_packet against ``wire`` and the ROM in PyBoy against ``answer``.
VECTORS = (
    _vector("HELLO opens a session at seq 5", 5, T_HELLO, b"", ST_ACK | ST_APPLIED | 5),
    _vector("VRAM: one tile at 0x8010", 6, T_VRAM, bytes([0x10, 0x80]) + bytes(range(16)), ST_ACK | ST_APPLIED | 6),
    _vector("the same packet again (its ACK was lost): acknowledged again", 6, T_VRAM,
            bytes([0x10, 0x80]) + bytes(range(16)), ST_ACK | ST_APPLIED | 6),
    _vector("a checksum byte wrong", 7, T_FLIP, bytes([1, BGP_DEFAULT]), ST_ERR | ERR_CHECKSUM,
            wire=encode_packet(7, T_FLIP, bytes([1, BGP_DEFAULT]))[:-1] + b"\x00"),
    _vector("length over 130", 7, T_VRAM, b"", ST_ERR | ERR_LENGTH, wire=bytes([SYNC, 7, 200])),
    _vector("unknown type", 7, 0x09, b"", ST_ERR | ERR_TYPE),
    _vector("seq skipped ahead", 9, T_FLIP, bytes([1, BGP_DEFAULT]), ST_ERR | ERR_SEQ),
    _vector("VRAM outside 0x8000..0x9FFF", 7, T_VRAM, bytes([0xF0, 0x9F]) + bytes(32), ST_ERR | ERR_PAYLOAD),
    _vector("FLIP to map 1, palette 0xE4", 7, T_FLIP, bytes([1, BGP_DEFAULT]), ST_ACK | ST_APPLIED | 7),
    _vector("SOUND: CH1 volume 15 at 1 kHz, end of frame", 8, T_SOUND,
            bytes([0x11, 0x80, 0x12, 0xF0, 0x13, 0x83, 0x14, 0x87, SND_END, 0]), ST_ACK | ST_APPLIED | 8),
    _vector("SOUND with a register outside the APU", 9, T_SOUND, bytes([0x40, 0x00]), ST_ERR | ERR_PAYLOAD),
    _vector("PALETTE 0: white, light grey, dark grey, black (a DMG acknowledges and ignores it)", 9, T_PALETTE,
            bytes([0, 0xFF, 0x7F, 0xB5, 0x56, 0x4A, 0x29, 0x00, 0x00]), ST_ACK | ST_APPLIED | 9),
    _vector("PALETTE of 6 bytes: not whole palettes", 10, T_PALETTE, bytes(7), ST_ERR | ERR_PAYLOAD),
    _vector("PALETTE 7 and 8: past the last palette", 10, T_PALETTE, bytes([7]) + bytes(16), ST_ERR | ERR_PAYLOAD),
    _vector("ATTR: palette 3 for map 1's first entry", 10, T_ATTR, bytes([0x00, 0x9C, 3]), ST_ACK | ST_APPLIED | 10),
    _vector("ATTR outside 0x9800..0x9FFF", 11, T_ATTR, bytes([0x00, 0x80, 3]), ST_ERR | ERR_PAYLOAD),
)


def c_header() -> str:
    """rom/packets.h, generated from the constants above."""
    names = ("SYNC MAX_LEN SEQ_MOD T_HELLO T_VRAM T_FLIP T_SOUND T_PALETTE T_ATTR Q_BUTTONS Q_DPAD Q_CLEAR ST_READY "
             "ST_BUSY_RX ST_BUSY_APPLY ST_ERR ST_ACK ST_APPLIED ERR_CHECKSUM ERR_LENGTH ERR_TYPE ERR_SEQ ERR_OVERRUN "
             "ERR_PAYLOAD ERR_SESSION SND_END LCDC_BASE "
             "BGP_DEFAULT LYC_LINE").split()
    mod = sys.modules[__name__]
    lines = ["/* Generated by `python -m firmware_bridge.gameboy.packets --c-header > rom/packets.h` from",
             " * firmware_bridge/gameboy/packets.py. Do not edit: change packets.py and regenerate. */",
             "#ifndef PXBY_LINK_H", "#define PXBY_LINK_H", ""]
    lines += [f"#define LINK_{n} {getattr(mod, n)}u" for n in names]
    lines += ["", "#endif", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--c-header" in sys.argv:
        sys.stdout.write(c_header())
