"""``pxby-edge bench``: the llama-bench of this project (how fast each way of stepping a model is).

    pxby-edge bench model.tflite model_float.tflite --batch-model model_b8.tflite --tokens 2000 --vs-torch CKPT --json

Only click is imported here; the measuring lives in ``pxby_edge.backends.bench``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("models", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tokens", type=click.IntRange(16), default=2000, show_default=True, help="Tokens per configuration.")
@click.option("--batch", type=click.IntRange(1), default=None,
              help="Also measure batch B (one of the files, or --batch-model, must be exported at B).")
@click.option("--batch-model", "batch_models", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file exported at batch B (repeatable).")
@click.option("--backends", default=None, help="Comma-separated backends (default: every one installed).")
@click.option("--kinds", default="step,generate", show_default=True,
              help="Rows per backend: step (bare backend + invoke) and/or generate (end to end).")
@click.option("--vs-torch", "vs_torch", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Checkpoint folder: add upstream-style and kept-state PyTorch fp32 rows (needs torch).")
@click.option("--upstream-tokens", type=click.IntRange(2), default=1000, show_default=True,
              help="Tokens for the upstream-style row (its cost grows with the square of this).")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="Interpreter threads.")
@click.option("--variants", is_flag=True, help="Also litert with get/set-tensor I/O and each state policy.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--inline", is_flag=True, help="Run rows in this process (faster, but RSS and start-up mix).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON list.")
def bench(models, tokens, batch, batch_models, backends, kinds, vs_torch, upstream_tokens, threads, variants, seed,
          inline, as_json):
    """Per-token latency, tokens/s, start-up and peak RSS of every backend on one token stream."""
    from pxby_edge.backends.bench import bench as run_bench
    from pxby_edge.backends.bench import format_table
    from pxby_edge.errors import BackendError
    from pxby_edge.generate import default_model_path
    from pxby_edge.manifest import read_manifest

    paths = list(models) + list(batch_models)
    if not models:
        paths.insert(0, default_model_path())
    if batch is not None and batch > 1 and not any(read_manifest(p).batch == batch for p in paths):
        raise BackendError(
            f"none of the files is exported at batch {batch}; make one with "
            f"`pxby-edge quantize CKPT -o model_b{batch}.tflite --batch {batch}` and pass it with --batch-model"
        )
    names = [b.strip() for b in backends.split(",") if b.strip()] if backends else None
    kind_list = tuple(k.strip() for k in kinds.split(",") if k.strip())
    progress = None if as_json else (lambda label: click.echo(f"  measuring {label} ...", err=True))
    rows = run_bench(paths, tokens=tokens, backends=names, kinds=kind_list, threads=threads, vs_torch=vs_torch,
                     upstream_tokens=upstream_tokens, seed=seed, variants=variants, isolate=not inline,
                     progress=progress)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(format_table(rows))
