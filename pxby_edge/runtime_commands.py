"""``pxby-edge bench``: the llama-bench of this project (how fast each way of stepping a model is).

    pxby-edge bench -r 5 -o md --plot bench.png
    pxby-edge bench model.tflite --batch-model model_b8.tflite --threads 1,2 --tokens 2000 --vs-torch CKPT

Only click is imported here; the measuring lives in ``pxby_edge.bench``.
"""

from __future__ import annotations

from pathlib import Path

import click

OUTPUTS = ("table", "md", "csv", "json", "jsonl")  # pxby_edge.bench.FORMATS, without importing numpy for --help


@click.command()
@click.argument("models", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tokens", type=click.IntRange(16), default=2000, show_default=True,
              help="Tokens per lane of every configuration.")
@click.option("--batch", type=click.IntRange(1), default=None,
              help="Also measure batch B (one of the files, or --batch-model, must be exported at B).")
@click.option("--batch-model", "batch_models", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file exported at batch B (repeatable).")
@click.option("--backend", "backends", default=None, metavar="NAMES",
              help="Backends to measure, comma-separated (default: every one installed).")
@click.option("--kinds", default="step,generate", show_default=True,
              help="Rows per backend: step (bare backend + invoke) and/or generate (end to end).")
@click.option("--vs-torch", "vs_torch", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Checkpoint folder: add upstream-style and kept-state PyTorch fp32 rows (needs pxby-edge[train]).")
@click.option("--upstream-tokens", type=click.IntRange(2), default=1000, show_default=True,
              help="Tokens for the upstream-style row (its cost grows with the square of this).")
@click.option("--threads", default="1", show_default=True, metavar="N[,N...]",
              help="Interpreter threads; several (1,2,4) sweep them, one row each.")
@click.option("-r", "--repetitions", type=click.IntRange(1), default=1, show_default=True,
              help="Runs of every row (each in a fresh process); rows show mean ± standard deviation.")
@click.option("-o", "--output", "fmt", type=click.Choice(OUTPUTS), default="table", show_default=True,
              help="Output format.")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="The same as -o json (kept for older scripts).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw tokens/s per row with error bars to this PNG (needs matplotlib).")
@click.option("--force", is_flag=True, help="Overwrite the --plot file if it exists.")
@click.option("--no-onnx-int8", "no_onnx_int8", is_flag=True,
              help="Leave out the ONNX Runtime int8 rows (quantize_dynamic of the .onnx beside the file).")
@click.option("--variants", is_flag=True, help="Also litert with get/set-tensor I/O and each state policy.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the recorded token stream and of every end-to-end row.")
@click.option("--inline", is_flag=True, help="Run rows in this process (faster, but RSS and start-up mix).")
def bench(models, tokens, batch, batch_models, backends, kinds, vs_torch, upstream_tokens, threads, repetitions, fmt,
          plot, force, no_onnx_int8, variants, seed, inline, as_json):
    """Per-token latency, tokens/s, start-up and peak RSS of every backend on one token stream."""
    from pxby_edge.bench import Plan, format_rows, parse_backends, parse_kinds, parse_threads, plot_rows
    from pxby_edge.bench import bench as run_bench

    fmt = "json" if as_json else fmt
    paths = _bench_paths(models, batch_models, batch)
    plan = Plan(paths, backends=parse_backends(backends), kinds=parse_kinds(kinds),
                threads=tuple(parse_threads(threads)), tokens=tokens, seed=seed, variants=variants,
                onnx_int8=not no_onnx_int8)
    extra = _torch_rows(vs_torch, tokens, upstream_tokens, plan.threads[0], seed)
    if plot is not None and plot.exists() and not force:
        from pxby_edge.errors import OutputExistsError

        raise OutputExistsError(f"{plot} already exists; pass --force to overwrite")  # before minutes of measuring
    progress = None if fmt in ("json", "jsonl") else (lambda label: click.echo(f"  measuring {label} ...", err=True))
    rows = run_bench(plan, repeats=repetitions, extra_specs=extra, isolate=not inline, progress=progress)
    click.echo(format_rows(rows, fmt))
    if plot is not None:
        click.echo(f"wrote {plot_rows(rows, plot, overwrite=force)}", err=True)


def _bench_paths(models, batch_models, batch) -> list:
    """The files to measure (the bundled model when none is named), checked against --batch."""
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
    return paths


def _torch_rows(vs_torch, tokens, upstream_tokens, threads, seed):
    """The PyTorch rows' specs (training/bench_rows.py), or a one-line error naming the extra to install."""
    if vs_torch is None:
        return lambda contexts: []
    import importlib.util

    from pxby_edge.errors import BackendError

    # torch itself is imported only in the rows' own processes (it would stay in this one's RSS)
    missing = next((m for m in ("torch", "training") if importlib.util.find_spec(m) is None), None)
    if missing is not None:
        raise BackendError(f"--vs-torch needs PyTorch ({missing} is not installed): pip install 'pxby-edge[train]'")
    from training.bench_rows import torch_specs

    return torch_specs(vs_torch, tokens=tokens, upstream_tokens=upstream_tokens, threads=threads, seed=seed)
