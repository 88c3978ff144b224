"""``pxby-edge generate``: stream a text, a sprite and a cry out of a model file.

    pxby-edge generate --prompt "a small red fire creature" --seed 1 --out out/ --json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

BACKENDS = ("auto", "litert", "tflite", "onnx", "numpy")




def generation_options(f):
    """Options shared by `generate` and `stream` (sampling, plan, limits, backend)."""
    opts = [
        click.option("--prompt", default=None, help="Text prompt; a whole sentence in the training style works best, e.g. \"a large red fire creature with wings. it is red.\" (default: a blue water creature)."),
        click.option("--image", type=click.Path(dir_okay=False, path_type=Path), help="An image prefix (its segment is complete)."),
        click.option("--plan", default="text,image,audio", show_default=True, help="Modalities to generate, in order."),
        click.option("--max-tokens", type=click.IntRange(1), default=20000, show_default=True, help="Token budget per stream."),
        click.option("--frames", type=click.IntRange(1), default=None, help="Sprite frames (default: the model decides)."),
        click.option("--width", type=click.IntRange(1, 256), default=None, help="Force the sprite width in pixels (default: the model decides)."),
        click.option("--height", type=click.IntRange(1, 256), default=None, help="Force the sprite height in pixels (default: the model decides)."),
        click.option("--audio-seconds", type=click.FloatRange(min=0, min_open=True), default=None, help="Audio length (default: the model decides)."),
        click.option("--text-chars", type=click.IntRange(1), default=160, show_default=True, help="Longest text before it is ended."),
        click.option("--complete-text/--closed-prompt", default=True, show_default=True, help="Let the model finish the prompt's sentence, or end the text at the prompt."),
        click.option("--temperature", type=click.FloatRange(min=0), default=0.8, show_default=True, help="Sampling temperature; 0 is greedy."),
        click.option("--top-k", type=click.IntRange(0), default=0, show_default=True, help="Keep the K most likely tokens (0 = off)."),
        click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True, help="Nucleus sampling mass."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed; the same seed gives the same stream."),
        click.option("--batch", type=click.IntRange(1), default=1, show_default=True, help="Streams at once (needs a file exported at that batch)."),
        click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True, help="Interpreter to run the model with."),
        click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="Interpreter threads."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def request_from_options(prompt, image, plan, max_tokens, frames, width, height, audio_seconds, text_chars, complete_text, temperature, top_k, top_p, seed, batch):
    from pxby_edge.generate import DEFAULT_PROMPT, GenerationRequest
    from pxby_edge.tokenize_files import _open_image

    if prompt is None:
        prompt, complete_text = DEFAULT_PROMPT, False  # the default is a whole description already
    return GenerationRequest(
        prompt=prompt,
        image=_open_image(image) if image is not None else None,
        plan=tuple(p.strip() for p in plan.split(",") if p.strip()),
        complete_text=complete_text,
        max_tokens=max_tokens,
        text_chars=text_chars,
        frames=frames,
        width=width,
        height=height,
        audio_seconds=audio_seconds,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        batch=batch,
    )


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
    side), sprite.gif, audio.wav (original + Game Boy-filtered) and tokens.npz to --out.
    """
    from pxby_edge.generate import run_generation

    request = request_from_options(**options)
    summary = run_generation(
        request, model, backend=backend, threads=threads, out_dir=out_dir, overwrite=force, progress=sys.stderr.isatty()
    )
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    click.echo(
        f"{summary['tokens']} tokens in {summary['seconds']:.2f} s ({summary['tokens_per_s']:,.0f} tok/s, "
        f"median {summary['step_us_median']:.1f} µs/token) with {summary['backend']}"
    )
    for path in summary["outputs"]:
        click.echo(f"wrote {path}")
