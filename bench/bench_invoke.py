"""How steady the bare invoke() of a model file is on this machine, window by window.

    .venv/bin/python bench/bench_invoke.py /tmp/pxby-bench/up_int8.tflite --seconds 30
    .venv/bin/python bench/bench_invoke.py up_dynamic.tflite up_int4.tflite up_int8.tflite --seconds 60

Runs invoke() (nothing else) in windows of 500 calls and prints each window's median in µs, then the
spread of those medians. On a shared host the windows say how much of a row-to-row difference in
``pxby-edge bench`` is the neighbours rather than the code. With several files the windows interleave
(one window of each file in turn), so every file sees the same neighbours, and each file's median of
window medians is compared with the first file's (``speedup`` = first / this).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _invoker(model: Path, threads: int):
    from pxby_edge.backends import open_backend

    be = open_backend(model, "litert", threads=threads)
    be.reset()
    be.step_buffer()
    return be, be.bare_invoke


def _window(invoke, calls: int) -> float:
    perf = time.perf_counter_ns
    ts = np.empty(calls, dtype=np.int64)
    for k in range(calls):
        t = perf()
        invoke()
        ts[k] = perf() - t
    return float(np.median(ts)) / 1e3


def windows(model: Path, seconds: float, calls: int = 500, threads: int = 1) -> list:
    return interleaved([model], seconds, calls, threads)[0]


def interleaved(models: list, seconds: float, calls: int = 500, threads: int = 1) -> list:
    """Window medians (µs) per model, the models taking turns window by window."""
    opened = [_invoker(m, threads) for m in models]  # kept open: the backend owns the interpreter
    out: list = [[] for _ in models]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for k, (_, invoke) in enumerate(opened):
            out[k].append(_window(invoke, calls))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--calls", type=int, default=500, help="invoke() calls per window")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    runs = interleaved(args.models, args.seconds, args.calls)
    first = float(np.median(runs[0]))
    for model, w in zip(args.models, runs):
        q = np.percentile(w, [0, 5, 50, 95, 100])
        if len(args.models) == 1:
            print(" ".join(f"{x:.0f}" for x in w))
        print(f"{model}: {model.stat().st_size:,} B, {len(w)} windows of {args.calls} invokes: min {q[0]:.1f}  "
              f"p5 {q[1]:.1f}  median {q[2]:.1f}  p95 {q[3]:.1f}  max {q[4]:.1f} µs"
              + (f"  speedup {first / q[2]:.2f}x" if len(args.models) > 1 else ""))
    if args.json:
        args.json.write_text(json.dumps([{"model": str(m), "bytes": m.stat().st_size, "calls": args.calls,
                                          "window_medians_us": w} for m, w in zip(args.models, runs)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
