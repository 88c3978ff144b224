"""Prompt adherence of a model file: does the sprite's dominant colour match the prompt's colour word?

    .venv/bin/python bench/bench_adherence.py --per-colour 10 --json adherence.json

For every colour word of the synthetic dataset (docs/SYNTH.md), N dataset-style prompts
("a {size} {colour} {element} creature with {features}. it is {colour}.") go through the model file
as users run it (``open_backend`` + ``Generator``: text closed at the prompt, one 24x24 frame,
temperature 0.8, seed per prompt); the dominant body colour of each sprite is compared with the word.
Default model: the bundled one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def adherence(model, per_colour: int, temperature: float, seed: int, backend: str, size_px: int = 24) -> dict:
    from pxby_edge.backends import open_backend
    from pxby_edge.generate import GenerationRequest, Generator
    from training.synth import COLOURS, ELEMENTS, FEATURES, SIZES, caption, dominant_colour

    be = open_backend(model, backend=backend)
    v = be.manifest.vocab
    rng = np.random.default_rng(seed)
    per = {}
    k = 0
    for colour in COLOURS:
        hits = 0
        for _ in range(per_colour):
            element = list(ELEMENTS)[rng.integers(len(ELEMENTS))]
            size = list(SIZES)[rng.integers(len(SIZES))]
            feats = sorted(rng.choice(list(FEATURES), size=int(rng.integers(1, 4)), replace=False).tolist(), key=list(FEATURES).index)
            req = GenerationRequest(prompt=caption(colour, element, size, feats), modalities=("text", "image"), complete_text=False,
                                    frames=1, width=size_px, height=size_px, temperature=temperature, seed=seed + k,
                                    max_tokens=size_px * (size_px + 1) + 8)
            k += 1
            gen = Generator(be, req)
            for _ in gen.events():
                pass
            toks = np.asarray(gen.lanes[0].tokens)
            pixels = toks[(toks >= v.palette_offset) & (toks < v.action_offset)] - v.palette_offset
            hits += dominant_colour(pixels) == colour
        per[colour] = hits / per_colour
    return {"model": str(model), "backend": be.name, "per_colour_n": per_colour, "temperature": temperature,
            "per_colour": per, "overall": float(np.mean(list(per.values())))}


def main():
    from pxby_edge.generate import default_model_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(default_model_path()))
    ap.add_argument("--per-colour", type=int, default=10)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = adherence(args.model, args.per_colour, args.temperature, args.seed, args.backend)
    res["seconds"] = time.perf_counter() - t0
    print(f"{res['backend']}: overall {res['overall']:.1%} over {args.per_colour} prompts per colour ({res['seconds']:.0f} s)")
    for c, f in res["per_colour"].items():
        print(f"  {c:<8} {f:.0%}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
