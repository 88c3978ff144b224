"""``spi://``: a Raspberry Pi's SPI as the Game Boy link cable's clock master.

    pxby-edge stream --synthetic --to gameboy --port "spi:///dev/spidev0.0?hz=131072&gap_us=120"

The link port is SPI mode 3, MSB first, no chip select; with the ROM on external clock the Pi
clocks every byte, whether or not the ROM has re-armed its port. Each byte is its own ``xfer2`` so
that ``delay_usecs`` becomes a gap after every byte. ``check_timing`` refuses settings the ROM cannot
take (docs/GAMEBOY.md, "Accepted clock and gap"; the cycle counts are in docs/protocol.md, "Timing
budget"): the gap must outlast the serial interrupt's re-arm, a whole byte its longest run, and the
clock stay within what a Game Boy's port follows. Real hardware was not available here: tests check the pacing and framing against a fake
spidev object, and the timing against the ROM in mGBA clocked the same way (``mgba://``,
tests/test_gameboy_timing.py).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional
from urllib.parse import parse_qs, urlparse

import numpy as np

from firmware_bridge.errors import LinkTimeout, PortError
from firmware_bridge.gameboy import packets as gl

DEFAULT_HZ = 131072  # 61 us per byte on the wire; the gap carries the ROM's per-byte work
DEFAULT_GAP_US = 120
STEP_BYTES = 64

# What the ROM and the port can take (docs/GAMEBOY.md, "Accepted clock and gap", has the reasons and
# the measurements in mGBA behind them).
# the Game Boy's own link clock; a Pi 4's SPI divider bottoms out near 7.6 kHz (500 MHz / 65536). At a
# bit longer than the re-arm a slipped byte boundary heals only by the ROM's quiet-line re-arm and the
# host's pause (measured in mGBA: within 22 frames at 8192 Hz)
HZ_MIN = 8192
HZ_MAX = 500_000  # the fastest external clock a DMG is reported to follow (Pan Docs)
GAP_MIN_US = 60  # the serial interrupt re-arms the port at most 58 M-cycles (55 us) after a byte's 8th edge
# no hardware limit below spidev's 65,535 us: beyond 1 ms per byte the link carries < 1 KB/s and the
# host's resend timeout (POLL_LIMIT polls) passes half a second, so the picture and the cry only lag
GAP_MAX_US = 1000
BYTE_MIN_US = 160  # 8 bits + gap: the longest serial interrupt (155 M-cycles, 148 us) ends before the next byte


def check_timing(hz: int, gap_us: int, url: str = "spi://") -> None:
    """``PortError`` (one line naming the valid range) unless the ROM can take ``hz`` and ``gap_us``."""
    if not HZ_MIN <= hz <= HZ_MAX:
        raise PortError(f"{url}: hz={hz} is outside {HZ_MIN}..{HZ_MAX} (a Game Boy follows at most {HZ_MAX // 1000} "
                        f"kHz; {HZ_MIN} Hz is its own link clock)")
    if not GAP_MIN_US <= gap_us <= GAP_MAX_US:
        raise PortError(f"{url}: gap_us={gap_us} is outside {GAP_MIN_US}..{GAP_MAX_US} (the ROM re-arms its port up "
                        f"to ~80 us after each byte; longer gaps only slow the link)")
    byte_us = 8e6 / hz + gap_us
    if byte_us < BYTE_MIN_US:
        need = max(GAP_MIN_US, math.ceil(BYTE_MIN_US - 8e6 / hz))
        raise PortError(f"{url}: hz={hz}&gap_us={gap_us} clocks a byte every {byte_us:.0f} us; the ROM needs >= "
                        f"{BYTE_MIN_US} us per byte (8 bits at hz + gap_us): gap_us={need} or more at hz={hz}")


def parse_spi_url(url: str) -> tuple[int, int, int, int]:
    """(bus, device, hz, gap_us) of ``spi:///dev/spidevB.D?hz=..&gap_us=..``."""
    u = urlparse(url)
    name = u.path.rsplit("/", 1)[-1]
    try:
        bus, dev = (int(x) for x in name.removeprefix("spidev").split("."))
        q = {k: int(v[-1]) for k, v in parse_qs(u.query).items()}
    except ValueError as exc:
        raise PortError(f"bad SPI port {url!r}: expected spi:///dev/spidevB.D[?hz=N&gap_us=N]") from exc
    unknown = set(q) - {"hz", "gap_us"}
    if u.scheme != "spi" or unknown:
        raise PortError(f"bad SPI port {url!r}: unknown options {sorted(unknown)}; valid: hz, gap_us")
    hz, gap_us = q.get("hz", DEFAULT_HZ), q.get("gap_us", DEFAULT_GAP_US)
    check_timing(hz, gap_us, url)
    return bus, dev, hz, gap_us


def open_spidev(bus: int, device: int):
    try:
        import spidev
    except ImportError as exc:
        raise PortError("spi:// needs the spidev package (pip install spidev) on a Pi with SPI enabled") from exc
    spi = spidev.SpiDev()
    try:
        spi.open(bus, device)
    except OSError as exc:
        raise PortError(f"cannot open /dev/spidev{bus}.{device}: {exc} (enable SPI with raspi-config)") from exc
    return spi


class SpiPort:
    """``LinkHost`` clocked byte by byte over an spidev object (``spidev.SpiDev`` or a test double)."""

    def __init__(self, spi, *, hz: int = DEFAULT_HZ, gap_us: int = DEFAULT_GAP_US, url: str = "spi://"):
        self.spi = spi
        spi.mode = 0b11  # CPOL 1, CPHA 1: the Game Boy's clock idles high and samples on the rising edge
        spi.max_speed_hz = hz
        spi.bits_per_word = 8
        spi.lsbfirst = False
        self.hz, self.gap_us, self.url = hz, gap_us, url
        self.host = gl.LinkHost(resync_pause_s=gl.resync_pause(hz))
        self.status = gl.ST_READY
        self.faults = None
        # Nothing comes back over the cable but status bytes: ``GameBoyRun.save`` writes the screens the
        # host believes it drew (the planner's, ``GameBoyLink.shown``) and says so (``believed``).
        self.frames: list[np.ndarray] = []
        self.believed = True
        self.audio: list[np.ndarray] = []

    @classmethod
    def from_url(cls, url: str, opener: Callable = open_spidev) -> SpiPort:
        bus, dev, hz, gap = parse_spi_url(url)
        return cls(opener(bus, dev), hz=hz, gap_us=gap, url=url)

    def exchange(self) -> None:
        out = self.host.exchange(self.status)
        pause = self.host.take_pause()
        if pause:
            time.sleep(pause)  # the ROM realigns its port after 7 quiet frames (packets.RESYNC_PAUSE_S)
            self.paused_s += pause
        self.status = self.spi.xfer2([out], self.hz, self.gap_us)[0]
        self.exchanges += 1

    exchanges = 0
    paused_s = 0.0

    @property
    def elapsed_s(self) -> float:
        """Time on the wire since the port opened, at the nominal rate (a real Pi only ever takes longer)."""
        return self.exchanges * (8.0 / self.hz + self.gap_us * 1e-6) + self.paused_s

    def step(self) -> None:
        for _ in range(STEP_BYTES):
            self.exchange()

    def run_until(self, done: Callable[[], bool], max_bytes: int = 2_000_000, what: str = "the Game Boy") -> None:
        for _ in range(max_bytes):
            if done():
                return
            self.exchange()
        raise LinkTimeout(f"{what}: no progress in {max_bytes} link bytes on {self.url} "
                          f"(status {gl.status_name(self.host.last_status)}; is the ROM running and the cable in?)")

    def settle(self, frames: int = 3) -> None:
        """Idle bytes for about ``frames`` video frames, so the last flip is on the screen."""
        per_byte_s = 8.0 / self.hz + self.gap_us * 1e-6
        for _ in range(int(frames / 59.73 / per_byte_s) + 1):
            self.exchange()

    def close(self) -> None:
        close: Optional[Callable] = getattr(self.spi, "close", None)
        if close is not None:
            close()


def open_url(url: str, *, faults=None, boot_frames: int = 0) -> SpiPort:
    """The ``spi://`` transport (``firmware_bridge.transports``); line faults and a boot delay exist only in an emulator."""
    if faults is not None or boot_frames:
        raise PortError(f"{url}: line faults and boot frames are emulator options; a real cable has its own")
    return SpiPort.from_url(url)
