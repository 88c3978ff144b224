"""The Game Boy speaker, as the upstream dataset modelled it: a band-pass at the device rate.

    python -c "import numpy as np; from pxby_edge.speaker import gameboy_filter; print(gameboy_filter(np.random.randn(16000), 16000)[:4])"

A cry is stored as two channels: the sound and its Game Boy-filtered copy (``tokenizer_audio`` makes
that pair from any sound; ``stereo_levels`` restores it for a WAV). The filter runs at
``constants.DEVICE_AUDIO_RATE``, the rate the device plays.
"""

from __future__ import annotations

import numpy as np

from pxby_edge.constants import DEVICE_AUDIO_RATE
from pxby_edge.errors import MediaError


def gameboy_filter(
    x,
    sample_rate: float,
    low_hz: float = 100.0,
    high_hz: float = 3000.0,
    order: int = 4,
    gb_rate: int = DEVICE_AUDIO_RATE,
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
