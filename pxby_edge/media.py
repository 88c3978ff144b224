"""Frames → PNG/GIF, audio levels → WAV, text → UTF-8: the encoders of every output file.

    python -c "import numpy as np; from pxby_edge.media import write_png; print(write_png('/tmp/s.png', [np.eye(4, dtype=int)], [(0, 0, 0), (255, 255, 255)], 8, overwrite=True))"

Every writer goes through ``atomic.atomic_write`` (a temporary file in the same folder, then
``os.replace``) and refuses to replace an existing file unless ``overwrite=True``, so an interrupted
run never leaves half a file and never destroys a user's file. Reading untrusted input is
``readers.py``; the Game Boy speaker filter is ``speaker.py``; which files a command writes, as one
set, is ``outputs.py``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pxby_edge.atomic import atomic_write
from pxby_edge.errors import MediaError


def write_text(path, text: str, overwrite: bool = False) -> Path:
    return atomic_write(path, text.encode("utf-8"), overwrite)


# -- images ----------------------------------------------------------------------------------------


MAX_IMAGE_SIDE = 65535


def _palette_image(frame_ids: np.ndarray, palette_rgb: np.ndarray, scale: int):
    from PIL import Image

    ids = np.asarray(frame_ids, dtype=np.int64)
    if ids.ndim != 2 or ids.size == 0:
        raise MediaError(f"a frame must be a non-empty (rows, columns) array, got shape {ids.shape}")
    palette = np.asarray(palette_rgb, dtype=np.uint8).reshape(-1, 3)
    if ids.min() < 0 or ids.max() >= len(palette):
        raise MediaError("frame holds palette indices outside the palette")
    if len(palette) > 256:
        raise MediaError("a palette image holds at most 256 colours")
    if max(ids.shape) * scale > MAX_IMAGE_SIDE:  # GIF stores sides as 16-bit numbers: Pillow overflowed past it
        raise MediaError(f"the sprite is {ids.shape[1]}x{ids.shape[0]} pixels: drawn {scale}x, more than the "
                         f"{MAX_IMAGE_SIDE} pixels a side an image file holds; bound it with --width/--height")
    if scale > 1:
        ids = np.repeat(np.repeat(ids, scale, axis=0), scale, axis=1)
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), dtype=np.uint8)
    flat[: len(palette)] = palette
    img.putpalette(flat.reshape(-1).tolist())
    return img


def sprite_sheet(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Frames of one sprite side by side (a 1-pixel gap would invent a colour, so none)."""
    if not frames:
        raise MediaError("no frames to write")
    height = max(f.shape[0] for f in frames)
    width = max(f.shape[1] for f in frames)
    sheet = np.zeros((height, width * len(frames)), dtype=np.int64)
    for k, f in enumerate(frames):
        sheet[: f.shape[0], k * width : k * width + f.shape[1]] = f
    return sheet


def write_png(path, frames: Sequence[np.ndarray], palette_rgb, scale: int = 1, overwrite: bool = False) -> Path:
    """Frames (palette indices) as one indexed PNG, frames left to right, exact palette colours."""
    img = _palette_image(sprite_sheet(list(frames)), palette_rgb, int(scale))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write(path, buf.getvalue(), overwrite)


def write_gif(
    path, frames: Sequence[np.ndarray], palette_rgb, scale: int = 1, frame_ms: int = 200, overwrite: bool = False
) -> Path:
    """Frames as a looping animated GIF (exact palette colours, nearest-neighbour scaling)."""
    frames = list(frames)
    if not frames:
        raise MediaError("no frames to write")
    images = [_palette_image(f, palette_rgb, int(scale)) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(frame_ms), loop=0,
        optimize=False, disposal=1,
    )
    return atomic_write(path, buf.getvalue(), overwrite)


# -- audio -----------------------------------------------------------------------------------------


def write_wav(path, audio: np.ndarray, sample_rate: int, overwrite: bool = False) -> Path:
    """(channels, N) floats in [-1, 1] as 16-bit PCM WAV."""
    from scipy.io import wavfile

    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.size == 0:
        raise MediaError("no audio samples to write")
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16).T
    buf = io.BytesIO()
    wavfile.write(buf, int(sample_rate), np.ascontiguousarray(pcm))
    return atomic_write(path, buf.getvalue(), overwrite)


