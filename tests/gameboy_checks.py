"""What the Game Boy tests compare against, shared by tests/test_gameboy.py (PyBoy) and
tests/test_gameboy_timing.py (mGBA): the simulator's screen for a stream, the VRAM the host believes
the Game Boy holds, and the demo's screen on both.

    from gameboy_checks import planner_vram, simulator_screen
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.device import DeviceCore
from firmware_bridge.gameboy.vram import N_SLOTS, VramPlanner
from firmware_bridge.stream import Streamer
from firmware_bridge.virtual import VirtualLine, VirtualLink


def simulator_screen(events, audio_rate):
    """What the simulator's device core shows for ``events``, streamed over a virtual serial line."""
    device = DeviceCore()
    link = VirtualLink(device, VirtualLine(921600), seed=3, line_bps=92160).connect()
    streamer = Streamer(link, audio_rate=audio_rate)
    for event in events:
        streamer.feed(event)
    streamer.finish()
    return device.screen.copy()


def planner_vram(planner: VramPlanner) -> np.ndarray:
    """The 8 KiB the host believes the Game Boy holds: tiles, then both maps (entries ``slot & 0xFF``)."""
    out = np.zeros(0x2000, dtype=np.uint8)
    out[: N_SLOTS * 16] = planner.tiles.reshape(-1)
    for m, base in enumerate((0x1800, 0x1C00)):
        entries = (planner.maps[m] & 0xFF).astype(np.uint8).reshape(18, 20)
        for row in range(18):
            out[base + row * 32 : base + row * 32 + 20] = entries[row]
    return out


def demo_screens(tmp_path, *gameboy_args):
    """The demo (seed 7, 2 frames, 0.2 s of cry) once to the simulator, once to a Game Boy (``--to gameboy``
    plus ``gameboy_args``): the two screens as shades."""
    from PIL import Image

    from firmware_bridge.display import DMG_PALETTE
    from firmware_bridge.gameboy.pyboy_link import shades_from_rgb
    from pxby_edge.cli import main

    def shades(path):
        with Image.open(path) as img:
            return shades_from_rgb(np.asarray(img.convert("RGB")), DMG_PALETTE)

    args = ["demo", "--seed", "7", "--frames", "2", "--audio-seconds", "0.2", "--json"]
    assert main([*args, "--out", str(tmp_path / "sim")]) == 0
    assert main([*args, "--out", str(tmp_path / "gb"), "--to", "gameboy", *gameboy_args]) == 0
    return shades(tmp_path / "sim" / "handheld" / "screen.png"), shades(tmp_path / "gb" / "gameboy" / "screen.png")
