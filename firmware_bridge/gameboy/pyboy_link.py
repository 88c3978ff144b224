"""The ROM in PyBoy, with ``LinkHost`` as the other end of its link port: ``pyboy://`` (headless or a window).

    python -c "from firmware_bridge.gameboy.pyboy_link import PyBoyPort; p = PyBoyPort(); p.host.hello(); p.run_until(lambda: p.host.idle); print(p.shades()[0, :8])"

PyBoy calls its serial peer once per byte (``write(0, status)`` then ``read(1)``), 8x128 T-cycles
after the ROM re-arms the port whatever the clock source, so this proves the protocol and the
picture, not the link's timing on hardware (docs/GAMEBOY.md). ``LineFaults`` corrupts and drops
bytes in the peer, as a bad cable would. Every frame after a flip the ROM acknowledged is
captured, as is the sound PyBoy played.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Callable, Optional

import numpy as np

from firmware_bridge.display import DMG_PALETTE
from firmware_bridge.errors import LinkError, LinkTimeout
from firmware_bridge.gameboy import ROM_PATH
from firmware_bridge.gameboy import packets as gl

FRAME_HZ = 4194304 / 70224  # 59.73: one PyBoy tick
FORMS = "pyboy:// (headless), pyboy://window, pyboy://cgb, pyboy://cgb-window (a Game Boy Color)"
FLIPS = 0xFF89  # rom/hram.h: flips the ROM has done, mod 256


class LineFaults:
    """Flip bits of a byte (either way) with probability ``corrupt``; lose a host byte with ``drop``."""

    def __init__(self, corrupt: float = 0.0, drop: float = 0.0, seed: int = 0):
        self.corrupt, self.drop = corrupt, drop
        self.rng = random.Random(seed)
        self.counts = {"corrupted": 0, "dropped": 0}

    def mangle(self, byte: int) -> int:
        if self.corrupt and self.rng.random() < self.corrupt:
            self.counts["corrupted"] += 1
            return byte ^ self.rng.randrange(1, 256)
        return byte

    def lose(self) -> bool:
        if self.drop and self.rng.random() < self.drop:
            self.counts["dropped"] += 1
            return True
        return False


class SerialPeer:
    """PyBoy's ``serial_shared_memory``: the Game Boy is slot 0, the host answers in slot 1."""

    def __init__(self, host: gl.LinkHost, faults: Optional[LineFaults] = None):
        self.host = host
        self.faults = faults
        self.status = gl.ST_READY
        self.exchanges = 0
        self.unplugged = False  # a pulled cable: the Game Boy reads 0xFF, so does the host
        self.foreign: deque = deque()  # another host's bytes, which the Game Boy gets before ours

    def read(self, slot: int) -> int:
        if slot == 0:
            return 0  # PyBoy's start-up election: we take slot 1
        self.exchanges += 1
        if self.foreign:
            return self.foreign.popleft()
        if self.unplugged:
            self.host.exchange(0xFF)
            return 0xFF
        byte = self._exchange()
        self.host.take_pause()  # PyBoy starts each transfer when the ROM arms: never out of step
        return byte

    def _exchange(self) -> int:
        f = self.faults
        if f is None:
            return self.host.exchange(self.status)
        byte = self.host.exchange(f.mangle(self.status))
        while f.lose():  # the Game Boy never saw it: it gets the host's next byte instead
            byte = self.host.exchange(f.mangle(self.status))
        return f.mangle(byte)

    def write(self, slot: int, value: int) -> None:
        if slot == 0:
            self.status = value

    def synchronize(self) -> None:
        """Both ends run in this one thread: nothing to wait for."""


def shades_from_rgb(rgb: np.ndarray, palette=DMG_PALETTE) -> np.ndarray:
    """(H, W, 3+) screen colours -> shades 0..3; ``LinkError`` on a colour not in the palette."""
    pal = np.asarray(palette, dtype=np.int64)
    flat = rgb[..., :3].astype(np.int64).reshape(-1, 3)
    hit = (flat[:, None, :] == pal[None, :, :]).all(axis=2)
    if not hit.any(axis=1).all():
        raise LinkError("the emulated screen shows a colour outside the 4 shades")
    return hit.argmax(axis=1).astype(np.uint8).reshape(rgb.shape[:2])


class PyBoyPort:
    """The ROM running in PyBoy, clocked by ``run_until``; ``frames`` holds the screen after each flip."""

    def __init__(self, rom=ROM_PATH, *, window: str = "null", faults: Optional[LineFaults] = None,
                 boot_frames: int = 0, sound: bool = True, cgb: bool = False):
        import warnings

        with warnings.catch_warnings():
            # pysdl2 announces where its SDL2 came from at import, on every run: nothing a user can act on
            warnings.filterwarnings("ignore", "Using SDL2 binaries", UserWarning)
            from pyboy import PyBoy

        self.url = "pyboy://"
        self.host = gl.LinkHost(resync_pause_s=0.0)  # PyBoy starts each transfer when the ROM arms
        self.peer = SerialPeer(self.host, faults)
        self.faults = faults
        palette = tuple((r << 16) | (g << 8) | b for r, g, b in DMG_PALETTE)
        self._boot = lambda: PyBoy(str(rom), window=window, serial_shared_memory=self.peer, serial_interrupt_based=True,
                                   sound_emulated=sound, color_palette=palette, log_level="ERROR", cgb=cgb)
        self.pyboy = self._boot()
        self.cgb = cgb
        self.sound = sound
        self.frames: list[np.ndarray] = []
        self.audio: list[np.ndarray] = []
        self.ticks = 0
        self._flips_seen = 0
        self._capture_next = False
        # a start-up delay as a real user's would be: the ROM boots while the host waits
        for _ in range(boot_frames):
            self.tick()

    @property
    def sample_rate(self) -> int:
        return int(self.pyboy.sound.sample_rate)

    def tick(self) -> None:
        self.pyboy.tick(1, True, self.sound)
        self.ticks += 1
        if self.sound:
            self.audio.append(np.asarray(self.pyboy.sound.ndarray, dtype=np.int16).mean(axis=1) / 128.0)
        if self._capture_next:
            self._capture_next = False
            self.frames.append(self.rgb() if self.cgb else self.shades())
        flips = self.pyboy.memory[FLIPS]
        if flips != self._flips_seen:
            # the flip happened in the VBlank that began this frame: the next frame shows it whole
            self._flips_seen = flips
            self._capture_next = True

    def step(self) -> None:
        """One emulated frame (about 61 link bytes)."""
        self.tick()

    def shades(self) -> np.ndarray:
        """(144, 160) shades the emulated LCD shows now."""
        return shades_from_rgb(np.asarray(self.pyboy.screen.ndarray))

    def press(self, button: str, frames: int = 3) -> None:
        """Hold ``button`` (a, b, select, start, up, down, left, right) for the next ``frames`` frames."""
        self.pyboy.button(button, frames)

    def rgb(self) -> np.ndarray:
        """(144, 160, 3) colours the emulated LCD shows now (a Game Boy Color's RGB555, times 8)."""
        return np.asarray(self.pyboy.screen.ndarray)[..., :3].copy()

    def run_until(self, done: Callable[[], bool], max_frames: int = 100_000, what: str = "the Game Boy") -> None:
        for _ in range(max_frames):
            if done():
                return
            self.tick()
        raise LinkTimeout(f"{what}: no progress in {max_frames} emulated frames (status {gl.status_name(self.host.last_status)})")

    def settle(self, frames: int = 3) -> None:
        """Let the last flip reach the screen."""
        for _ in range(frames):
            self.tick()

    @property
    def elapsed_s(self) -> float:
        """Emulated time since the port opened."""
        return self.ticks / FRAME_HZ

    def power_cycle(self) -> None:
        """Switch the Game Boy off and on: a fresh PyBoy on the same cable (PyBoy has no reset)."""
        self.pyboy.stop(save=False)
        self.pyboy = self._boot()

    def inject(self, data: bytes) -> None:
        """Another host's bytes on the line: the Game Boy gets them next, their answers go nowhere."""
        self.peer.foreign.extend(data)

    @property
    def unplugged(self) -> bool:
        return self.peer.unplugged

    @unplugged.setter
    def unplugged(self, value: bool) -> None:
        self.peer.unplugged = value

    def close(self) -> None:
        self.pyboy.stop(save=False)


def open_url(url: str, *, faults: Optional[LineFaults] = None, boot_frames: int = 0) -> PyBoyPort:
    """The ``pyboy://`` transport (``firmware_bridge.transports``): ``pyboy://`` headless, ``pyboy://window`` in a
    window; ``pyboy://cgb`` and ``pyboy://cgb-window`` the same on a Game Boy Color."""
    import importlib.util

    from firmware_bridge.errors import PortError

    rest = url.partition("://")[2].strip("/")
    if rest not in ("", "null", "window", "cgb", "cgb-window"):
        raise PortError(f"bad PyBoy port {url!r}: use {FORMS}")
    if importlib.util.find_spec("pyboy") is None:
        raise PortError("pyboy:// needs PyBoy: pip install 'pxby-edge[gameboy]'")
    port = PyBoyPort(window="SDL2" if rest.endswith("window") else "null", faults=faults, boot_frames=boot_frames,
                     cgb=rest.startswith("cgb"))
    port.url = url
    return port
