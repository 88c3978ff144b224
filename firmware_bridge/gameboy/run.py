"""Open a Game Boy by URL, stream to it, write what it showed and played.

    pxby-edge stream --synthetic --to gameboy --port pyboy:// --out pxby-out

The URL's scheme picks the transport (``firmware_bridge.transports``): ``pyboy://`` runs the
shipped ROM in PyBoy headless (``pyboy://window`` opens a window, ``pyboy://cgb`` is a Game Boy Color);
``mgba://?hz=131072&gap_us=120`` runs it in mGBA clocked the way a Pi clocks a real one (on schedule,
ready or not; ``gameboy/mgba_link.py``); ``spi:///dev/spidev0.0?hz=131072&gap_us=120`` drives a real
Game Boy from a Pi. Over ``spi://`` nothing comes back but status bytes, so its gameboy/screen.png is
the screen the host believes it wrote, and the summary says so. ``GameBoyRun`` is the device
``firmware_bridge.live`` opens for ``stream`` and ``demo``: a connected ``GameBoyLink``, and on ``save``
the folders ``gameboy/`` (screen.png, screen.gif with every frame the Game Boy flipped to, audio.wav)
and, when asked, ``handheld/`` (what the reference device, i.e. the simulator, showed for the same stream).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

OUTPUTS = ("gameboy/screen.png", "gameboy/screen.gif", "gameboy/audio.wav")


class GameBoyRun:
    """``with GameBoyRun(url, out_dir) as run: Streamer(run.link, ...)``; then ``run.save()``."""

    def __init__(self, url: str, out_dir=None, *, faults=None, boot_frames: int = 0,
                 sound_method: str = "registers", reference_dir: Optional[Path] = None):
        self.url = url
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.opts = dict(faults=faults, boot_frames=boot_frames)
        self.sound_method = sound_method
        self.reference_dir = reference_dir
        self.port = None
        self.link = None

    def __enter__(self) -> GameBoyRun:
        from firmware_bridge.gameboy.session import connect
        from firmware_bridge.simulator import Capture
        from firmware_bridge.transports import open_gameboy_port

        self.port = open_gameboy_port(self.url, **self.opts)
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

    def counters(self) -> dict:
        """The Game Boy's figures for a summary (``gb_*``: packets, retransmissions, flips, faults)."""
        out = self.link.counters()
        # an emulator's screen is read back from its LCD; a real Game Boy's is not: say which screen.png is
        out["gb_screen"] = "believed" if getattr(self.port, "believed", False) else "emulated"
        return out

    def forget(self) -> None:
        """Drop what earlier rounds showed and played: an endless session (``controller.play``)
        keeps the newest screen and the current round's frames and sound, so it runs for days."""
        port, link = self.port, self.link
        for frames in (port.frames, link.reference, link.shown, link.colour_reference):
            del frames[:-1]
        port.audio.clear()
        link.played.clear()


def gameboy_line(stats: dict) -> str:
    """One line for the CLI: what went over the Game Boy's cable."""
    line = (f"game boy: {stats['gb_flips']} frames flipped, {stats['gb_packets']} packets "
            f"({stats['gb_bytes']} link bytes, {stats['gb_payload_bytes']} payload), {stats['gb_sound_frames']} sound frames; "
            f"retransmits {stats['gb_retransmits']} (checksum {stats['gb_err_checksum']}, timeouts {stats['gb_timeouts']})")
    if stats.get("gb_colour") and "gb_colour_exact" in stats:
        line += f"; colour: {stats['gb_colour_exact']:.1%} of the sprite's pixels exact"
        if stats["gb_palette_approx_commits"]:
            # a Game Boy Color has 8 palettes of 4 colours: say when the sprite needed more
            line += (f" ({stats['gb_palette_approx_commits']} of {stats['gb_colour_commits']} screens needed more "
                     f"than 8 palettes: the nearest colours were shown, mean error ΔE {stats['gb_colour_error']:.1f})")
    if stats.get("gb_screen") == "believed":
        line += "; gameboy/screen.png is what the host believes it wrote (nothing is read back over spi://)"
    return line
