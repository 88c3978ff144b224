"""The link ROM under a Pi-like SPI master in mGBA (``mgba://``): re-arm latency, the shortest byte
period it takes, and the stream's figures at the ``spi://`` default, for docs/BENCHMARKS.md and the
limits ``spi://`` checks (docs/GAMEBOY.md, "Accepted clock and gap").

    python bench/bench_gameboy_timing.py            # all four (about 10 minutes on 2 shared cores)
    python bench/bench_gameboy_timing.py --rearm    # one of them: --rearm, --budget, --stream, --hello

Re-arm: every write of SC with bit 7 set, timed (mGBA's clock, via an SIO driver) from the 8th edge of
the byte before; the demo-sized stream at 131 kHz with a 300 us gap. Budget: for each hz, the shortest
gap at which a demo-sized stream, started at a 300 us gap (so HELLO's own start-up cost does not
count) then switched to it, ends with the simulator's screen, whole VRAM and no overrun, for 3 seeds.
Stream: the same stream from power-on at the given setting (default: the spi:// default).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics

import numpy as np

from firmware_bridge.gameboy import packets as gl
from firmware_bridge.gameboy import spi
from firmware_bridge.gameboy.mgba_link import UNITS_PER_S, MgbaPort
from firmware_bridge.stream import Streamer, synthetic_events

EVENTS = synthetic_events(frames=3, size=24, audio_s=0.5)  # the demo's size: 24x24, 3 frames, a 0.5 s cry


def _simulator_screen(events):
    from firmware_bridge.device import DeviceCore
    from firmware_bridge.virtual import VirtualLine, VirtualLink

    device = DeviceCore()
    link = VirtualLink(device, VirtualLine(921600), seed=3, line_bps=92160).connect()
    streamer = Streamer(link, audio_rate=8000)
    for event in events:
        streamer.feed(event)
    streamer.finish()
    return device.screen.copy()


def _stream(port, events=EVENTS):
    from firmware_bridge.gameboy.session import connect

    link = connect(port)
    streamer = Streamer(link, audio_rate=8000)
    for event in events:
        streamer.feed(event)
    streamer.finish()
    return link


def rearm(hz: int = 131072, gap_us: int = 300, seed: int = 0) -> dict:
    """Microseconds from a byte's 8th edge to the ROM's next SC = 0x80."""
    from mgba.gb import GBSIODriver

    port = MgbaPort(hz=hz, gap_us=gap_us, jitter_us=100, seed=seed, sound=False)
    lib, ffi = port._lib, port._ffi
    waits: list[float] = []

    class Timer(GBSIODriver):
        def writeSC(self, value):  # noqa: N802 (the name mGBA's binding calls)
            if value & 0x80 and port.completed_at:
                now = lib.mTimingCurrentTime(ffi.addressof(port.gb.timing))
                waits.append((now - port.completed_at) / UNITS_PER_S * 1e6)
                port.completed_at = 0
            return value

        def writeSB(self, value):  # noqa: N802 (the name mGBA's binding calls)
            pass

    timer = Timer()
    port.core.attach_sio(timer)
    _stream(port)
    w = sorted(waits)
    return {"setting": f"hz={hz}&gap_us={gap_us}", "re-arms": len(w), "median_us": round(statistics.median(w), 1),
            "p99_us": round(w[int(0.99 * (len(w) - 1))], 1), "p999_us": round(w[int(0.999 * (len(w) - 1))], 1),
            "max_us": round(w[-1], 1), "over_50_us": sum(x > 50 for x in w)}


def _holds(hz: int, gap_us: int, seed: int, simulated) -> bool:
    """The stream, from the first byte after its HELLO's ACK at ``gap_us``, loses no byte, needs no resend
    and ends with the simulator's screen."""
    port = MgbaPort(hz=hz, gap_us=300, jitter_us=0, seed=seed, sound=False, boot_frames=10)
    tick = port.tick
    at_hello: list = []

    def switching_tick():  # the stream's own HELLO at 300 us, everything after it at ``gap_us``
        tick()
        if port.host.acked.get(gl.T_HELLO) and not at_hello:
            port.master.gap_us = gap_us
            at_hello.append((port.host.counters["retransmits"], port.stats["lost_bytes"], port.stats["split_bytes"]))

    port.tick = switching_tick
    try:
        link = _stream(port)
    except Exception:  # noqa: BLE001 (a LinkTimeout or a screen off the palette: the setting does not hold)
        return False
    c = link.counters()
    after = (c["gb_retransmits"], port.stats["lost_bytes"], port.stats["split_bytes"])
    return after == at_hello[0] and c["gb_recoveries"] == 0 and np.array_equal(port.shades(), simulated)


def budget(hzs=(131072, 500000), bytes_us=(100, 110, 120, 130, 140, 150, 160, 170, 180)) -> list[dict]:
    """For each hz, the byte periods (8 bits + gap) at which the stream holds for 3 seeds."""
    simulated = _simulator_screen(EVENTS)
    rows = []
    for hz in hzs:
        gaps = [round(b - 8e6 / hz) for b in bytes_us if b - 8e6 / hz >= 0]
        held = [g for g in gaps if all(_holds(hz, g, seed, simulated) for seed in (0, 1, 2))]
        rows.append({"hz": hz, "gaps_tried_us": gaps, "gaps_held_us": held,
                     "shortest_byte_us": round(8e6 / hz + min(held), 1) if held else None})
    return rows


def stream(hz: int = spi.DEFAULT_HZ, gap_us: int = spi.DEFAULT_GAP_US, seed: int = 0) -> dict:
    """The demo-sized stream from power-on: link bytes, payload rate, HELLO and the last flip in emulated s."""
    port = MgbaPort(hz=hz, gap_us=gap_us, jitter_us=100, seed=seed, boot_frames=10)
    flips_at: list[float] = []
    hello_at: list[float] = []
    tick = port.tick

    def timed_tick():
        tick()
        if not hello_at and port.host.acked.get(gl.T_HELLO):
            hello_at.append(port.elapsed_s)
        if len(flips_at) < port.host.acked.get(gl.T_FLIP, 0):
            flips_at.append(port.elapsed_s)

    port.tick = timed_tick
    start = port.elapsed_s
    try:
        link = _stream(port)
    except Exception as exc:  # noqa: BLE001 (reported as the row's outcome)
        return {"setting": f"hz={hz}&gap_us={gap_us}", "outcome": str(exc)[:160]}
    c = link.counters()
    seconds = port.elapsed_s - start
    return {"setting": f"hz={hz}&gap_us={gap_us}", "outcome": "ok", "link_bytes": c["gb_bytes"],
            "payload_bytes": c["gb_payload_bytes"], "emulated_s": round(seconds, 2),
            "payload_B_per_s": round(c["gb_payload_bytes"] / seconds), "hello_acked_s": round(hello_at[0] - start, 3),
            "last_flip_after_hello_s": round(flips_at[-1] - hello_at[0], 2), "retransmits": c["gb_retransmits"],
            "overruns": c["gb_err_overrun"], "lost_bytes": port.stats["lost_bytes"]}


def hello(hz: int, gap_us: int, seeds: int = 20) -> dict:
    """Frames from the host's first byte to HELLO's ACK (the Game Boy booted 10 frames before), over seeds."""
    frames = []
    for seed in range(seeds):
        port = MgbaPort(hz=hz, gap_us=gap_us, jitter_us=100, seed=seed, sound=False, boot_frames=10)
        port.host.hello()
        host = port.host
        port.run_until(lambda h=host: h.idle, 300, "HELLO")
        frames.append(port.ticks - 10)
    return {"setting": f"hz={hz}&gap_us={gap_us}", "seeds": seeds, "median_frames": statistics.median(frames),
            "max_frames": max(frames)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("rearm", "budget", "stream", "hello"):
        ap.add_argument(f"--{name}", action="store_true")
    args = ap.parse_args()
    every = not (args.rearm or args.budget or args.stream or args.hello)
    if every or args.rearm:
        print(json.dumps({"rearm": rearm()}))
    if every or args.budget:
        print(json.dumps({"budget": budget()}))
    fastest = max(spi.GAP_MIN_US, math.ceil(spi.BYTE_MIN_US - 8e6 / spi.HZ_MAX))
    settings = [(spi.DEFAULT_HZ, spi.DEFAULT_GAP_US), (spi.HZ_MIN, spi.GAP_MIN_US), (spi.HZ_MIN, spi.GAP_MAX_US),
                (spi.HZ_MAX, fastest), (spi.HZ_MAX, spi.GAP_MAX_US)]
    if every or args.hello:
        for hz, gap in settings:
            print(json.dumps({"hello": hello(hz, gap)}))
    if every or args.stream:
        for hz, gap in settings:
            print(json.dumps({"stream": stream(hz, gap)}))


if __name__ == "__main__":
    main()
