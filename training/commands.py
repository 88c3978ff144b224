"""``pxby-edge dataset synth`` and ``pxby-edge train``: thin click commands over training/.

    pxby-edge dataset synth --n 64 --out runs/synth
    pxby-edge train --data runs/synth --out runs/ckpt --config small --epochs 1

Module body stays light (no torch) so ``pxby-edge --help`` is instant.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def dataset():
    """Make datasets for training."""


@dataset.command()
@click.option("--n", "n", type=click.IntRange(1), default=1000, show_default=True, help="Number of creatures.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder to write (upstream layout).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed writes the same dataset.")
@click.option("--size", "size_px", type=click.IntRange(12, 128), default=24, show_default=True, help="Sprite width and height in pixels.")
@click.option("--backdrop", type=click.Choice(["tinted", "plain"]), default="tinted", show_default=True,
              help="tinted: the backdrop colour follows the colour word (version 2); plain: white (version 1).")
@click.option("--force", is_flag=True, help="Replace an existing synthetic dataset at --out.")
def synth(n, out, seed, size_px, backdrop, force):
    """Write N procedurally generated creatures: text/, images/ (animated GIF), audio/ (two-channel WAV).

    Each creature's colour, element, size and features are named in its text and drawn in its sprite
    and cry (docs/SYNTH.md has the mapping); synth.json lists every item's attributes.
    """
    from tqdm import tqdm

    from pxby_edge.cli import info, quiet
    from training.synth import write_dataset

    with tqdm(total=n, unit="item", disable=True if quiet() else None) as bar:
        write_dataset(out, n, seed=seed, size_px=size_px, force=force, progress=bar.update, backdrop=backdrop)
    info(f"wrote {n} items to {out}")


@click.command()
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Dataset folder (text/ images/ audio/) or .parquet file.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Checkpoint folder to write.")
@click.option("--config", "config", default="small", show_default=True, help="Preset (small, upstream, tiny) or a JSON file with model/train blocks.")
@click.option("--epochs", type=click.IntRange(0), help="Epochs (overrides the config).")
@click.option("--max-steps", type=click.IntRange(0), help="Stop after this many optimizer steps (overrides epochs).")
@click.option("--max-minutes", type=click.FloatRange(0), help="Wall-clock budget; the cosine schedule ends with it.")
@click.option("--eval-batches", type=click.IntRange(0), help="Held-out batches per periodic validation (0: all; the last one uses all).")
@click.option("--head-repeat", type=click.IntRange(0), help="Extra copies per epoch of each item's first window (text -> image).")
@click.option("--init", "init_from", type=click.Path(file_okay=False, path_type=Path), help="Start from this checkpoint's weights (same model config).")
@click.option("--batch", type=click.IntRange(1), help="Windows per batch (per rank).")
@click.option("--seq-len", type=click.IntRange(2), help="Contexts per window.")
@click.option("--stride", type=click.IntRange(1), help="Step between windows of one item.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), help="Peak learning rate.")
@click.option("--grad-accum", type=click.IntRange(1), help="Micro-batches per optimizer step.")
@click.option("--pad-weight", type=click.FloatRange(0), help="Loss weight of id 0 (upstream used 1/120 = 0.00833).")
@click.option("--eval-every", type=click.IntRange(1), help="Optimizer steps between validations.")
@click.option("--threads", type=click.IntRange(0), help="CPU threads for torch (0: torch's default).")
@click.option("--seed", type=int, help="Seed for weights and data order.")
@click.option("--qat", type=click.Choice(["none", "int4"]), help="int4: train the weight matrices on the int4 grid, so "
              "`quantize --recipe int4` loses nothing; the checkpoint holds the rounded matrices (default: none).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]), default="auto", show_default=True, help="Autocast on CUDA (ignored on CPU).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from last/.")
@click.option("--force", is_flag=True, help="Overwrite an existing --out.")
@click.option("--no-progress", is_flag=True, help="No progress bar (log lines only).")
@click.option("--cuda-graph/--no-cuda-graph", default=None,
              help="Replay each full-batch step as one CUDA graph (bit-identical, faster). Default: wherever it can run "
                   "(CUDA, --amp bf16 or off, no DDP, no --grad-accum).")
@click.option("--check-sync", type=click.Path(file_okay=False), hidden=True, help="Check DDP ranks hold equal weights after every step; write per-rank reports here.")
def train(data, out, config, epochs, max_steps, max_minutes, eval_batches, head_repeat, init_from, batch, seq_len, stride, lr, grad_accum, pad_weight, eval_every,
          threads, seed, qat, device, amp, resume, force, no_progress, cuda_graph, check_sync):
    """Train a PixelBytes LSTM and write an upstream-format checkpoint, metrics.csv and metrics.png.

    Runs unchanged under `torchrun --nproc_per_node=N` (DDP; gloo on CPU, NCCL on GPU).
    """
    from dataclasses import replace

    from pxby_edge.cli import info, show_progress
    from training.config import load_preset
    from training.qat import QAT_CHOICES
    from training.train import rate_text
    from training.train import train as run

    model_cfg, cfg = load_preset(config)
    overrides = {
        "epochs": epochs, "max_steps": max_steps, "max_minutes": max_minutes, "eval_batches": eval_batches,
        "head_repeat": head_repeat, "batch_size": batch, "seq_len": seq_len, "stride": stride,
        "lr": lr, "grad_accum": grad_accum, "pad_weight": pad_weight, "eval_every": eval_every,
        "num_threads": threads, "seed": seed, "qat_bits": None if qat is None else QAT_CHOICES[qat],
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    result = run(data, out, model_cfg, cfg, device=device, amp=amp, resume=resume, force=force,
                 progress=not no_progress and show_progress(), log=info, check_sync=check_sync, init_from=init_from,
                 cuda_graph=cuda_graph)
    import os

    if int(os.environ.get("RANK", 0)) == 0:
        info(
            f"done: {result['step']} steps, held-out all-slot acc {result['val_acc_all']:.4f}, "
            f"new-token acc {result['val_acc_new']:.4f}, {rate_text(result['tokens_per_s'], result['world'])}; checkpoint in {out}"
        )
