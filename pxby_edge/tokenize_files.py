"""Files on disk → token .npz files (``pxby-edge tokenize``), and reading them back (``load_tokens``).

``detokenize`` writes its output set through ``pxby_edge.outputs``.

    python -c "from pxby_edge.tokenize_files import tokenize_files; print(tokenize_files('/tmp/t.npz', text='hi', overwrite=True))"
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np

from pxby_edge import atomic, readers, speaker
from pxby_edge.constants import MAX_AUDIO_RATE, UPSTREAM_AUDIO_RATE
from pxby_edge.errors import MediaError, TokenizerError
from pxby_edge.tokenizer import ActionPixelBytesTokenizer
from pxby_edge.vocab import PAD_ID, SEG_END_ID

MAX_NPZ_BYTES = 512 * 1024 * 1024  # refuse absurd token files before reading them


def _read_text(text: Optional[str], text_file: Optional[Path]) -> Optional[str]:
    if text is not None and text_file is not None:
        raise TokenizerError("give --text or --text-file, not both")
    return text if text_file is None else readers.read_text(text_file)


def _read_audio(path: Path, npy_rate: int) -> tuple[np.ndarray, int]:
    data, rate = readers.read_audio(path, npy_rate)
    return speaker.tokenizer_audio(data, rate), rate


def _text_ids(tok: ActionPixelBytesTokenizer, text: str) -> np.ndarray:
    ids = tok.process_text(text)
    if not np.isin(ids, (PAD_ID, SEG_END_ID), invert=True).any():
        raise TokenizerError(
            "the text has no character the vocabulary can encode (ASCII letters, digits, punctuation); nothing to tokenize"
        )
    return ids


def tokenize_files(
    output,
    *,
    text: Optional[str] = None,
    text_file=None,
    image=None,
    audio=None,
    audio_rate: int = UPSTREAM_AUDIO_RATE,
    slicing: Optional[dict] = None,
    overwrite: bool = False,
) -> dict:
    """Tokenize the given inputs into ``output`` (.npz); returns a summary dict."""
    output = atomic.check_writable(output, overwrite)
    tok = ActionPixelBytesTokenizer(data_slicing=slicing)
    text_value = _read_text(text, text_file)
    img = readers.open_image(image) if image is not None else None
    arrays, segments = [], {}
    rate_after = 0
    if text_value is not None:
        arrays.append(_text_ids(tok, text_value))
        segments["text"] = int(arrays[-1].size)
    if img is not None:
        arrays.append(tok.process_image(img))
        segments["image"] = int(arrays[-1].size)
    if audio is not None:
        samples, rate = _read_audio(Path(audio), audio_rate)
        arrays.append(tok.process_audio(samples))
        segments["audio"] = int(arrays[-1].size)
        rate_after = rate / tok.slicing["audio"]
    if not arrays:
        raise TokenizerError("nothing to tokenize: give --text, --text-file, --image or --audio")
    from pxby_edge.tokenizer import concat_segments

    out = concat_segments(arrays)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        input_ids=out["input_ids"],
        labels=out["labels"],
        slicing_image=np.int64(tok.slicing["image"]),
        slicing_audio=np.int64(tok.slicing["audio"]),
        audio_rate=np.float64(rate_after),
    )
    atomic.atomic_write(output, buf.getvalue(), overwrite)
    return {"output": str(output), "tokens": int(out["labels"].shape[0]), "segments": segments, "slicing": tok.slicing}


def load_tokens(path) -> dict:
    """The arrays of a token .npz, validated (no pickles, sane shapes and ids)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"no such token file: {path}")
    if path.stat().st_size > MAX_NPZ_BYTES:
        raise MediaError(f"{path} is larger than {MAX_NPZ_BYTES >> 20} MiB; not a token file")
    arrays = readers.load_npz(path)
    if "labels" not in arrays and "tokens" not in arrays:
        raise MediaError(f"{path} holds neither 'labels' nor 'tokens'; make it with pxby-edge tokenize or generate")
    ids = np.asarray(arrays.get("labels", arrays.get("tokens")))
    if ids.dtype.kind not in "iu":
        raise MediaError(f"{path}: token ids must be integers, got {ids.dtype}")
    arrays["ids"] = ids.reshape(-1).astype(np.int64)
    return arrays


def recorded_rate(arrays: dict, path) -> int:
    """The audio rate tokenize recorded in the file (0 when none), checked: the file is untrusted."""
    value = np.asarray(arrays.get("audio_rate", 0))
    if value.size != 1 or value.dtype.kind not in "fiu":
        raise MediaError(f"{path}: audio_rate must be one number, got {value.dtype} of shape {value.shape}")
    rate = float(value.reshape(-1)[0])
    if not 0 <= rate <= MAX_AUDIO_RATE:  # also false for NaN
        raise MediaError(f"{path}: audio_rate {rate:g} is not a sample rate (0..{MAX_AUDIO_RATE} Hz); pass --audio-rate")
    return int(round(rate))
