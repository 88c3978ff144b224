"""Training throughput: our loop vs an upstream-style loop, same model, batch and sequence length, one run.

    python bench/bench_train.py --items 24 --steps 20 --config small --batch 16 --seq-len 512

Both loops train a fresh model from the same seed on the same synthetic items for the same number of
optimizer steps; tokens/s counts real (unpadded) positions. Each loop runs ``--repeats`` times,
alternating, and the best run of each is compared (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch

    from training.config import load_preset
    from training.data import load_streams
    from training.model import PixelBytesLSTM
    from training.synth import write_dataset
    from training.train import train
    from training.upstream_loop import run_upstream_loop

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small")
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_cfg, cfg = load_preset(args.config)
    cfg = replace(cfg, batch_size=args.batch, seq_len=args.seq_len, stride=args.seq_len, max_steps=args.steps,
                  eval_every=10**9, val_fraction=0.0, warmup_steps=1, num_threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "d", args.items, seed=0)
        streams = load_streams(data, cfg.slicing, 0.0, cache_dir=Path(tmp) / "cache").train
        ours, theirs = [], []
        for r in range(args.repeats):
            res = train(data, Path(tmp) / f"o{r}", model_cfg, cfg, device=args.device, progress=False,
                        log=lambda *_: None, cache_dir=Path(tmp) / "cache")
            ours.append(res["tokens_per_s"])
            torch.manual_seed(cfg.seed)
            model = PixelBytesLSTM(model_cfg)
            up = run_upstream_loop(model, streams, args.batch, args.seq_len, args.seq_len, args.steps,
                                   device=args.device, use_scaler=args.device == "cuda")
            theirs.append(up["tokens_per_s"])
    result = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(0),
        "threads": args.threads, "config": args.config, "batch": args.batch, "seq_len": args.seq_len,
        "steps": args.steps, "ours_tokens_per_s": max(ours), "upstream_tokens_per_s": max(theirs),
        "ratio": max(ours) / max(theirs), "runs_ours": ours, "runs_upstream": theirs,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['device']}, {args.config}, batch {args.batch} x seq {args.seq_len}, {args.steps} steps:")
        print(f"  ours      {result['ours_tokens_per_s']:>10,.0f} tok/s  (runs {', '.join(f'{x:,.0f}' for x in ours)})")
        print(f"  upstream  {result['upstream_tokens_per_s']:>10,.0f} tok/s  (runs {', '.join(f'{x:,.0f}' for x in theirs)})")
        print(f"  ratio ours/upstream: {result['ratio']:.2f}x")


if __name__ == "__main__":
    main()
