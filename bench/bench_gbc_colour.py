"""How true a Game Boy Color's screen is to the generated sprite, for docs/BENCHMARKS.md.

    python bench/bench_gbc_colour.py                 # the bundled model, seeds 0-9, demo defaults
    python bench/bench_gbc_colour.py --seeds 0 1 --json

Each seed runs `pxby-edge demo --to gameboy --port pyboy://cgb --seed N` (the link ROM in PyBoy's CGB
mode) and reads its summary: of the sprite's drawn pixels on the final screen, the fraction whose
colour on the emulated LCD equals the sprite's colour rounded to RGB555, the mean ΔE (CIE76) of the
others, and how many commits needed more than the 7 free palettes (the chooser approximated them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_seed(seed: int, backend: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        proc = subprocess.run(
            [sys.executable, "-m", "pxby_edge.cli", "demo", "--to", "gameboy", "--port", "pyboy://cgb", "--seed",
             str(seed), "--backend", backend, "--out", str(Path(tmp) / "demo"), "--json"],
            capture_output=True, text=True, env=env, cwd=tmp)
        if proc.returncode != 0:
            raise SystemExit(f"seed {seed}: {proc.stderr.strip()}")
        gb = json.loads(proc.stdout.strip().splitlines()[-1])["gameboy"]
    return {"seed": seed, "exact": gb["gb_colour_exact"], "error": gb["gb_colour_error"],
            "approx_commits": gb["gb_palette_approx_commits"], "commits": gb["gb_colour_commits"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [run_seed(s, args.backend) for s in args.seeds]
    if args.json:
        print(json.dumps(rows))
        return
    print("| seed | exact in RGB555 | mean ΔE of the rest | commits approximated |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['exact']:.1%} | {r['error']:.2f} | {r['approx_commits']} of {r['commits']} |")
    exact = sum(r["exact"] for r in rows) / len(rows)
    print(f"\nmean exact {exact:.1%}, lowest {min(r['exact'] for r in rows):.1%}")


if __name__ == "__main__":
    main()
