"""Default generation over many seeds: how each run ends, the sprite sizes, whether a WAV came out.

    .venv/bin/python bench/bench_seed_sweep.py --seeds 50

Runs ``run_generation`` with the default request (the bundled model, its plan bounded by the manifest's
training geometry) for seeds 0..N-1, each into its own folder, and prints the distribution of sprite
sizes (frames × height × width), stop reasons, the bounds that cut a segment, and token counts.
``--unbounded`` runs the same seeds without the geometry bounds (what ``generate`` did before them).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from pxby_edge.generate import GenerationRequest, run_generation, tokenizer_for
from pxby_edge.manifest import read_manifest
from pxby_edge.outputs import write_generation


def sweep(seeds: int, backend: str, bounded: bool, max_tokens: int) -> list[dict]:
    from pxby_edge.generate import default_model_path

    tok = tokenizer_for(read_manifest(default_model_path()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            out = Path(tmp) / f"seed{seed}"
            t0 = time.perf_counter()
            run = run_generation(GenerationRequest(seed=seed, bounded=bounded, max_tokens=max_tokens), backend=backend)
            s = run.complete()
            write_generation(run.generator, out)
            decoded = tok.decode(np.load(out / "tokens.npz")["tokens"])
            frames = decoded["frame_ids"]
            rows.append({
                "seed": seed, "tokens": s["tokens"], "stop_reason": s["stop_reason"],
                "sprite": f"{len(frames)}x{frames[0].shape[0]}x{frames[0].shape[1]}" if frames else "none",
                "audio_samples": int(decoded["audio"].shape[-1]) if decoded["audio"].size else 0,
                "wav": (out / "audio.wav").is_file(),
                "bounds": sorted({b for seg in s["segments"][0] for b in seg["bounds"]}),
                "seconds": time.perf_counter() - t0, "backend": s["backend"],
            })
    return rows


def report(rows: list[dict]) -> str:
    def dist(key):
        c = collections.Counter(r[key] if not isinstance(r[key], list) else ",".join(r[key]) or "none" for r in rows)
        return ", ".join(f"{k}: {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0]))))

    tokens = np.array([r["tokens"] for r in rows])
    audio = np.array([r["audio_samples"] for r in rows])
    return "\n".join([
        f"runs {len(rows)} (backend {rows[0]['backend']}), {sum(r['seconds'] for r in rows):.0f} s",
        f"stop reasons    {dist('stop_reason')}",
        f"WAV written     {dist('wav')}",
        f"sprites (FxHxW) {dist('sprite')}",
        f"bounds that cut {dist('bounds')}",
        f"tokens          min {tokens.min()}, median {int(np.median(tokens))}, max {tokens.max()}",
        f"audio samples   min {audio.min()}, median {int(np.median(audio))}, max {audio.max()}",
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--max-tokens", type=int, default=20000)
    ap.add_argument("--unbounded", action="store_true", help="leave the training geometry out of the plan")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = sweep(args.seeds, args.backend, not args.unbounded, args.max_tokens)
    print(json.dumps(rows, indent=1) if args.json else report(rows))


if __name__ == "__main__":
    main()
