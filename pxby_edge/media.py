"""Frames → PNG/GIF, audio levels → WAV, text → UTF-8; the Game Boy speaker filter.

    python -c "import numpy as np; from pxby_edge.media import gameboy_filter; print(gameboy_filter(np.random.randn(16000), 16000)[:4])"

Every writer is atomic (a temporary file in the same folder, then ``os.replace``) and refuses to
replace an existing file unless ``overwrite=True``, so an interrupted run never leaves half a file
and never destroys a user's file.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pxby_edge.errors import MediaError, OutputExistsError

GB_RATE = 8192


# -- files -----------------------------------------------------------------------------------------


def check_writable(path: os.PathLike | str, overwrite: bool = False) -> Path:
    """The path, after making sure writing it loses nothing the user did not ask to lose."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --force to overwrite it or choose another path")
    if path.is_dir():
        raise MediaError(f"{path} is a folder; give a file path")
    return path


def atomic_write(path: os.PathLike | str, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` all at once (temp file + rename)."""
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary, shareable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path, text: str, overwrite: bool = False) -> Path:
    return atomic_write(path, text.encode("utf-8"), overwrite)


# -- images ----------------------------------------------------------------------------------------


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


def gameboy_filter(
    x,
    sample_rate: float,
    low_hz: float = 100.0,
    high_hz: float = 3000.0,
    order: int = 4,
    gb_rate: int = GB_RATE,
    normalize: bool = True,
) -> np.ndarray:
    """The Game Boy speaker as the upstream dataset modelled it: to ``gb_rate``, Butterworth
    band-pass, back to the input length. Peak-normalised to 1 unless ``normalize=False``."""
    from scipy import signal

    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size < 2:
        raise MediaError("audio needs at least 2 samples to filter")
    nyq = 0.5 * gb_rate
    if not 0 < low_hz < high_hz < nyq:
        raise MediaError(f"filter band must satisfy 0 < low < high < {nyq:g} Hz, got {low_hz:g}-{high_hz:g}")
    n_gb = max(2, int(len(x) * gb_rate / sample_rate))
    resampled = signal.resample(x, n_gb)
    b, a = signal.butter(order, [low_hz / nyq, high_hz / nyq], btype="band")
    filtered = signal.resample(signal.lfilter(b, a, resampled), len(x))
    if normalize:
        peak = np.max(np.abs(filtered))
        if peak > 0:
            filtered = filtered / peak
    return filtered


def stereo_levels(levels: np.ndarray, sample_rate: float) -> np.ndarray:
    """(2, N): channel 0 the sound, channel 1 its Game Boy-filtered copy (made here if absent)."""
    levels = np.asarray(levels, dtype=np.float64)
    if levels.ndim == 1:
        levels = levels[None]
    if levels.shape[0] >= 2:
        return levels[:2]
    return np.stack([levels[0], gameboy_filter(levels[0], sample_rate)])


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


def read_audio(path) -> tuple[np.ndarray, int]:
    """(channels, N) float32 and the sample rate, from WAV (scipy) or OGG/FLAC (soundfile)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"no such audio file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".wav":
            from scipy.io import wavfile

            rate, data = wavfile.read(str(path))
            data = np.asarray(data)
            if data.dtype.kind in "iu":
                info = np.iinfo(data.dtype)
                data = (data.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
        else:
            try:
                import soundfile
            except ImportError as exc:
                raise MediaError(f"reading {suffix} files needs soundfile: pip install soundfile") from exc
            data, rate = soundfile.read(str(path), always_2d=True)
    except MediaError:
        raise
    except Exception as exc:  # corrupt files surface as many exception types
        raise MediaError(f"cannot read audio {path}: {exc}") from exc
    data = np.asarray(data, dtype=np.float32)
    data = data[:, None] if data.ndim == 1 else data
    if data.size == 0:
        raise MediaError(f"audio file {path} holds no samples")
    return np.ascontiguousarray(data.T), int(rate)


def tokenizer_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(2, N) the way the upstream dataset stores a cry: mono mixdown peak-normalised, and its
    Game Boy-filtered copy. Two-channel input is kept as it is."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 2 and audio.shape[0] == 2:
        return audio.astype(np.float32)
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    peak = np.max(np.abs(mono))
    if peak == 0:
        raise MediaError("audio is silent: nothing to tokenize")
    original = mono / peak
    return np.stack([original, gameboy_filter(original, sample_rate)]).astype(np.float32)
