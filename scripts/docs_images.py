"""Make the pictures the docs show, each from what it shows (never by hand).

    make docs-images                                              # all of them, into docs/img/
    .venv/bin/python scripts/docs_images.py --out /tmp/img handheld-screen   # one, somewhere else
    .venv/bin/python scripts/docs_images.py --list

- handheld-screen (.png, .gif): the screen of the simulated handheld after `pxby-edge demo` on the bundled
  model, run as `make demo` runs it (its default prompt; seed 0, since the demo draws a random one unless
  given one) with the litert backend (what the `[pi]` install has), scaled 3x without smoothing.
- bench-throughput: tokens/s per backend from the recorded `pxby-edge bench -r 5 --format json` rows in
  bench/results/bench_throughput.json (bench/plots.py throughput --rows), not a new measurement.
- quantize-size-agreement: size against agreement from bench/results/quantize_demo.json (bench/plots.py).

tests/test_docs_images.py fails when a committed picture differs from what this script makes. A new
picture is one more entry in PICTURES: a demo screen with other demo options is `demo_screen(...)` (as the
Game Boy screen is), anything else a `Picture` with its own `make`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
DEMO_BACKEND = "litert"  # the interpreter of `make demo` (the [pi] extra); others round differently
DEMO_SEED = 0  # the demo draws a random seed unless given one: this picture is seed 0
SCREEN_SCALE = 3


@dataclass(frozen=True)
class Picture:
    name: str
    files: tuple  # file names it writes under the output folder
    make: Callable[[Path], None]  # writes ``files`` into the given (empty) folder
    plot: bool  # drawn by matplotlib: compared with the plot tolerance (tests/test_docs_images.py)
    needs: tuple = ()  # modules it imports, so a test can say what is missing


def _cli(*args: str, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:  # its own error line (or traceback) says why; its "wrote" lines name a temp folder
        raise SystemExit(f"error: {' '.join(args[:3])} ... failed:\n{proc.stderr.strip()}")


def _scaled(src: Path, dst: Path, scale: int) -> None:
    """``src`` (PNG or animated GIF) scaled by an integer without smoothing; GIF frame times kept."""
    from PIL import Image, ImageSequence

    with Image.open(src) as im:
        frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)]
        durations = [f.info.get("duration", 80) for f in ImageSequence.Iterator(im)]
    frames = [f.resize((f.width * scale, f.height * scale), Image.NEAREST) for f in frames]
    if dst.suffix == ".gif":
        frames[0].save(dst, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    else:
        frames[0].save(dst)


def demo_screen(name: str, demo_args: tuple = (), capture: str = "handheld", suffixes=(".png", ".gif"),
                needs: tuple = ()) -> Picture:
    """The screen ``pxby-edge demo DEMO_ARGS`` leaves in ``--out/CAPTURE/screen.*``, as ``NAME.*``."""

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            demo = Path(tmp) / "demo"
            _cli("-m", "pxby_edge.cli", "demo", "--backend", DEMO_BACKEND, "--seed", str(DEMO_SEED),
                 *demo_args, "--out", str(demo), cwd=Path(tmp))
            for suffix in suffixes:
                _scaled(demo / capture / f"screen{suffix}", out / f"{name}{suffix}", SCREEN_SCALE)

    return Picture(name, tuple(name + s for s in suffixes), make, plot=False, needs=("ai_edge_litert", *needs))


def bench_plot(name: str, what: str, rows: str, *extra: str) -> Picture:
    """``bench/plots.py WHAT`` drawn from the recorded rows ``rows`` (a path under the checkout)."""

    def make(out: Path) -> None:
        _cli(str(ROOT / "bench" / "plots.py"), what, *extra, str(ROOT / rows), "--out", str(out / f"{name}.png"),
             cwd=ROOT)

    return Picture(name, (f"{name}.png",), make, plot=True, needs=("matplotlib",))


PICTURES = (
    demo_screen("handheld-screen"),
    # the demo's creature on the link ROM in PyBoy (docs/GAMEBOY.md, README); seed 7 as the Game Boy figures use
    demo_screen("gameboy-creature", ("--to", "gameboy", "--seed", "7"), capture="gameboy", suffixes=(".png",),
                needs=("pyboy",)),
    # the same creature on a Game Boy Color (PyBoy's CGB mode): palettes and tile attributes from the host
    demo_screen("gameboy-color-creature", ("--to", "gameboy", "--port", "pyboy://cgb", "--seed", "7"),
                capture="gameboy", suffixes=(".png",), needs=("pyboy",)),
    bench_plot("bench-throughput", "throughput", "bench/results/bench_throughput.json", "--rows"),
    bench_plot("quantize-size-agreement", "quantize", "bench/results/quantize_demo.json"),
)


def make_pictures(names, out: Path) -> list:
    """Make the named pictures (all when none) into ``out``; each lands whole or not at all."""
    chosen = [p for p in PICTURES if not names or p.name in names]
    unknown = set(names or ()) - {p.name for p in PICTURES}
    if unknown:
        raise SystemExit(f"error: no picture named {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(p.name for p in PICTURES)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for picture in chosen:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            picture.make(Path(tmp))
            for file in picture.files:
                os.replace(Path(tmp) / file, out / file)
                written.append(out / file)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="pictures to make (default: all)")
    ap.add_argument("--out", type=Path, default=IMG, help="folder to write to (default: docs/img)")
    ap.add_argument("--list", action="store_true", help="list the pictures and their files")
    args = ap.parse_args(argv)
    if args.list:
        for p in PICTURES:
            print(f"{p.name:<26} {' '.join(p.files)}")
        return 0
    for path in make_pictures(args.names, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
