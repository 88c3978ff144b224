"""The commands of the runtime package: ``tokenize``, ``detokenize``, ``inspect``, ``generate``, ``bench``.

    pxby-edge tokenize --text "a blue creature" --image sprite.png --audio cry.wav --out item.npz
    pxby-edge detokenize item.npz --out item/
    pxby-edge inspect                      # the bundled model
    pxby-edge generate --prompt "a small red fire creature" --seed 1 --out out/ --json
    pxby-edge bench -r 5 --format md --plot bench.png

Each command parses its options, calls one library function and prints what it returned; only
click is imported at module level (``pxby-edge --help`` stays instant); the generation options are
shared from ``options.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pxby_edge.cli import info, quiet, show_progress
from pxby_edge.constants import MAX_AUDIO_RATE, UPSTREAM_AUDIO_RATE
from pxby_edge.options import generation_options, request_from_options

RUNS_FOLDER = "pxby-out"  # where `generate` runs without --out go, one run-N folder each


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=None, sort_keys=True))


@click.command()
@click.option("--text", "text", help="Text to tokenize (lowercased, ASCII, as upstream).")
@click.option("--text-file", type=click.Path(dir_okay=False, path_type=Path), help="Read the text from this UTF-8 file.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), help="Sprite image (PNG, GIF incl. animated, any mode).")
@click.option(
    "--audio",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sound: WAV/OGG (a mono file gets its Game Boy-filtered second channel) or .npy float array (2, N).",
)
@click.option("--audio-rate", type=click.IntRange(1, MAX_AUDIO_RATE), default=UPSTREAM_AUDIO_RATE, show_default=True, help="Sample rate of a .npy array.")
@click.option("--slicing-image", type=click.IntRange(1), default=1, show_default=True, help="Keep every S-th frame, row and column.")
@click.option("--slicing-audio", type=click.IntRange(1), default=1, show_default=True, help="Keep every S-th audio sample.")
@click.option("--out", "-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output .npz (input_ids, labels).")
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")
def tokenize(text, text_file, image, audio, audio_rate, slicing_image, slicing_audio, output, force, as_json):
    """Turn text, a sprite and/or a sound into PixelBytes contexts and labels (.npz).

    The .npz holds input_ids (N, 6) and labels (N, 1) as int64, exactly as the upstream
    ActionPixelBytesTokenizer makes them, plus the slicing and the audio rate for detokenize.
    """
    from pxby_edge.tokenize_files import tokenize_files

    summary = tokenize_files(
        output,
        text=text,
        text_file=text_file,
        image=image,
        audio=audio,
        audio_rate=audio_rate,
        slicing={"image": slicing_image, "audio": slicing_audio},
        overwrite=force,
    )
    if as_json:
        _echo_json(summary)
    else:
        parts = ", ".join(f"{k} {v}" for k, v in summary["segments"].items())
        info(f"wrote {summary['tokens']} tokens ({parts}) to {output}")


@click.command()
@click.argument("tokens", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for text.txt, sprite.png/.gif, audio.wav.")
@click.option("--scale", type=click.IntRange(1, 64), default=4, show_default=True, help="Integer scale of the sprite files.")
@click.option("--audio-rate", type=click.IntRange(1, MAX_AUDIO_RATE), default=None, help=f"WAV sample rate (default: what tokenize recorded, else {UPSTREAM_AUDIO_RATE}).")
@click.option("--force", is_flag=True, help="Overwrite files that already exist in the folder.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")
def detokenize(tokens, out_dir, scale, audio_rate, force, as_json):
    """Write the text, sprite (PNG sheet + animated GIF) and stereo WAV held in a token .npz."""
    from pxby_edge.outputs import detokenize_file

    summary = detokenize_file(tokens, out_dir, scale=scale, audio_rate=audio_rate, overwrite=force)
    if as_json:
        _echo_json(summary)
    else:
        for path in summary["outputs"]:
            info(f"wrote {path}")


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(model, as_json):
    """Show the manifest, tensors, sizes and operators of a MODEL .tflite file (default: the bundled model)."""
    from pxby_edge.generate import default_model_path
    from pxby_edge.model_info import describe_model, manifest_json

    model = model if model is not None else default_model_path()
    click.echo(manifest_json(model) if as_json else describe_model(model))


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@generation_options
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Folder for text.txt, sprite.png/.gif, audio.wav, tokens.npz (default: a new {RUNS_FOLDER}/run-N "
                   "each run).")
@click.option("--force", is_flag=True, help="Overwrite outputs that already exist in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (text, seed, tokens, speed, outputs) instead of text.")
def generate(model, out_dir, force, as_json, backend, threads, **options):
    """Generate text, a sprite and a cry from MODEL (default: the bundled model).

    Tokens stream one step at a time with the LSTM state kept inside the interpreter; every
    next context is built from what was generated. Writes text.txt, sprite.png (frames side by
    side), sprite.gif, audio.wav (original + Game Boy-filtered) and tokens.npz to --out, all of
    them or none; without --out, to a new folder pxby-out/run-1, run-2, ... each time. Prints the
    text, on a terminal a preview of the sprite's first frame, the cry's length and the seed.
    """
    from pxby_edge.outputs import generate_files, next_run_folder

    request = request_from_options(**options)
    summary = generate_files(
        request, model, out_dir=out_dir if out_dir is not None else next_run_folder(Path(RUNS_FOLDER)),
        backend=backend, threads=threads, overwrite=force, progress=show_progress(),
    )
    if as_json:
        _echo_json(summary)
        return
    _show_generation(summary)


def _show_generation(summary: dict) -> None:
    """What a run made, for a person: the text, the sprite's first frame (on a terminal), the cry and the seed,
    where it went, then the speed and any warning."""
    import shutil
    import sys

    from pxby_edge.cli import no_color

    info(summary["text"])
    gif = next((p for p in summary["outputs"] if p.endswith("sprite.gif")), None)
    if gif is not None and sys.stdout.isatty() and not quiet():
        from pxby_edge.preview import colour_depth, preview, sprite_frame

        info(preview(sprite_frame(gif), colour_depth(no_color()), columns=shutil.get_terminal_size().columns))
    names = ", ".join(Path(p).name for p in summary["outputs"])
    cry = f"cry {summary['audio_seconds']:.2f} s" if summary["audio_seconds"] else "no cry"
    info(f"{cry}; seed {summary['seed']} (--seed {summary['seed']} makes it again)")
    info(f"wrote {summary['out_dir']}/: {names}")
    info(
        f"{summary['tokens']} tokens in {summary['seconds']:.2f} s ({summary['tokens_per_s']:,.0f} tok/s, "
        f"median {summary['step_us_median']:.1f} µs/token) with {summary['backend']}"
    )
    for line in summary.get("warnings", ()):
        info(f"warning: {line}")


BENCH_OUTPUTS = ("table", "md", "csv", "json", "jsonl")  # pxby_edge.bench.FORMATS, without importing numpy for --help


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
@click.option("--format", "fmt", type=click.Choice(BENCH_OUTPUTS), default=None,
              help="How the rows are printed  [default: table].")
# -o/--out is an output path in every other command: the format's old -o/--output spelling stays, hidden, for
# one release (as --json did before it)
@click.option("-o", "--output", "old_fmt", type=click.Choice(BENCH_OUTPUTS), default=None, hidden=True,
              help="The same as --format (kept for older scripts).")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="The same as --format json (kept for older scripts).")
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
          old_fmt, plot, force, no_onnx_int8, variants, seed, inline, as_json):
    """Per-token latency, tokens/s, start-up and peak RSS of every backend on one token stream."""
    from pxby_edge.bench import (
        BenchMatrix,
        bench_paths,
        check_plot_path,
        format_rows,
        parse_backends,
        parse_kinds,
        parse_threads,
        plot_rows,
        torch_rows,
    )
    from pxby_edge.bench import bench as run_bench

    if len({f for f in (fmt, old_fmt, "json" if as_json else None) if f}) > 1:
        raise click.UsageError("give the format once: --format (-o/--output and --json are its old spellings)")
    fmt = fmt or old_fmt or ("json" if as_json else "table")
    paths = bench_paths(models, batch_models, batch)
    matrix = BenchMatrix(paths, backends=parse_backends(backends), kinds=parse_kinds(kinds),
                threads=tuple(parse_threads(threads)), tokens=tokens, seed=seed, variants=variants,
                onnx_int8=not no_onnx_int8)
    extra = torch_rows(vs_torch, tokens, upstream_tokens, matrix.threads[0], seed)
    if plot is not None:
        check_plot_path(plot, overwrite=force)  # before minutes of measuring
    progress = None if fmt in ("json", "jsonl") or quiet() else (lambda label: info(f"  measuring {label} ...", err=True))
    rows = run_bench(matrix, repeats=repetitions, extra_specs=extra, isolate=not inline, progress=progress)
    click.echo(format_rows(rows, fmt))
    if plot is not None:
        written = plot_rows(rows, plot, overwrite=force)
        info(f"wrote {written}", err=True)
