"""Figures of the Game Boy link for docs/BENCHMARKS.md: ROM size, bytes per sprite set, link rate, time to the creature.

    python bench/bench_gameboy.py          # needs PyBoy and the build files (make -C firmware_bridge/gameboy)
    python bench/bench_gameboy.py --mgba   # + the same at real timing: mGBA clocked as spi:// clocks (default and corners)
    python bench/bench_gameboy.py --sound  # the sound methods against the reference (docs/GAMEBOY.md)

Rates are emulated time, not wall time: payload bytes the ROM acknowledged per emulated second.
"bulk" is the link's capacity (full 128-byte VRAM writes back to back until the ROM says every one
is applied); "stream" is the demo-sized synthetic stream from HELLO to its last flip (small packets,
one flip per screen, so it cannot reach the bulk rate); "creature" is the demo's creature (bundled
model, seed 7): emulated seconds from the HELLO's ACK to the first flip that shows its first
animation frame whole, the screen the simulator shows for the same events.
"""

from __future__ import annotations

import json
import math
import re
import sys
import warnings

from firmware_bridge.gameboy import ROM_PATH, spi
from firmware_bridge.gameboy import packets as gl

BUILD = ROM_PATH.parent / "build"
FRAME_HZ = 4194304 / 70224
JITTER_US = 100  # a Pi's xfer2 call adds 0..100 us to each gap
# the spi:// default and the corners of what spi:// accepts (spi.py: hz, gap_us, and a byte at least
# BYTE_MIN_US long), as tests/test_gameboy_timing.py takes them
_FASTEST_GAP = max(spi.GAP_MIN_US, math.ceil(spi.BYTE_MIN_US - 8e6 / spi.HZ_MAX))
SETTINGS = ((spi.DEFAULT_HZ, spi.DEFAULT_GAP_US), (spi.HZ_MIN, spi.GAP_MIN_US), (spi.HZ_MIN, spi.GAP_MAX_US),
            (spi.HZ_MAX, _FASTEST_GAP), (spi.HZ_MAX, spi.GAP_MAX_US))


def rom_figures() -> dict:
    rom = ROM_PATH.read_bytes()
    code = re.search(r"^_CODE\s+([0-9A-F]+)\s+([0-9A-F]+)", (BUILD / "pxby-link.map").read_text(), re.M)
    return {"rom_bytes": len(rom), "code_bytes": int(code.group(2), 16), "code_start": f"0x{int(code.group(1), 16):04X}"}


class _Stamps:
    """Wraps a port's ``tick``: the frame the HELLO was acknowledged in, and the frame of each capture."""

    def __init__(self, port):
        self.port, self.hello_at, self.captured_at = port, None, []
        self._tick = port.tick
        port.tick = self.tick

    def tick(self) -> None:
        self._tick()
        port = self.port
        if self.hello_at is None and port.host.acked.get(gl.T_HELLO):
            self.hello_at = port.ticks
        while len(self.captured_at) < len(port.frames):
            self.captured_at.append(port.ticks)


def _open(url: str):
    from firmware_bridge.transports import open_gameboy_port

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return open_gameboy_port(url)


def stream_figures(url: str = "pyboy://") -> dict:
    """The demo-sized stream (synthetic 24x24 sprite, 3 frames, 0.5 s cry) to the ROM, HELLO to last flip."""
    from firmware_bridge.gameboy.session import connect
    from firmware_bridge.stream import Streamer, synthetic_events

    port = _open(url)
    stamps = _Stamps(port)
    link = connect(port)
    streamer = Streamer(link, audio_rate=8000)
    for event in synthetic_events(frames=3, size=24, audio_s=0.5):
        streamer.feed(event)
    streamer.finish()
    c = link.counters()
    seconds = (stamps.captured_at[-1] - stamps.hello_at) / FRAME_HZ
    port.close()
    return {"packets": c["gb_packets"], "payload_bytes": c["gb_payload_bytes"], "link_bytes": c["gb_bytes"],
           "flips": c["gb_flips"], "tiles_written": c["gb_tiles_written"], "map_bytes": c["gb_map_bytes"],
           "sound_frames": c["gb_sound_frames"], "retransmits": c["gb_retransmits"],
           "hello_to_last_flip_s": round(seconds, 2), "emulated_s": round(port.ticks / FRAME_HZ, 2)}


def bulk_figures(url: str = "pyboy://", packets: int = 60) -> dict:
    """The link's capacity: ``packets`` full VRAM writes (128 bytes each) from HELLO's ACK until all are applied."""
    port = _open(url)
    host = port.host
    host.hello()
    port.run_until(lambda: host.drained, what="HELLO")
    start, sent = port.ticks, host.counters["bytes"]
    for i in range(packets):
        addr = 0x8000 + (i * gl.VRAM_CHUNK) % 0x1800
        host.send(gl.T_VRAM, bytes([addr & 0xFF, addr >> 8]) + bytes([i & 0xFF]) * gl.VRAM_CHUNK)
    port.run_until(lambda: host.drained, what="bulk VRAM writes")
    seconds = (port.ticks - start) / FRAME_HZ
    link_bytes = host.counters["bytes"] - sent
    port.close()
    return {"payload_bytes": packets * (gl.VRAM_CHUNK + 2), "emulated_s": round(seconds, 3),
            "payload_bytes_per_s": round(packets * (gl.VRAM_CHUNK + 2) / seconds),
            "link_bytes_per_s": round(link_bytes / seconds), "retransmits": host.counters["retransmits"]}


def creature_figures(url: str = "pyboy://", seed: int = 7) -> dict:
    """The demo's creature: emulated seconds from HELLO's ACK to the flip that shows its first frame whole."""
    import numpy as np

    from firmware_bridge.device import DeviceCore
    from firmware_bridge.gameboy.session import connect
    from firmware_bridge.stream import Streamer
    from firmware_bridge.virtual import VirtualLine, VirtualLink
    from pxby_edge.events import FrameEnd

    events, rate, total = demo_cry_events(seed)
    first = next(i for i, e in enumerate(events) if isinstance(e, FrameEnd))
    device = DeviceCore()  # the simulator, fed up to the first frame's end: the creature whole
    sim = Streamer(VirtualLink(device, VirtualLine(None), seed=3).connect(), audio_rate=rate, audio_total=total)
    for event in events[: first + 1]:
        sim.feed(event)
    sim.finish()
    whole = device.screen.copy()
    port = _open(url)
    stamps = _Stamps(port)
    link = connect(port)
    streamer = Streamer(link, audio_rate=rate, audio_total=total)
    for event in events:
        streamer.feed(event)
    streamer.finish()
    shown = next((i for i, f in enumerate(port.frames) if np.array_equal(f, whole)), None)
    final_ok = bool(np.array_equal(port.shades(), link.reference[-1]))
    port.close()
    if shown is None:
        return {"creature_shown": False, "final_screen_equals_simulator": final_ok}
    return {"hello_to_creature_s": round((stamps.captured_at[shown] - stamps.hello_at) / FRAME_HZ, 2),
            "flips_before": shown, "final_screen_equals_simulator": final_ok}


def sprite_set_bytes(size: int = 24, frames: int = 3) -> dict:
    """Bytes to show a sprite set: tiles at 1x (the issue's 3x9x16) and as our layout scales it up."""
    from firmware_bridge.display import Layout

    lay = Layout.fit(size, size)
    tiles_1x = frames * math.ceil(size / 8) ** 2
    side = math.ceil((size * lay.scale + 2) / 8) + 1  # scaled sprite plus outline, worst tile alignment
    return {"tiles_1x": tiles_1x, "bytes_1x": tiles_1x * 16, "scale": lay.scale,
            "tiles_scaled_per_frame_max": side * side, "bytes_scaled_per_frame_max": side * side * 16}


def sound_figures(events, audio_rate: float, audio_total=None) -> dict:
    """``apu.compare`` of each sound method against the reference, and white noise's distance."""
    import numpy as np

    from firmware_bridge.gameboy import apu
    from firmware_bridge.gameboy.run import GameBoyRun
    from firmware_bridge.stream import Streamer

    out = {}
    for method in apu.METHODS:
        with GameBoyRun("pyboy://", sound_method=method) as run:
            streamer = Streamer(run.link, audio_rate=audio_rate, audio_total=audio_total)
            for event in events:
                streamer.feed(event)
            streamer.finish()
            reference = np.concatenate(run.link.played) / 127.5 - 1.0
            played = np.concatenate(run.port.audio[run.link.sound_start :])
            out[method] = {k: round(v, 2) for k, v in apu.compare(reference, played, run.port.sample_rate).items()}
    noise = np.random.default_rng(0).normal(size=reference.size)
    out["white_noise_lsd_db"] = round(apu.log_spectral_distance(reference, noise), 2)
    return out


def demo_cry_events(seed: int = 7):
    """The demo's creature (bundled model, ``pxby-edge demo`` defaults): (events, audio rate, samples)."""
    import inspect

    from firmware_bridge.commands import DEMO_DEFAULTS, demo
    from pxby_edge.generate import run_generation
    from pxby_edge.options import request_from_options

    names = inspect.signature(request_from_options).parameters
    # the command's own defaults, as click resolves them for a bare ``pxby-edge demo``
    params = demo.make_context("demo", [], resilient_parsing=True).params
    opts = {k: v for k, v in params.items() if k in names}
    opts.update({k: v for k, v in DEMO_DEFAULTS.items() if opts.get(k) is None}, seed=seed)
    gen = run_generation(request_from_options(**opts)).generator
    return list(gen.events()), gen.audio_rate, gen.audio_samples


if __name__ == "__main__":
    if "--sound" in sys.argv:
        from firmware_bridge.stream import synthetic_events

        print(json.dumps({"demo_cry_seed_7": sound_figures(*demo_cry_events()),
                          "synthetic_chirp_1s": sound_figures(synthetic_events(frames=1, size=8, audio_s=1.0), 8000)},
                         indent=1))
        sys.exit(0)
    urls = ["pyboy://"]
    if "--mgba" in sys.argv:
        urls += [f"mgba://?hz={SETTINGS[0][0]}&gap_us={SETTINGS[0][1]}"]  # the default, no jitter
        urls += [f"mgba://?hz={hz}&gap_us={gap}&jitter_us={JITTER_US}" for hz, gap in SETTINGS]
    out = {"rom": rom_figures(), "sprite_set": sprite_set_bytes()}
    for url in urls:
        out[url] = {"bulk": bulk_figures(url), "stream": stream_figures(url), "creature": creature_figures(url)}
    print(json.dumps(out, indent=1))
