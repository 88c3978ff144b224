"""Command-line options shared by every command that generates (``generate``, ``stream``, ``demo``).

    pxby-edge generate --help

Defined once here, in the runtime package every other package may import, and turned into a
``GenerationRequest`` by ``request_from_options``. Only click is imported at module level.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pxby_edge.constants import BACKEND_NAMES, DEFAULT_PROMPT

BACKENDS = ("auto", *BACKEND_NAMES)
MAX_THREADS = 256  # interpreters allocate per-thread workspaces up front: a million threads is a crash, not a request
MAX_PROMPT_BYTES = 64 << 10  # a prompt longer than this could not fit any text segment the plan allows
SENTENCE_ENDS = (".", "!", "?")  # a prompt ending in one of these is a whole sentence: --closed-prompt


def generation_options(f):
    """Options shared by `generate`, `stream` and `demo` (prompt, plan, sampling, limits, backend)."""
    opts = [
        click.option("--prompt", default=None, help="Text prompt, or - to read it from stdin; a whole sentence in the training style works best, e.g. \"a large red fire creature with wings. it is red.\" (default: a blue water creature)."),
        click.option("--prompt-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Read the prompt from this UTF-8 file."),
        click.option("--image", type=click.Path(dir_okay=False, path_type=Path), help="An image prefix (its segment is complete)."),
        click.option("--plan", default="text,image,audio", show_default=True, help="Modalities to generate, in order."),
        click.option("--max-tokens", type=click.IntRange(1), default=20000, show_default=True, help="Token budget per stream."),
        click.option("--frames", type=click.IntRange(1), default=None, help="Sprite frames (default: the model decides)."),
        click.option("--width", type=click.IntRange(1, 256), default=None, help="Force the sprite width in pixels (default: the model decides)."),
        click.option("--height", type=click.IntRange(1, 256), default=None, help="Force the sprite height in pixels (default: the model decides)."),
        click.option("--audio-seconds", type=click.FloatRange(min=0, min_open=True), default=None, help="Audio length (default: the model decides)."),
        click.option("--bounded/--unbounded", default=True, show_default=True, help="Bound what you leave open (sprite size, frames, text and audio length) by what the model's training data held, as recorded in the file; --unbounded lets the model run to --max-tokens."),
        click.option("--text-chars", type=click.IntRange(1), default=160, show_default=True, help="Longest text before it is ended."),
        click.option("--complete-text/--closed-prompt", default=True, show_default=True, help="Let the model finish the prompt's sentence, or end the text at the prompt (a prompt that ends in . ! or ? is closed)."),
        click.option("--temperature", type=click.FloatRange(min=0), default=0.8, show_default=True, help="Sampling temperature; 0 is greedy."),
        click.option("--top-k", type=click.IntRange(0), default=0, show_default=True, help="Keep the K most likely tokens (0 = off)."),
        click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True, help="Nucleus sampling mass."),
        click.option("--seed", type=click.IntRange(0), default=None, help="Seed (>= 0); the same seed gives the same stream (default: a random one, printed so the run can be repeated)."),
        click.option("--batch", type=click.IntRange(1), default=1, show_default=True, help="Streams at once (needs a file exported at that batch)."),
        click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True, help="Interpreter to run the model with."),
        click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=1, show_default=True, help="Interpreter threads."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    GENERATION_PARAMS.update(param.name for param in f.__click_params__[-len(opts):])
    return f


GENERATION_PARAMS: set = set()  # the parameter names generation_options adds (filled as it decorates)


def given_generation_options(ctx: click.Context, allowed: tuple = ()) -> list[str]:
    """The generation options given on the command line (not left at their defaults), as the user spelled
    them (``--backend``), except those named in ``allowed``; for a mode that generates nothing."""
    given = []
    for param in ctx.command.params:
        if param.name in GENERATION_PARAMS and param.name not in allowed:
            if ctx.get_parameter_source(param.name) not in (click.core.ParameterSource.DEFAULT, None):
                given.append(param.opts[0])
    return given


def read_prompt(prompt, prompt_file):
    """The prompt text from --prompt (``-`` reads stdin) or --prompt-file; None when neither is given."""
    from pxby_edge.errors import GenerationError
    from pxby_edge.readers import read_text

    if prompt is not None and prompt_file is not None:
        raise GenerationError("give --prompt or --prompt-file, not both")
    if prompt_file is not None:
        text = read_text(prompt_file, MAX_PROMPT_BYTES)
    elif prompt == "-":
        text = sys.stdin.read(MAX_PROMPT_BYTES + 1)
        if len(text) > MAX_PROMPT_BYTES:
            raise GenerationError(f"the prompt on stdin is longer than {MAX_PROMPT_BYTES >> 10} KiB")
    else:
        return prompt
    return text.rstrip("\r\n")  # the file's final newline is the editor's, not a line of the prompt


def random_seed() -> int:
    """A seed for a run that was given none (printed with its result, so it can be repeated)."""
    import secrets

    return secrets.randbelow(2**31)


def request_from_options(prompt, prompt_file, image, plan, complete_text, **limits):
    """A ``GenerationRequest`` from the values of ``generation_options`` (less backend and threads);
    the limits and sampling values keep their names, which are the request's fields."""
    from pxby_edge.generate import GenerationRequest
    from pxby_edge.readers import open_image

    if limits.get("seed") is None:
        limits["seed"] = random_seed()
    prompt = read_prompt(prompt, prompt_file)
    if prompt is None:
        prompt, complete_text = DEFAULT_PROMPT, False  # the default is a whole description already
    elif prompt.rstrip().endswith(SENTENCE_ENDS):
        complete_text = False  # nothing left to finish: the model would only add a second full stop
    return GenerationRequest(
        prompt=prompt,
        image=open_image(image) if image is not None else None,
        modalities=tuple(p.strip() for p in plan.split(",") if p.strip()),
        complete_text=complete_text,
        **limits,
    )
