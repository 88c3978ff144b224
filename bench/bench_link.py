"""Link goodput at simulated baud rates, without faults (and optionally with them).

    .venv/bin/python bench/bench_link.py --baud 115200 --baud 921600

A ``HostSession`` and a ``DeviceCore`` talk over a ``VirtualLine`` that moves baud/10 bytes a
second each way (8N1), on a simulated clock, so the figures do not depend on this machine's
speed. Goodput counts the payload bytes of reliable TILES messages the device acknowledged, per
simulated second, against the line rate (baud/10 bytes/s). Framing (header, CRC, COBS,
delimiter), ACK latency and the window are what separate the two.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from firmware_bridge import protocol as pr
from firmware_bridge.device import DeviceCore
from firmware_bridge.link import HostSession
from firmware_bridge.virtual import VirtualLine, run_until


def measure(baud: int, total_bytes: int, payload: int, window: int, corrupt: float = 0.0, drop: float = 0.0,
            seed: int = 0) -> dict:
    caps = pr.Capabilities(max_payload=payload, rx_window=window)
    device = DeviceCore(caps)
    host = HostSession(seed=seed, max_payload=payload, window=window, line_bps=baud / 10.0)
    line = VirtualLine(baud, seed=seed, corrupt=corrupt, drop=drop)
    host.connect(0)
    run_until(host, device, line, lambda: host.state == "ready")
    tiles_per_msg = (payload - pr.fixed_size(pr.TILES)) // pr.TILE_BYTES
    data = os.urandom(tiles_per_msg * pr.TILE_BYTES)
    n_msgs = max(1, total_bytes // (len(data) + 2))
    for i in range(n_msgs):
        host.queue(pr.TILES, pr.pack(pr.TILES, data, first_slot=(i * tiles_per_msg) % (caps.tile_slots - tiles_per_msg)),
                   pr.CH_GRAPHICS)
    acked0 = host.counters["payload_bytes_acked"]
    wall = time.perf_counter()
    ms = run_until(host, device, line, lambda: host.backlog == 0, limit_ms=3_600_000)
    wall = time.perf_counter() - wall
    acked = host.counters["payload_bytes_acked"] - acked0
    line_rate = baud / 10.0
    goodput = acked / (ms / 1000.0)
    return {
        "baud": baud,
        "payload": payload,
        "window": window,
        "messages": n_msgs,
        "bytes": acked,
        "sim_s": ms / 1000.0,
        "goodput_Bps": goodput,
        "line_Bps": line_rate,
        "efficiency": goodput / line_rate,
        "retransmits": host.counters["retransmits"],
        "wall_s": wall,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baud", type=int, action="append", help="line rate (repeatable); default 115200 and 921600")
    ap.add_argument("--bytes", type=int, default=200_000, help="payload bytes to move at each rate")
    ap.add_argument("--payload", type=int, default=512, help="frame payload (the device's max_payload)")
    ap.add_argument("--window", type=int, default=8, help="receive window in frames")
    ap.add_argument("--corrupt", type=float, default=0.0, help="fraction of bytes corrupted")
    ap.add_argument("--drop", type=float, default=0.0, help="fraction of bytes dropped")
    ap.add_argument("--min-efficiency", type=float, default=0.0, help="exit 1 below this goodput / line rate")
    args = ap.parse_args(argv)
    bauds = args.baud or [115200, 921600]
    print("command: " + " ".join([".venv/bin/python", "bench/bench_link.py", *(argv if argv is not None else sys.argv[1:])]))
    print(f"{'baud':>8} {'payload':>7} {'window':>6} {'bytes':>8} {'sim s':>7} {'goodput B/s':>12} {'line B/s':>9} "
          f"{'of line':>7} {'retx':>5} {'wall s':>6}")
    worst = 1.0
    for baud in bauds:
        r = measure(baud, args.bytes, args.payload, args.window, args.corrupt, args.drop)
        worst = min(worst, r["efficiency"])
        print(f"{r['baud']:>8} {r['payload']:>7} {r['window']:>6} {r['bytes']:>8} {r['sim_s']:>7.2f} "
              f"{r['goodput_Bps']:>12.0f} {r['line_Bps']:>9.0f} {100 * r['efficiency']:>6.1f}% {r['retransmits']:>5} "
              f"{r['wall_s']:>6.2f}")
    return 1 if worst < args.min_efficiency else 0


if __name__ == "__main__":
    sys.exit(main())
