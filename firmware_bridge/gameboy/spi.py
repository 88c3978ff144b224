"""``spi://``: a Raspberry Pi's SPI as the Game Boy link cable's clock master.

    pxby-edge stream --synthetic --to gameboy --port "spi:///dev/spidev0.0?hz=131072&gap_us=120"

The link port is SPI mode 3, MSB first, no chip select; with the ROM on external clock the Pi
clocks every byte. Each byte is its own ``xfer2`` so that ``delay_usecs`` becomes a gap after
every byte: the ROM's serial interrupt needs ~31 us to re-arm the port after the 8th edge, and its
main loop ~70 us to take a byte from the ring (docs/GAMEBOY.md, "Timing budget"). Real hardware was
not available here: tests check the pacing and framing against a fake spidev object.
"""

from __future__ import annotations

from typing import Callable, Optional
from urllib.parse import parse_qs, urlparse

import numpy as np

from firmware_bridge.errors import LinkTimeout, PortError
from firmware_bridge.gameboy import packets as gl

DEFAULT_HZ = 131072  # 61 us per byte on the wire; the gap carries the ROM's per-byte work
DEFAULT_GAP_US = 120
STEP_BYTES = 64


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
    return bus, dev, q.get("hz", DEFAULT_HZ), q.get("gap_us", DEFAULT_GAP_US)


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
        self.host = gl.LinkHost()
        self.status = gl.ST_READY
        self.faults = None
        self.frames: list[np.ndarray] = []  # no readback over the cable: see ``screens_from``
        self.audio: list[np.ndarray] = []

    @classmethod
    def from_url(cls, url: str, opener: Callable = open_spidev) -> SpiPort:
        bus, dev, hz, gap = parse_spi_url(url)
        return cls(opener(bus, dev), hz=hz, gap_us=gap, url=url)

    def exchange(self) -> None:
        out = self.host.exchange(self.status)
        self.status = self.spi.xfer2([out], self.hz, self.gap_us)[0]

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
