"""Per-token cost of the generation loop itself (sampling, contexts, plan, events), no model.

    .venv/bin/python bench/bench_generator.py --tokens 20000 --repeats 5

The null backend (``constant=True``) returns one fixed array instantly, so what is measured is everything pxby-edge adds
around an interpreter's invoke(): the overhead the runtime issue bounds at 50 µs per token.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pxby_edge.backends.null import NullBackend
from pxby_edge.generate import GenerationRequest, Generator


def run(tokens: int, batch: int, temperature: float) -> dict:
    req = GenerationRequest(
        prompt="a small blue water creature", frames=3, width=24, height=24, audio_samples=tokens,
        max_tokens=tokens, temperature=temperature, seed=1, batch=batch,
    )
    gen = Generator(NullBackend(batch=batch, constant=True), req)
    t0 = time.perf_counter()
    n_events = sum(1 for _ in gen.events())
    seconds = time.perf_counter() - t0
    made = sum(lane.generated for lane in gen.lanes)
    step_us = np.asarray(gen.step_ns) / 1e3 / batch
    return {
        "batch": batch, "temperature": temperature, "tokens": made, "events": n_events,
        "us_per_token_mean": seconds / made * 1e6, "us_per_token_median": float(np.median(step_us)),
        "us_per_token_p99": float(np.percentile(step_us, 99)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for batch in (1, 8):
        for temperature in (0.0, 0.8):
            best = min((run(args.tokens, batch, temperature) for _ in range(args.repeats)), key=lambda r: r["us_per_token_median"])
            rows.append(best)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'batch':>5} {'temp':>5} {'tokens':>7} {'µs/token median':>16} {'p99':>8} {'mean':>8}")
    for r in rows:
        print(f"{r['batch']:>5} {r['temperature']:>5} {r['tokens']:>7} {r['us_per_token_median']:>16.1f} {r['us_per_token_p99']:>8.1f} {r['us_per_token_mean']:>8.1f}")


if __name__ == "__main__":
    main()
