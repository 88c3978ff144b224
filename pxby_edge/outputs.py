"""Every output set the runtime writes, whole or not at all: a generation's, a detokenized token file's.

    python -c "from pxby_edge.outputs import generate_files; from pxby_edge.generate import GenerationRequest; print(generate_files(GenerationRequest(max_tokens=300), out_dir='/tmp/g', overwrite=True))"

Generation itself writes nothing (``pxby_edge.generate.GenerationRun``); this module decides what a
run leaves on disk. Each set is checked before the model is even opened (a run must not fail only
after it generated everything), written into a hidden sibling folder and moved into place at the end
(``atomic.OutputSet``), so a run killed at any moment leaves the folder as it was. The demo and the
Game Boy add their files to the same kind of set (``firmware_bridge.live``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np

from pxby_edge import atomic, media, speaker
from pxby_edge.constants import UPSTREAM_AUDIO_RATE
from pxby_edge.errors import MediaError
from pxby_edge.generate import GenerationRequest, Generator, run_generation
from pxby_edge.tokenize_files import load_tokens, recorded_rate
from pxby_edge.tokenizer import ActionPixelBytesTokenizer

GENERATION_NAMES = ("text.txt", "sprite.png", "sprite.gif", "audio.wav", "tokens.npz")
SPRITE_SCALE = 4  # sprite.png and sprite.gif: screen pixels per sprite pixel
DECODED_NAMES = ("text.txt", "sprite.png", "sprite.gif", "audio.wav")


def _lane_prefix(batch: int, k: int) -> str:
    return f"lane{k}_" if batch > 1 else ""


def output_names(batch: int) -> list[str]:
    """The files one generation writes: GENERATION_NAMES, once per lane (``lane{k}_`` before each) when batched."""
    return [f"{_lane_prefix(batch, k)}{name}" for k in range(batch) for name in GENERATION_NAMES]


def write_generation(gen: Generator, folder, overwrite: bool = False) -> list[str]:
    """Decode each lane's stream of a finished ``gen`` and write its text, sprite, audio and tokens into
    ``folder``; returns the paths."""
    written: list = []
    batch = len(gen.lanes)
    palette = gen.vocab.palette_array()
    folder = Path(folder)
    for k, lane in enumerate(gen.lanes):
        prefix = _lane_prefix(batch, k)
        tokens = np.asarray(lane.tokens, dtype=np.int64)
        decoded = gen.tok.decode(tokens)
        frames = decoded["frame_ids"]
        if frames:
            # A stream cut by --max-tokens may end inside a frame: keep the complete ones.
            decoded["frame_ids"] = [f for f in frames if f.shape == frames[0].shape]
        written += write_decoded(decoded, folder, palette, SPRITE_SCALE, gen.audio_rate, overwrite, stem=prefix)["outputs"]
        buf = io.BytesIO()
        np.savez_compressed(buf, tokens=tokens, prompt_tokens=np.int64(gen.prompt_tokens))
        written.append(str(atomic.atomic_write(folder / f"{prefix}tokens.npz", buf.getvalue(), overwrite)))
    return written


def write_decoded(decoded: dict, out_dir, palette, scale: int, audio_rate: int, overwrite: bool, stem: str = "") -> dict:
    """Write what ``decode`` returned into ``out_dir``; only the parts present. Returns {'outputs': [...], ...}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if decoded["text"]:
        written.append(media.write_text(out_dir / f"{stem}text.txt", decoded["text"], overwrite))
    if decoded["frame_ids"]:
        frames = decoded["frame_ids"]
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise MediaError(f"the sprite's frames differ in size ({sorted(shapes)}); the stream is malformed")
        written.append(media.write_png(out_dir / f"{stem}sprite.png", frames, palette, scale, overwrite))
        written.append(media.write_gif(out_dir / f"{stem}sprite.gif", frames, palette, scale, overwrite=overwrite))
    if decoded["audio"].size:
        stereo = speaker.stereo_levels(decoded["audio"], audio_rate)
        written.append(media.write_wav(out_dir / f"{stem}audio.wav", stereo, audio_rate, overwrite))
    return {
        "outputs": [str(p) for p in written],
        "text_chars": len(decoded["text"]),
        "frames": len(decoded["frame_ids"]),
        "audio_samples": int(decoded["audio"].shape[-1]) if decoded["audio"].size else 0,
    }


def detokenize_file(tokens, out_dir, *, scale: int = 4, audio_rate: Optional[int] = None, overwrite: bool = False) -> dict:
    """Write text.txt, sprite.png, sprite.gif and audio.wav for a token .npz, all or none; returns a summary."""
    with atomic.OutputSet(out_dir, DECODED_NAMES, overwrite) as out:
        arrays = load_tokens(tokens)
        tok = ActionPixelBytesTokenizer()
        ids = arrays["ids"]
        if ids.size and (ids.min() < 0 or ids.max() >= tok.vocab_size):
            raise MediaError(f"{tokens}: token ids outside 0..{tok.vocab_size - 1}; was it made with another vocabulary?")
        rate = audio_rate or recorded_rate(arrays, tokens) or UPSTREAM_AUDIO_RATE
        summary = write_decoded(tok.decode(ids), out.folder, tok.vocab_lists.palette_array(), scale, rate, overwrite)
        out.commit()
    summary["outputs"] = [out.final(p) for p in summary["outputs"]]
    return summary


def generate_files(
    request: GenerationRequest,
    model=None,
    *,
    out_dir,
    backend: str = "auto",
    threads: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """A generation into ``out_dir`` (what ``pxby-edge generate`` does): every output of the run, or nothing
    new. Returns the run's summary with the paths written, the folder, the seed and each lane's text.

    The model and the request are checked first (a wrong file or an impossible prompt is the error to see,
    not a full folder), then the folder, and only then is anything generated."""
    run = run_generation(request, model, backend=backend, threads=threads)
    with atomic.OutputSet(out_dir, output_names(request.batch), overwrite) as out:
        summary = run.complete(progress=progress)
        written = write_generation(run.generator, out.folder, overwrite)
        out.commit()
    gen = run.generator
    decoded = [gen.tok.decode(np.asarray(lane.tokens, dtype=np.int64)) for lane in gen.lanes]
    summary.update(outputs=[out.final(p) for p in written], out_dir=str(out.out_dir), seed=request.seed,
                   text=decoded[0]["text"], audio_seconds=decoded[0]["audio"].shape[-1] / gen.audio_rate)
    if len(decoded) > 1:
        summary["texts"] = [d["text"] for d in decoded]
    return summary


def next_run_folder(parent: Path) -> Path:
    """``parent``/run-N for the first N above every run-K already there (runs never collide by default, as
    ultralytics numbers runs/predict2): a folder that exists is never picked, so nothing is overwritten."""
    taken = [int(p.name[4:]) for p in parent.glob("run-*") if p.name[4:].isdigit()] if parent.is_dir() else []
    return parent / f"run-{max(taken, default=0) + 1}"
