"""``mgba://``: the ROM in mGBA 0.10, its link port clocked edge by edge by a Pi-like SPI master.

    python -c "from firmware_bridge.gameboy.mgba_link import MgbaPort; p = MgbaPort(gap_us=300); p.host.hello(); p.run_until(lambda: p.host.idle); print(p.stats)"

PyBoy completes each transfer a fixed time after the ROM re-arms its port, so there a ROM can never
be clocked too early. A Raspberry Pi's SPI master does not wait: one ``xfer2`` per byte clocks 8 bits
at ``hz``, then ``gap_us`` (plus the kernel's own delay) passes and the next byte starts, ready or not.
This port does the same inside mGBA's scheduler (``mTimingSchedule``: 2 units per T-cycle in single
speed, 8,388,608 a second in either speed), one event per clock edge, with the Game Boy side as the
hardware has it: the port shifts on an edge only while SC reads 0x80 (enabled, external clock), SB is
the shift register (its top bit is the SO line), and the 8th edge after the ROM armed the port clears
SC bit 7 and requests the serial interrupt. So a byte clocked while the port is unarmed is lost (the
master reads the SO level, 0x00 or 0xFF), and a port armed in the middle of a byte takes its last bits
and the next byte's first ones, as a real Game Boy would.

``jitter_us`` adds a seeded, uniform 0..jitter_us to every gap (a Pi's syscall and scheduling delay
only ever lengthen it); ``LineFaults`` corrupts bytes either way and drops bytes (the Game Boy sees none
of that byte's edges, the master reads 0xFF); ``power_cycle`` resets the Game Boy mid-stream;
``unplugged`` pulls the cable (no edge reaches the Game Boy, the master reads 0xFF); ``extra_edge``
slips the byte boundary by one stray clock edge; ``inject`` puts another host's bytes on the line. The
Game Boy is a DMG unless ``model="CGB"`` (the ROM is dual-mode).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Callable, Optional
from urllib.parse import parse_qs, urlparse

import numpy as np

from firmware_bridge.errors import LinkError, LinkTimeout, PortError
from firmware_bridge.gameboy import ROM_PATH
from firmware_bridge.gameboy import packets as gl
from firmware_bridge.gameboy.pyboy_link import FLIPS, LineFaults
from firmware_bridge.gameboy.spi import DEFAULT_GAP_US, DEFAULT_HZ, check_timing

UNITS_PER_S = 8_388_608  # mGBA's GB timing: 2 units per T-cycle at 4,194,304 Hz (single speed)
FRAME_UNITS = 2 * 70224  # one video frame
FRAME_HZ = 4194304 / 70224
REG_SB, REG_SC, REG_IF = 0x01, 0x02, 0x0F
IRQ_SERIAL = 0x08
MODELS = ("DMG", "CGB")
SAMPLE_RATE = 48000
URL_OPTIONS = ("hz", "gap_us", "jitter_us", "seed", "model")


def parse_mgba_url(url: str) -> dict:
    """The options of ``mgba://[?hz=N&gap_us=N&jitter_us=N&seed=N&model=DMG|CGB]``; ``PortError`` naming the valid ones."""
    u = urlparse(url)
    q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    unknown = sorted(set(q) - set(URL_OPTIONS))
    if u.scheme != "mgba" or u.netloc or u.path.strip("/") or unknown:
        raise PortError(f"bad mGBA port {url!r}: use mgba://[?{'&'.join(o + '=..' for o in URL_OPTIONS)}]")
    opts: dict = {}
    try:
        for key in ("hz", "gap_us", "seed"):
            if key in q:
                opts[key] = int(q[key])
        if "jitter_us" in q:
            opts["jitter_us"] = float(q["jitter_us"])
    except ValueError as exc:
        raise PortError(f"bad mGBA port {url!r}: hz, gap_us and seed are integers, jitter_us a number") from exc
    if "model" in q:
        if q["model"].upper() not in MODELS:
            raise PortError(f"bad mGBA port {url!r}: model is one of {', '.join(MODELS)}")
        opts["model"] = q["model"].upper()
    if not 0 <= opts.get("jitter_us", 0.0) <= 10_000:
        raise PortError(f"bad mGBA port {url!r}: jitter_us is 0..10000")
    check_timing(opts.get("hz", DEFAULT_HZ), opts.get("gap_us", DEFAULT_GAP_US), url)
    return opts


def mgba_available() -> bool:
    """True when the mGBA bindings import (``pip install 'pxby-edge[mgba]'`` and Debian's libmgba0.10)."""
    try:
        import mgba.core  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


class SpiMaster:
    """When each clock edge falls: 8 edges at ``hz``, then the gap (+ jitter) before the next byte."""

    def __init__(self, hz: int, gap_us: float, jitter_us: float = 0.0, seed: int = 0):
        self.hz, self.gap_us, self.jitter_us = hz, gap_us, jitter_us
        self.rng = random.Random(seed)
        self.bit_units = UNITS_PER_S / hz
        self._frac = 0.0  # the fractions of a unit not yet scheduled, so the mean rate is exact

    def _whole(self, units: float) -> int:
        self._frac += units
        whole = int(self._frac)
        self._frac -= whole
        return whole

    def to_next_edge(self) -> int:
        return self._whole(self.bit_units)

    def to_next_byte(self) -> int:
        """From the 8th edge of a byte to the 1st of the next: the gap, the jitter, one bit time."""
        extra = self.rng.uniform(0.0, self.jitter_us) if self.jitter_us else 0.0
        return self._whole((self.gap_us + extra) * 1e-6 * UNITS_PER_S + self.bit_units)

    def first_edge(self) -> int:
        """A seeded phase for the first byte, anywhere in a frame: the host starts when it starts."""
        return 1 + self.rng.randrange(FRAME_UNITS)


class MgbaPort:
    """The ROM running in mGBA, with ``LinkHost`` behind a master that clocks on its own schedule."""

    def __init__(self, rom=ROM_PATH, *, hz: int = DEFAULT_HZ, gap_us: int = DEFAULT_GAP_US, jitter_us: float = 0.0,
                 seed: int = 0, faults: Optional[LineFaults] = None, boot_frames: int = 0, model: Optional[str] = None,
                 sound: bool = True):
        import mgba.core
        import mgba.image
        import mgba.log
        from mgba._pylib import ffi, lib

        mgba.log.silence()
        self._ffi, self._lib = ffi, lib
        self.core = mgba.core.load_path(str(rom))
        if self.core is None:
            raise PortError(f"mGBA cannot load {rom}")
        # the ROM is dual-mode (header 0x143 = 0x80): left alone mGBA would run it as a Game Boy Color
        model = model or "DMG"
        self.cgb = model == "CGB"
        for key in ("gb.model", "cgb.hybridModel", "cgb.model"):
            self.core.config[key] = model
        self._image = mgba.image.Image(160, 144)
        self.core.set_video_buffer(self._image)
        self.sound = sound
        if sound:
            self.core.set_audio_buffer_size(4096)
        self.core.reset()
        if sound:
            self.core.get_audio_channels().set_rate(SAMPLE_RATE)
        self.gb = self.core._native
        self.host = gl.LinkHost(resync_pause_s=gl.resync_pause(hz))
        self.master = SpiMaster(hz, gap_us, jitter_us, seed)
        self.faults = faults
        self.url = f"mgba://?hz={hz}&gap_us={gap_us}"
        self.frames: list[np.ndarray] = []
        self.audio: list[np.ndarray] = []
        self.ticks = 0
        self.unplugged = False
        self.foreign: deque = deque()  # another host's bytes, clocked before ours
        self.stats = {"bytes": 0, "lost_bytes": 0, "split_bytes": 0, "completions": 0, "power_cycles": 0}
        self._error: Optional[BaseException] = None
        self._flips_seen = 0
        self._pressed: dict[str, int] = {}  # buttons held, and for how many more frames
        self._start_byte()
        self._event = ffi.new("struct mTimingEvent*")
        self._name = ffi.new("char[]", b"pxby SPI master")
        self._callback = ffi.callback("void(struct mTiming*, void*, uint32_t)", self._on_edge)
        self._event.callback = self._callback
        self._event.name = self._name
        self._event.priority = 0x31  # after mGBA's own serial event (0x30) at the same cycle
        self._event.context = ffi.NULL
        # a start-up delay as a real user's would be: the Game Boy is on before the host starts clocking
        for _ in range(boot_frames):
            self.tick()
        self._schedule(self.master.first_edge())

    # -- the master, one clock edge at a time ---------------------------------------------------
    def _start_byte(self) -> None:
        """Load the byte to clock out next: another host's first, else ours for the status just read."""
        self._edge = 0
        self._rx = 0
        self._armed_edges = 0
        self._byte_drop = self.unplugged or (self.faults is not None and self.faults.lose())
        if self.foreign:
            self._out, self._ours = self.foreign.popleft(), False
        else:
            self._out, self._ours = self._next_out, True

    def _schedule(self, units: int) -> None:
        lib = self._lib
        lib.mTimingSchedule(self._ffi.addressof(self.gb.timing), self._event, max(1, units))

    def _on_edge(self, timing, context, late) -> None:
        try:
            self._edge_now()
            delay = self.master.to_next_edge() if self._edge else self.master.to_next_byte()
            if not self._edge:
                delay += int(self.host.take_pause() * UNITS_PER_S)  # the host stops clocking to resync
            self._schedule(delay - late)
        except BaseException as exc:  # a cffi callback cannot raise: ``tick`` re-raises it
            self._error = exc

    def _edge_now(self) -> None:
        io = self.gb.memory.io
        bit_out = (self._out >> (7 - self._edge)) & 1
        if io[REG_SB] != self._sb_left:
            # the ROM wrote SB since the last edge, and it does so only to (re-)arm the port: a write to
            # SC starts a transfer, its 8 edges counted from here
            self._gb_bits = 0
        if self._extra_edges and self._edge == 0:
            self._extra_edges -= 1
            self._shift(io, 1)  # a stray edge between two bytes, MOSI idle high: the Game Boy counts it
        if self._byte_drop:
            line = 1  # the Game Boy saw no clock; the master's input floats high
        elif io[REG_SC] & 0x81 == 0x80:
            line = self._shift(io, bit_out)
            self._armed_edges += 1
        else:
            line = io[REG_SB] >> 7  # SO holds SB's top bit while the port stands still
        self._sb_left = io[REG_SB]
        self._rx = (self._rx << 1) | line
        self._edge += 1
        if self._edge == 8:
            self._end_byte()

    def _shift(self, io, bit_in: int) -> int:
        """One edge at an armed port: SB's top bit out, ``bit_in`` in; the 8th completes the transfer."""
        if io[REG_SC] & 0x81 != 0x80:
            return io[REG_SB] >> 7
        line = io[REG_SB] >> 7
        io[REG_SB] = ((io[REG_SB] << 1) | bit_in) & 0xFF
        self._gb_bits += 1
        if self._gb_bits == 8:
            self._gb_bits = 0
            io[REG_SC] &= 0x7F
            io[REG_IF] |= IRQ_SERIAL
            self._lib.GBUpdateIRQs(self.gb)
            self.stats["completions"] += 1
            self.completed_at = self._lib.mTimingCurrentTime(self._ffi.addressof(self.gb.timing))
        return line

    def _end_byte(self) -> None:
        self.stats["bytes"] += 1
        if self._armed_edges == 0:
            self.stats["lost_bytes"] += 1
        elif self._armed_edges < 8:
            self.stats["split_bytes"] += 1
        if self._ours:
            status = self._rx
            if self.faults is not None:
                status = self.faults.mangle(status)
            out = self.host.exchange(status)
            self._next_out = self.faults.mangle(out) if self.faults is not None else out
        self._start_byte()

    completed_at = 0  # mGBA time (units) of the last byte the Game Boy's port took whole
    _extra_edges = 0  # stray edges still to deliver
    _next_out = gl.IDLE
    _gb_bits = 0  # edges the Game Boy's port has shifted since it was armed
    _sb_left = -1  # SB as the last edge left it

    # -- the emulator ------------------------------------------------------------------------------
    def press(self, button: str, frames: int = 3) -> None:
        """Hold ``button`` (a, b, select, start, up, down, left, right) for the next ``frames`` frames."""
        self._pressed[button] = frames

    def tick(self) -> None:
        """One emulated frame; the screen after each flip the ROM made is kept, as for PyBoy."""
        if self._pressed:
            self.core.set_keys(raw=sum(1 << getattr(self._lib, f"GBA_KEY_{b.upper()}") for b in self._pressed))
            self._pressed = {b: n - 1 for b, n in self._pressed.items() if n > 1}
        else:
            self.core.set_keys(raw=0)
        self.core.run_frame()
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        self.ticks += 1
        if self.sound:
            self._take_audio()
        flips = self.core.memory.u8[FLIPS]  # the ROM's own count: a flip is acknowledged before it shows
        if flips != self._flips_seen:
            # mGBA's frame starts at VBlank, where every flip is made: the frame just run shows it
            # (the frame after may already show the next flip, one VBlank later)
            self._flips_seen = flips
            self.frames.append(self.rgb() if self.cgb else self.shades())

    def _take_audio(self) -> None:
        """The frame's sound, mixed to mono in -1..1 at ``sample_rate`` (mGBA's blip buffers, drained each frame)."""
        buf = self.core.get_audio_channels()
        n = buf.available
        if n:
            pcm = self._ffi.new("short[]", 2 * n)
            got = buf.read_into(pcm, n)
            stereo = np.frombuffer(self._ffi.buffer(pcm), dtype=np.int16)[: 2 * got].reshape(-1, 2)
            self.audio.append(stereo.mean(axis=1) / 32768.0)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def step(self) -> None:
        self.tick()

    @property
    def elapsed_s(self) -> float:
        """Emulated time since the port opened."""
        return self.ticks / FRAME_HZ

    def rgb(self) -> np.ndarray:
        """(144, 160, 3) colours the emulated LCD shows now (a Game Boy Color's RGB555 as x << 3 | x >> 2)."""
        return np.frombuffer(self._ffi.buffer(self._image.buffer), dtype=np.uint8).reshape(144, 160, 4)[..., :3].copy()

    def shades(self) -> np.ndarray:
        """(144, 160) shades 0..3 the emulated LCD shows now (mGBA's DMG palette, lightest first)."""
        rgb = np.frombuffer(self._ffi.buffer(self._image.buffer), dtype=np.uint8).reshape(144, 160, 4)[..., :3]
        pal = np.array([_rgb8(c) for c in list(self.gb.video.dmgPalette)[:4]], dtype=np.int64)
        flat = rgb.astype(np.int64).reshape(-1, 3)
        hit = (flat[:, None, :] == pal[None, :, :]).all(axis=2)
        if not hit.any(axis=1).all():
            raise LinkError("the emulated screen shows a colour outside the 4 shades")
        return hit.argmax(axis=1).astype(np.uint8).reshape(144, 160)

    def run_until(self, done: Callable[[], bool], max_frames: int = 100_000, what: str = "the Game Boy") -> None:
        for _ in range(max_frames):
            if done():
                return
            self.tick()
        raise LinkTimeout(f"{what}: no progress in {max_frames} emulated frames on {self.url} "
                          f"(status {gl.status_name(self.host.last_status)})")

    def settle(self, frames: int = 3) -> None:
        for _ in range(frames):
            self.tick()

    def power_cycle(self) -> None:
        """Switch the Game Boy off and on (the master keeps its schedule): RAM, VRAM and the port start over."""
        self.core.reset()
        self._gb_bits = 0
        self.stats["power_cycles"] += 1
        if not self._lib.mTimingIsScheduled(self._ffi.addressof(self.gb.timing), self._event):
            self._schedule(self.master.to_next_edge())

    def extra_edge(self) -> None:
        """One stray clock edge before the next byte (the SCLK pin rising to mode 3's idle level on its
        first transfer, a glitch on a long wire): the Game Boy's byte boundary slips by one bit."""
        self._extra_edges += 1

    def inject(self, data: bytes) -> None:
        """Another host's bytes on the line (a second master, a stray program): clocked next, answers unseen."""
        self.foreign.extend(data)

    def close(self) -> None:
        lib, ffi = self._lib, self._ffi
        if lib.mTimingIsScheduled(ffi.addressof(self.gb.timing), self._event):
            lib.mTimingDeschedule(ffi.addressof(self.gb.timing), self._event)


def _rgb8(c555: int) -> tuple[int, int, int]:
    """mGBA's RGB555 -> the 8-bit channels it writes to the video buffer (x << 3 | x >> 2)."""
    r, g, b = c555 & 0x1F, (c555 >> 5) & 0x1F, (c555 >> 10) & 0x1F
    return tuple((x << 3) | (x >> 2) for x in (r, g, b))


def open_url(url: str, *, faults: Optional[LineFaults] = None, boot_frames: int = 0) -> MgbaPort:
    """The ``mgba://`` transport (``firmware_bridge.transports``): the ROM in mGBA behind a Pi-like master."""
    opts = parse_mgba_url(url)
    if not mgba_available():
        raise PortError("mgba:// needs mGBA: apt-get install libmgba0.10 and pip install 'pxby-edge[mgba]'")
    port = MgbaPort(faults=faults, boot_frames=boot_frames, **opts)
    port.url = url
    return port
