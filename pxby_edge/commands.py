"""The commands of the runtime package: ``tokenize``, ``detokenize``, ``inspect``, ``generate``.

    pxby-edge tokenize --text "a blue creature" --image sprite.png --audio cry.wav --out item.npz
    pxby-edge detokenize item.npz --out item/
    pxby-edge inspect pxby_edge/assets/demo.tflite
    pxby-edge generate --prompt "a small red fire creature" --seed 1 --out out/ --json

Each command parses its options, calls one library function and prints what it returned; only
click is imported at module level (``pxby-edge --help`` stays instant). ``bench`` lives in
``runtime_commands.py``; the generation options are shared from ``options.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pxby_edge.options import generation_options, request_from_options


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
@click.option("--audio-rate", type=click.IntRange(1, 384000), default=16000, show_default=True, help="Sample rate of a .npy array.")
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
        click.echo(f"wrote {summary['tokens']} tokens ({parts}) to {output}")


@click.command()
@click.argument("tokens", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for text.txt, sprite.png/.gif, audio.wav.")
@click.option("--scale", type=click.IntRange(1, 64), default=4, show_default=True, help="Integer scale of the sprite files.")
@click.option("--audio-rate", type=click.IntRange(1, 384000), default=None, help="WAV sample rate (default: what tokenize recorded, else 16000).")
@click.option("--force", is_flag=True, help="Overwrite files that already exist in the folder.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")
def detokenize(tokens, out_dir, scale, audio_rate, force, as_json):
    """Write the text, sprite (PNG sheet + animated GIF) and stereo WAV held in a token .npz."""
    from pxby_edge.tokenize_files import detokenize_file

    summary = detokenize_file(tokens, out_dir, scale=scale, audio_rate=audio_rate, overwrite=force)
    if as_json:
        _echo_json(summary)
    else:
        for path in summary["outputs"]:
            click.echo(f"wrote {path}")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(model, as_json):
    """Show the manifest, tensors, sizes and operators of a MODEL .tflite file."""
    from pxby_edge.model_info import describe_model, manifest_json

    click.echo(manifest_json(model) if as_json else describe_model(model))


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@generation_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("pxby-out"), show_default=True, help="Folder for text.txt, sprite.png/.gif, audio.wav, tokens.npz.")
@click.option("--force", is_flag=True, help="Overwrite outputs that already exist.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (tokens, speed, outputs) instead of text.")
def generate(model, out_dir, force, as_json, backend, threads, **options):
    """Generate text, a sprite and a cry from MODEL (default: the bundled model).

    Tokens stream one step at a time with the LSTM state kept inside the interpreter; every
    next context is built from what was generated. Writes text.txt, sprite.png (frames side by
    side), sprite.gif, audio.wav (original + Game Boy-filtered) and tokens.npz to --out, all of
    them or none.
    """
    from pxby_edge.generate_files import generate_files

    summary = generate_files(
        request_from_options(**options), model, out_dir=out_dir, backend=backend, threads=threads, overwrite=force,
        progress=sys.stderr.isatty(),
    )
    if as_json:
        _echo_json(summary)
        return
    click.echo(
        f"{summary['tokens']} tokens in {summary['seconds']:.2f} s ({summary['tokens_per_s']:,.0f} tok/s, "
        f"median {summary['step_us_median']:.1f} µs/token) with {summary['backend']}"
    )
    for path in summary["outputs"]:
        click.echo(f"wrote {path}")
