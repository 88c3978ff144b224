"""Open a Game Boy by URL, stream to it, write what it showed and played.

    pxby-edge stream --synthetic --to gameboy --port pyboy:// --out pxby-out

``pyboy://`` runs the shipped ROM in PyBoy headless (``pyboy://window`` opens a window);
``mgba://?hz=131072&gap_us=120`` runs it in mGBA clocked the way a Pi clocks a real one (on schedule,
ready or not; ``gameboy/mgba_link.py``); ``spi:///dev/spidev0.0?hz=131072&gap_us=120`` drives a real
Game Boy from a Pi. Over ``spi://`` nothing comes back but status bytes, so its gameboy/screen.png is
the screen the host believes it wrote, and the summary says so. ``GameBoyRun``
is the context manager the CLI and the demo use: a connected ``GameBoyLink``, and on ``save`` the
folders ``gameboy/`` (screen.png, screen.gif with every frame the Game Boy flipped to, audio.wav)
and ``handheld/`` (what the reference device, i.e. the simulator, showed for the same stream).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from firmware_bridge.errors import PortError

OUTPUTS = ("gameboy/screen.png", "gameboy/screen.gif", "gameboy/audio.wav")
SCHEMES = ("pyboy://", "mgba://", "spi://")


def is_gameboy_url(url: Optional[str]) -> bool:
    return bool(url) and url.startswith(SCHEMES)


def open_port(url: str, *, faults=None, boot_frames: int = 0):
    """A ``PyBoyPort`` or ``SpiPort`` for ``url``; ``PortError`` naming the valid forms otherwise."""
    if url.startswith("pyboy://"):
        from firmware_bridge.gameboy.pyboy_link import PyBoyPort

        rest = url[len("pyboy://"):].strip("/")
        if rest not in ("", "null", "window"):
            raise PortError(f"bad PyBoy port {url!r}: use pyboy:// (headless) or pyboy://window")
        import importlib.util

        if importlib.util.find_spec("pyboy") is None:
            raise PortError("pyboy:// needs PyBoy: pip install 'pxby-edge[gameboy]'")
        port = PyBoyPort(window="SDL2" if rest == "window" else "null", faults=faults, boot_frames=boot_frames)
        port.url = url
        return port
    if url.startswith("mgba://"):
        from firmware_bridge.gameboy.mgba_link import MgbaPort, mgba_available, parse_mgba_url

        opts = parse_mgba_url(url)
        if not mgba_available():
            raise PortError("mgba:// needs mGBA: apt-get install libmgba0.10 and pip install 'pxby-edge[mgba]'")
        port = MgbaPort(faults=faults, boot_frames=boot_frames, **opts)
        port.url = url
        return port
    if url.startswith("spi://"):
        from firmware_bridge.gameboy.spi import SpiPort

        return SpiPort.from_url(url)
    raise PortError(f"not a Game Boy port: {url!r} (valid: pyboy://, pyboy://window, mgba://[?hz=N&gap_us=N], "
                    f"spi:///dev/spidevB.D[?hz=N&gap_us=N])")


def check_outputs_free(out_dir: Path, overwrite: bool) -> None:
    from pxby_edge import media

    for name in OUTPUTS:
        media.check_writable(Path(out_dir) / name, overwrite)


class GameBoyRun:
    """``with GameBoyRun(url, out_dir) as run: Streamer(run.link, ...)``; then ``run.save()``."""

    def __init__(self, url: str, out_dir=None, *, overwrite: bool = False, faults=None, boot_frames: int = 0,
                 sound_method: str = "registers", reference_dir: Optional[Path] = None):
        self.url = url
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None:
            check_outputs_free(self.out_dir, overwrite)
        self.opts = dict(faults=faults, boot_frames=boot_frames)
        self.sound_method = sound_method
        self.reference_dir = reference_dir
        self.port = None
        self.link = None

    def __enter__(self) -> GameBoyRun:
        from firmware_bridge.gameboy.session import connect
        from firmware_bridge.simulator import Capture

        self.port = open_port(self.url, **self.opts)
        self.reference = Capture(self.reference_dir)
        self.link = connect(self.port, sound_method=self.sound_method, capture=self.reference)
        return self

    def __exit__(self, *exc) -> None:
        if self.port is not None:
            self.port.close()

    def save(self) -> list[str]:
        """Write gameboy/ (and the reference's folder, when given); returns the paths written."""
        from firmware_bridge.simulator import Capture

        written = self.reference.save()
        if self.out_dir is None:
            return written
        cap = Capture(self.out_dir / "gameboy")
        frames = self.port.frames or self.link.shown
        for i, screen in enumerate(frames):
            cap.on_commit(screen, i)
        if self.port.audio:
            played = np.concatenate(self.port.audio)
            cap.audio_rate = self.port.sample_rate
            cap.on_play(0, np.clip(np.round((played + 1.0) * 127.5), 0, 255).astype(np.uint8))
        return written + cap.save()

    def summary(self) -> dict:
        out = self.link.counters()
        # an emulator's screen is read back; a real Game Boy's is not: say which gameboy/screen.png is
        out["gb_screen"] = "believed" if getattr(self.port, "believed", False) else "emulated"
        return out


def stream_events(events, url: str, out_dir=None, *, audio_rate: float, audio_total: Optional[int] = None,
                  overwrite: bool = False, **streamer_opts) -> dict:
    """Stream ``events`` to the Game Boy at ``url``; the streamer's and the Game Boy's figures, and the files written."""
    from firmware_bridge.stream import Streamer

    with GameBoyRun(url, out_dir, overwrite=overwrite) as run:
        streamer = Streamer(run.link, audio_rate=audio_rate, audio_total=audio_total, **streamer_opts)
        for event in events:
            streamer.feed(event)
        stats = streamer.finish()
        written = run.save()
        return {**stats, **run.summary(), "outputs": written}


def describe(stats: dict) -> str:
    """One line for the CLI: what went over the Game Boy's cable."""
    return (f"game boy: {stats['gb_flips']} frames flipped, {stats['gb_packets']} packets "
            f"({stats['gb_bytes']} link bytes, {stats['gb_payload_bytes']} payload), {stats['gb_sound_frames']} sound frames; "
            f"retransmits {stats['gb_retransmits']} (checksum {stats['gb_err_checksum']}, timeouts {stats['gb_timeouts']})"
            + ("; gameboy/screen.png is what the host believes it wrote (nothing is read back over spi://)"
               if stats.get("gb_screen") == "believed" else ""))
