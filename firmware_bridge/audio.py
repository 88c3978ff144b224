"""Audio tokens to device samples: waveform, Game Boy speaker filter, 8192 Hz, 8- or 4-bit.

    python -c "from firmware_bridge.audio import AudioEncoder; e = AudioEncoder(8000); print(e.push([0.0, 0.5, -0.5] * 100)[:8])"

Streaming throughout, because samples arrive one token at a time: the band-pass (100-3000 Hz,
4th-order Butterworth, as the upstream dataset modelled the Game Boy speaker) keeps its filter
state between calls, and the resampler to the device rate keeps its phase, so encoding a sound
in pieces gives exactly the samples of encoding it whole. ``prebuffer_samples`` sizes the
host-side prebuffer from the measured generation rate so that playback does not underrun.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from firmware_bridge import protocol as pr


def quantize(x: np.ndarray, fmt: int) -> np.ndarray:
    """Levels in [-1, 1] to unsigned samples: 0..255 (u8, 128 silence) or 0..15 (u4, 8 silence)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    top = 255 if fmt == pr.AUDIO_U8 else 15
    return np.clip(np.floor((x + 1.0) * 0.5 * top + 0.5), 0, top).astype(np.uint8)


class AudioEncoder:
    """Levels at ``in_rate`` -> quantized samples at ``out_rate``, in any number of pieces."""

    def __init__(self, in_rate: float, out_rate: int = pr.Capabilities.audio_rate, fmt: int = pr.AUDIO_U8, *, speaker: bool = True,
                 low_hz: float = 100.0, high_hz: float = 3000.0, order: int = 4, gain: float = 1.0):
        from scipy import signal

        self.in_rate, self.out_rate, self.fmt, self.gain = float(in_rate), int(out_rate), fmt, gain
        self.sos = None
        if speaker:
            high = min(high_hz, 0.45 * self.in_rate)  # a low model rate cannot hold 3 kHz
            self.sos = signal.butter(order, [low_hz, high], btype="band", fs=self.in_rate, output="sos")
            self.zi = np.zeros((self.sos.shape[0], 2))
        self._step = self.in_rate / self.out_rate  # input samples per output sample
        self._buf = np.zeros(0)  # unconsumed filtered input; _pos indexes it
        self._pos = 0.0
        self.samples_in = 0
        self.samples_out = 0

    def push(self, levels) -> np.ndarray:
        from scipy import signal

        x = np.asarray(levels, dtype=np.float64).reshape(-1)
        self.samples_in += x.size
        if self.sos is not None and x.size:
            x, self.zi = signal.sosfilt(self.sos, x, zi=self.zi)
        buf = np.concatenate([self._buf, x])
        # linear interpolation at positions pos, pos+step, ... while both neighbours exist
        n = max(0, math.floor((len(buf) - 1 - self._pos) / self._step) + 1) if len(buf) >= 2 else 0
        if n and self._pos + (n - 1) * self._step > len(buf) - 1:
            n -= 1
        pos = self._pos + self._step * np.arange(n)
        i = np.minimum(np.floor(pos).astype(np.int64), len(buf) - 2) if n else np.zeros(0, dtype=np.int64)
        frac = pos - i
        y = buf[i] * (1 - frac) + buf[i + 1] * frac if n else np.zeros(0)
        next_pos = self._pos + self._step * n
        drop = min(int(math.floor(next_pos)), max(0, len(buf) - 1))
        self._buf = buf[drop:]
        self._pos = next_pos - drop
        self.samples_out += n
        return quantize(y * self.gain, self.fmt)

    def flush(self) -> np.ndarray:
        """The samples still owed at the end of the sound (the last input sample held)."""
        owed = self.expected_out(self.samples_in) - self.samples_out
        if owed <= 0 or not len(self._buf):
            return np.zeros(0, dtype=np.uint8)
        pos = self._pos + self._step * np.arange(owed)
        buf = np.concatenate([self._buf, np.repeat(self._buf[-1:], int(pos[-1]) + 2)])
        i = np.floor(pos).astype(np.int64)
        frac = pos - i
        self._buf = np.zeros(0)
        self.samples_out += owed
        return quantize((buf[i] * (1 - frac) + buf[i + 1] * frac) * self.gain, self.fmt)

    def expected_out(self, n_in: int) -> int:
        """Device samples that ``n_in`` input samples become."""
        return int(math.ceil(n_in * self.out_rate / self.in_rate))


def prebuffer_samples(gen_rate: float, play_rate: float, total: Optional[int] = None, *, margin_s: float = 0.1,
                      cap: Optional[int] = None, default_len_s: float = 2.0) -> int:
    """Device samples to hold back before playback so that generating at ``gen_rate`` (device samples
    per second) keeps ahead of playing at ``play_rate`` until ``total`` samples are out.

    Playing N samples takes N / play_rate seconds, generating the rest takes (N - P) / gen_rate,
    so P >= N (1 - gen_rate / play_rate) avoids an underrun; ``margin_s`` covers jitter. An unknown
    length is taken as ``default_len_s`` of sound.
    """
    margin = int(margin_s * play_rate)
    if gen_rate >= play_rate:
        need = margin
    else:
        n = total if total is not None else int(default_len_s * play_rate)
        need = int(math.ceil(n * (1.0 - gen_rate / play_rate))) + margin
    if total is not None:
        need = min(need, total)
    return max(0, min(need, cap) if cap is not None else need)
