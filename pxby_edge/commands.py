"""``pxby-edge tokenize`` and ``pxby-edge detokenize``: files ↔ token streams (.npz).

    pxby-edge tokenize --text "a blue creature" --image sprite.png --audio cry.wav -o item.npz
    pxby-edge detokenize item.npz --out item/
"""

from __future__ import annotations

import json
from pathlib import Path

import click


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
@click.option("--audio-rate", type=click.IntRange(1), default=16000, show_default=True, help="Sample rate of a .npy array.")
@click.option("--slicing-image", type=click.IntRange(1), default=1, show_default=True, help="Keep every S-th frame, row and column.")
@click.option("--slicing-audio", type=click.IntRange(1), default=1, show_default=True, help="Keep every S-th audio sample.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output .npz (input_ids, labels).")
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
@click.option("--audio-rate", type=click.IntRange(1), default=None, help="WAV sample rate (default: what tokenize recorded, else 16000).")
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
