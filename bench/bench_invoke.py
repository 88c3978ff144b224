"""How steady the bare invoke() of a model file is on this machine, window by window.

    .venv/bin/python bench/bench_invoke.py /tmp/pxby-bench/up_int8.tflite --seconds 30

Runs invoke() (nothing else) in windows of 500 calls and prints each window's median in µs, then the
spread of those medians. On a shared host the windows say how much of a row-to-row difference in
``pxby-edge bench`` is the neighbours rather than the code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def windows(model: Path, seconds: float, calls: int = 500, threads: int = 1) -> list:
    from pxby_edge.backends import open_backend

    be = open_backend(model, "litert", threads=threads)
    be.reset()
    be.step_buffer()
    invoke, perf = be.bare_invoke, time.perf_counter_ns
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ts = np.empty(calls, dtype=np.int64)
        for k in range(calls):
            t = perf()
            invoke()
            ts[k] = perf() - t
        out.append(float(np.median(ts)) / 1e3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--calls", type=int, default=500, help="invoke() calls per window")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    w = windows(args.model, args.seconds, args.calls)
    print(" ".join(f"{x:.0f}" for x in w))
    q = np.percentile(w, [0, 5, 50, 95, 100])
    print(f"{len(w)} windows of {args.calls} invokes: min {q[0]:.1f}  p5 {q[1]:.1f}  median {q[2]:.1f}  "
          f"p95 {q[3]:.1f}  max {q[4]:.1f} µs")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "calls": args.calls, "window_medians_us": w}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
