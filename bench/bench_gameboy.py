"""Figures of the Game Boy link for docs/BENCHMARKS.md: ROM size, receive-path cycles, bytes per sprite set, link rate.

    python bench/bench_gameboy.py          # needs PyBoy and the build files (make -C firmware_bridge/gameboy)
    python bench/bench_gameboy.py --sound  # the sound methods against the reference (docs/GAMEBOY.md)

Cycles per received byte are measured in PyBoy, not counted by hand: a packet is put straight
into the receive ring and a hook on the C function that takes bytes from it timestamps every
call with (frame, LY); 114 M-cycles per line.
"""

from __future__ import annotations

import json
import math
import re
import warnings

from firmware_bridge.gameboy import ROM_PATH
from firmware_bridge.gameboy import packets as gl

BUILD = ROM_PATH.parent / "build"
CYCLES_PER_LINE = 114  # M-cycles (456 T-cycles)


def rom_figures() -> dict:
    rom = ROM_PATH.read_bytes()
    code = re.search(r"^_CODE\s+([0-9A-F]+)\s+([0-9A-F]+)", (BUILD / "pxby-link.map").read_text(), re.M)
    return {"rom_bytes": len(rom), "code_bytes": int(code.group(2), 16), "code_start": f"0x{int(code.group(1), 16):04X}"}


def _address_of(label: str) -> int:
    """ROM address of a C function: its offset in main.lst plus where the linker put ``_main``."""
    lst = (BUILD / "main.lst").read_text()
    off = {m.group(2): int(m.group(1), 16) for m in re.finditer(r"^\s+([0-9A-F]{6})\s+\d+\s+(_\w+):", lst, re.M)}
    main_at = int(re.search(r"^\s+([0-9A-F]+)\s+_main\s", (BUILD / "pxby-link.map").read_text(), re.M).group(1), 16)
    return main_at - off["_main"] + off[label]


def receive_cycles(payload_len: int = 120) -> float:
    """M-cycles the main loop spends per byte taken from the ring while reading a packet."""
    from pyboy import PyBoy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pb = PyBoy(str(ROM_PATH), window="null", sound_emulated=False, log_level="ERROR")
    stamps: list[tuple[int, int]] = []
    frame = [0]
    pb.hook_register(0, _address_of("_take"), lambda _: stamps.append((frame[0], pb.memory[0xFF44])), None)
    for _ in range(90):  # boot ROM, then the link ROM idles in take()
        pb.tick(1, False, False)
        frame[0] += 1
    # bad checksum on purpose: the receive path only, nothing applied
    wire = gl.encode_packet(1, gl.T_VRAM, bytes([0, 0x80]) + bytes(payload_len - 2))[:-1] + b"\x00"
    for i, b in enumerate(wire):
        pb.memory[0xDE00 + i] = b
    stamps.clear()
    pb.memory[0xFF81] = 0
    pb.memory[0xFF80] = len(wire)
    for _ in range(3):
        pb.tick(1, False, False)
        frame[0] += 1
    pb.stop(save=False)
    t = [f * 154 + ly for f, ly in stamps[: len(wire)]]
    return float((t[-1] - t[0]) * CYCLES_PER_LINE / (len(t) - 1))


def stream_figures() -> dict:
    """The demo-sized stream (synthetic 24x24 sprite, 3 frames) to the ROM in PyBoy."""
    from firmware_bridge.gameboy.run import GameBoyRun
    from firmware_bridge.stream import Streamer, synthetic_events

    events = synthetic_events(frames=3, size=24, audio_s=0.5)
    with GameBoyRun("pyboy://") as run:
        streamer = Streamer(run.link, audio_rate=8000)
        for event in events:
            streamer.feed(event)
        streamer.finish()
        c = run.counters()
        ticks = run.port.ticks
    seconds = ticks / 59.7275
    return {"packets": c["gb_packets"], "payload_bytes": c["gb_payload_bytes"], "link_bytes": c["gb_bytes"],
            "flips": c["gb_flips"], "tiles_written": c["gb_tiles_written"], "map_bytes": c["gb_map_bytes"],
            "sound_frames": c["gb_sound_frames"], "emulated_s": round(seconds, 2),
            "payload_bytes_per_s": round(c["gb_payload_bytes"] / seconds),
            "link_efficiency": round(c["gb_payload_bytes"] / c["gb_bytes"], 3)}


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
    opts = {p.name: p.default for p in demo.params if p.name in names}
    opts.update(DEMO_DEFAULTS, seed=seed)
    gen = run_generation(request_from_options(**opts)).generator
    return list(gen.events()), gen.audio_rate, gen.audio_samples


if __name__ == "__main__":
    import sys

    if "--sound" in sys.argv:
        from firmware_bridge.stream import synthetic_events

        print(json.dumps({"demo_cry_seed_7": sound_figures(*demo_cry_events()),
                          "synthetic_chirp_1s": sound_figures(synthetic_events(frames=1, size=8, audio_s=1.0), 8000)},
                         indent=1))
        sys.exit(0)
    out = {"rom": rom_figures(), "receive_mcycles_per_byte": round(receive_cycles(), 1),
           "serial_isr_mcycles": {"to_rearm": 32, "total": 72}, "sprite_set": sprite_set_bytes(),
           "demo_stream": stream_figures()}
    out["receive_us_per_byte"] = round(out["receive_mcycles_per_byte"] / 1.048576, 1)
    print(json.dumps(out, indent=1))
