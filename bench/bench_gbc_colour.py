"""How true a Game Boy Color's screen is to the generated sprite, for docs/BENCHMARKS.md.

    python bench/bench_gbc_colour.py                 # the bundled model, seeds 0-9, demo defaults
    python bench/bench_gbc_colour.py --seeds 0 1 --json
    python bench/bench_gbc_colour.py --port 'mgba://?model=CGB'   # the same in mGBA's CGB model, Pi-like clocking
    python bench/bench_gbc_colour.py --stress         # the palette chooser alone on random many-colour sprites

Each seed runs `pxby-edge demo --to gameboy --port pyboy://cgb --seed N` (the link ROM in PyBoy's CGB
mode; ``--port mgba://?model=CGB`` for mGBA's) and reads its summary: of the sprite's drawn pixels on the final screen, the fraction whose
colour on the emulated LCD equals the sprite's colour rounded to RGB555, the mean ΔE (CIE76) of the
others, and how many commits needed more than the 7 free palettes (the chooser approximated them).
``--stress`` draws 24x24 sprites of N random NES colours (uniform noise: the worst case, every tile a
different set) at the demo's layout and measures ``palettes.choose`` alone, without an emulator.
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


def run_seed(seed: int, backend: str, port: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        # the command itself, not the installed entry point: another checkout's venv (one with mGBA) runs it too
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from firmware_bridge.commands import demo; demo.main(sys.argv[1:])",
             "--to", "gameboy", "--port", port, "--seed", str(seed), "--backend", backend,
             "--out", str(Path(tmp) / "demo"), "--json"],
            capture_output=True, text=True, env=env, cwd=tmp)
        if proc.returncode != 0:
            raise SystemExit(f"seed {seed}: {proc.stderr.strip()}")
        gb = json.loads(proc.stdout.strip().splitlines()[-1])["gameboy"]
    return {"seed": seed, "exact": gb["gb_colour_exact"], "error": gb["gb_colour_error"],
            "approx_commits": gb["gb_palette_approx_commits"], "commits": gb["gb_colour_commits"]}


def stress_row(n_colours: int, seed: int = 0) -> dict:
    import numpy as np

    from firmware_bridge.display import ScreenModel
    from firmware_bridge.gameboy import palettes
    from pxby_edge.vocab import DEFAULT_PALETTE

    rng = np.random.default_rng(seed)
    model = ScreenModel(DEFAULT_PALETTE)
    model.text = "a stress test"
    colours = rng.choice(len(DEFAULT_PALETTE), size=n_colours, replace=False)
    for r in range(24):
        model.set_row(r, rng.choice(colours, size=24))
    screen, mask = palettes.colour_screen(model, model.render())
    choice = palettes.choose(screen)
    exact, err = palettes.match(palettes.screen_rgb(palettes.shown(choice)), screen, mask)
    return {"colours": n_colours, "exact": exact, "error": err, "approximated": not choice.exact}


def _print(rows: list, as_json: bool, header: str, line) -> None:
    if as_json:
        print(json.dumps(rows))
        return
    print(header)
    print("|---" * header.count("|", 1) + "|")
    for r in rows:
        print(line(r))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--port", default="pyboy://cgb", help="the Game Boy Color: pyboy://cgb or mgba://?model=CGB")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--stress", action="store_true")
    args = ap.parse_args()
    if args.stress:
        _print([stress_row(n) for n in (4, 8, 16, 32, 55)], args.json,
               "| sprite colours | exact in RGB555 | mean ΔE of the rest | approximated |",
               lambda r: f"| {r['colours']} | {r['exact']:.1%} | {r['error']:.2f} | {'yes' if r['approximated'] else 'no'} |")
        return
    rows = [run_seed(s, args.backend, args.port) for s in args.seeds]
    _print(rows, args.json, "| seed | exact in RGB555 | mean ΔE of the rest | commits approximated |",
           lambda r: f"| {r['seed']} | {r['exact']:.1%} | {r['error']:.2f} | {r['approx_commits']} of {r['commits']} |")
    if not args.json:
        print(f"\nmean exact {sum(r['exact'] for r in rows) / len(rows):.1%}, lowest {min(r['exact'] for r in rows):.1%}")


if __name__ == "__main__":
    main()
