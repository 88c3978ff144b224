"""Device-rate sound to Game Boy APU register writes, one set per video frame, and the measure that chose how.

    python -c "from firmware_bridge.gameboy.apu import ApuEncoder; import numpy as np; print(ApuEncoder().push(np.full(300, 128, np.uint8))[:1])"

The APU has 4-bit DACs and no PCM channel, and the ROM plays one "sound frame" of register
writes per VBlank (59.73 Hz). Two ways to turn the stream's samples (8192 Hz, already through the
Game Boy speaker filter) into frames:

- ``registers``: per frame, the two strongest spectral peaks become the pitch and 4-bit volume of
  the two pulse channels (CH1, CH2; 50 % duty). 14 bytes a frame, ~0.8 KB/s of link.
- ``wave``: per frame, one pitch period of the waveform itself, 32 4-bit samples, goes into CH3's
  wave RAM and CH3 plays it at that pitch. 44 bytes a frame, ~2.6 KB/s.

``log_spectral_distance`` compares what PyBoy played with the reference; tests/test_gameboy.py
measures both methods on the same sound and docs/GAMEBOY.md gives the figures.
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.errors import CapabilityError
from firmware_bridge.gameboy import packets as gl
from pxby_edge.constants import DEVICE_AUDIO_RATE

IN_RATE = DEVICE_AUDIO_RATE  # the reference device plays the stream at the device rate; this re-voices it
FRAME_HZ = 4194304 / 70224
METHODS = ("registers", "wave")
_WINDOW = 512  # analysis window (62 ms at 8192 Hz): 16 Hz bins, enough for a cry's pitch
_LOW_HZ, _HIGH_HZ = 64.0, 3500.0
SOUND_RING = 1023  # bytes the ROM's sound ring holds (SND_SIZE - 1 in rom/main.c)
# volume 0 (DAC off) on both pulses, retriggered so it takes effect; CH3's DAC off
SILENCE = (0x12, 0x00, 0x14, 0x80, 0x17, 0x00, 0x19, 0x80, 0x1A, 0x00)


def _peaks(x: np.ndarray, n: int = 2) -> list[tuple[float, float]]:
    """The ``n`` strongest (frequency Hz, sine amplitude) peaks of ``x`` in the speaker's band."""
    w = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * w, 4 * len(x))) * 2.0 / w.sum()
    freqs = np.fft.rfftfreq(4 * len(x), 1.0 / IN_RATE)
    band = (freqs >= _LOW_HZ) & (freqs <= _HIGH_HZ)
    spec = np.where(band, spec, 0.0)
    out = []
    for _ in range(n):
        i = int(spec.argmax())
        out.append((float(freqs[i]), float(spec[i])))
        near = np.abs(freqs - freqs[i]) < 60.0  # the peak's own lobe is not a second voice
        spec[near] = 0.0
    return out


def _volume(amplitude: float) -> int:
    # a full-scale square of a 4-bit volume v has a fundamental of 4/pi * v/15: match the sine
    return int(np.clip(np.round(amplitude * 15.0 * np.pi / 4.0), 0, 15))


def _pulse(base: int, freq: float, vol: int, prev: tuple[int, int] | None) -> tuple[list[int], tuple[int, int]]:
    """Register pairs for a pulse channel (NRx1..NRx4 at ``base``); retrigger only on a new volume."""
    period = int(np.clip(round(2048 - 131072.0 / max(freq, 64.0)), 0, 2047))
    pairs = [base + 2, period & 0xFF]
    if prev is None or prev[0] != vol:
        pairs = [base, 0x80, base + 1, vol << 4] + pairs + [base + 3, 0x80 | period >> 8]
    else:
        pairs += [base + 3, period >> 8]
    return pairs, (vol, period)


class ApuEncoder:
    """Samples (u8, 8192 Hz) in, SOUND packets out, one register set per video frame."""

    def __init__(self, method: str = "registers"):
        if method not in METHODS:
            raise CapabilityError(f"sound method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.buf = np.zeros(0)
        self.consumed = 0  # input samples already turned into frames
        self.frames_out = 0
        self._state: dict = {}
        self._frames: list[list[int]] = []
        self.sent_sizes: list[int] = []  # bytes of each frame handed out, newest last

    def push(self, samples) -> list[tuple[int, bytes]]:
        x = np.asarray(samples, dtype=np.float64).reshape(-1) / 127.5 - 1.0
        self.buf = np.concatenate([self.buf, x])
        # a frame is encoded once the window around its middle has arrived
        while self._frame_end(self.frames_out) + _WINDOW // 2 <= self.consumed + len(self.buf):
            self._frame()
        return self._packets()

    def finish(self) -> list[tuple[int, bytes]]:
        """The last frames (their windows zero-padded), then silence on every channel."""
        total = self.consumed + len(self.buf)
        while self._frame_start(self.frames_out) < total:
            self._frame()
        self._frames.append(list(SILENCE) + [gl.SND_END, 0])
        self.sent_sizes.append(len(SILENCE) + 2)
        return self._packets(flush=True)

    def frames_buffered(self, ring_bytes: int = SOUND_RING) -> int:
        """At most how many sent frames can still be waiting in the ROM's sound ring."""
        total = n = 0
        for size in reversed(self.sent_sizes):
            total += size
            if total > ring_bytes:
                break
            n += 1
        return n

    @staticmethod
    def _frame_start(k: int) -> int:
        return int(round(k * IN_RATE / FRAME_HZ))

    def _frame_end(self, k: int) -> int:
        return self._frame_start(k + 1)

    def _frame(self) -> None:
        k = self.frames_out
        lo, hi = self._frame_start(k) - self.consumed, self._frame_end(k) - self.consumed
        mid = (lo + hi) // 2
        a = max(0, mid - _WINDOW // 2)
        x = np.zeros(_WINDOW)
        seg = self.buf[a : mid + _WINDOW // 2]
        x[: len(seg)] = seg
        pairs = self._registers(x) if self.method == "registers" else self._wave(x, self.buf[lo:hi])
        self._frames.append(pairs + [gl.SND_END, 0])
        self.sent_sizes.append(len(pairs) + 2)
        self.frames_out += 1
        # keep what the next frame's window still needs
        drop = max(0, min(self._frame_end(k + 1) - self.consumed - _WINDOW, len(self.buf)))
        self.buf = self.buf[drop:]
        self.consumed += drop

    def _registers(self, x: np.ndarray) -> list[int]:
        first = "ch1" not in self._state
        (f1, a1), (f2, a2) = _peaks(x)
        p1, self._state["ch1"] = _pulse(0x11, f1, _volume(a1), self._state.get("ch1"))
        p2, self._state["ch2"] = _pulse(0x16, f2, _volume(a2), self._state.get("ch2"))
        return ([0x10, 0x00] if first else []) + p1 + p2

    def _wave(self, x: np.ndarray, frame: np.ndarray) -> list[int]:
        (f1, _), = _peaks(x, 1)
        per = IN_RATE / max(f1, _LOW_HZ)  # samples in one period
        src = frame if len(frame) >= 2 else np.zeros(2)
        pos = np.arange(32) * per / 32.0
        one = np.interp(pos % len(src), np.arange(len(src)), src)
        q = np.clip(np.round((one + 1.0) * 7.5), 0, 15).astype(int)
        wave = [0x1A, 0x00]  # DAC off: DMG wave RAM is only safe to write with CH3 stopped
        for i in range(16):
            wave += [0x30 + i, int(q[2 * i] << 4 | q[2 * i + 1])]
        period = int(np.clip(round(2048 - 65536.0 / max(f1, 32.0)), 0, 2047))
        return wave + [0x1A, 0x80, 0x1C, 0x20, 0x1D, period & 0xFF, 0x1E, 0x80 | period >> 8]

    def _packets(self, flush: bool = False) -> list[tuple[int, bytes]]:
        """Whole frames into SOUND packets of at most ``MAX_LEN`` bytes: the ROM never plays half a
        frame's writes. Packets go full, except the last one at ``flush``."""
        out, cur = [], []
        for frame in self._frames:
            if len(cur) + len(frame) > gl.MAX_LEN:
                out.append((gl.T_SOUND, bytes(cur)))
                cur = []
            cur += frame
        self._frames = [cur] if cur and not flush else []
        if cur and flush:
            out.append((gl.T_SOUND, bytes(cur)))
        return out


def log_spectral_distance(a: np.ndarray, b: np.ndarray, rate: int = IN_RATE, nperseg: int = 256,
                          floor_db: float = 30.0) -> float:
    """RMS over time of the RMS over frequency of the dB difference between two sounds' spectrograms,
    each normalized by its own mean level (a gain between them is no distance), floored ``floor_db``
    below each one's peak: a 4-bit DAC spans 24 dB, so detail 30 dB down is beyond what either
    method can render and would only measure the floor. Lower is closer; 0 is identical."""
    from scipy import signal

    n = min(len(a), len(b))
    _, _, sa = signal.stft(a[:n], rate, nperseg=nperseg)
    _, _, sb = signal.stft(b[:n], rate, nperseg=nperseg)
    pa, pb = np.abs(sa) ** 2 + 1e-20, np.abs(sb) ** 2 + 1e-20
    la, lb = 10 * np.log10(pa), 10 * np.log10(pb)
    la = np.maximum(la, la.max() - floor_db)
    lb = np.maximum(lb, lb.max() - floor_db)
    la -= la.mean()
    lb -= lb.mean()
    return float(np.sqrt(np.mean((la - lb) ** 2, axis=0)).mean())


def envelope_correlation(a: np.ndarray, b: np.ndarray, rate: int = IN_RATE, frame_s: float = 1 / FRAME_HZ) -> float:
    """Pearson correlation of the two sounds' RMS envelopes, one value per video frame."""
    step = max(1, int(rate * frame_s))
    n = min(len(a), len(b)) // step
    ea = np.sqrt((a[: n * step].reshape(n, step) ** 2).mean(axis=1))
    eb = np.sqrt((b[: n * step].reshape(n, step) ** 2).mean(axis=1))
    if n < 2 or ea.std() == 0 or eb.std() == 0:
        return 0.0
    return float(np.corrcoef(ea, eb)[0, 1])


def align(reference: np.ndarray, played: np.ndarray) -> np.ndarray:
    """``played`` shifted so that its envelope lines up with ``reference``'s (the Game Boy starts late).
    Envelopes are RMS over a video frame, each scaled to unit peak: the Game Boy plays far quieter."""
    from scipy import signal

    def envelope(x):
        e = np.sqrt(np.convolve(np.asarray(x, dtype=np.float64) ** 2, np.ones(137) / 137, "same"))
        return e / max(float(e.max()), 1e-12)

    lag = 0
    if len(played) > len(reference):
        lag = int(np.argmax(signal.correlate(envelope(played), envelope(reference), mode="valid")))
    out = played[lag : lag + len(reference)]
    return np.pad(out, (0, len(reference) - len(out)))


def to_reference_rate(played: np.ndarray, rate: int) -> np.ndarray:
    """A capture (floats at ``rate``) at 8192 Hz without the DAC's DC offset, ready to compare."""
    from scipy import signal

    x = signal.resample_poly(np.asarray(played, dtype=np.float64), IN_RATE, int(rate))
    sos = signal.butter(2, 30.0, btype="high", fs=IN_RATE, output="sos")
    return signal.sosfilt(sos, x)


def compare(reference: np.ndarray, played: np.ndarray, rate: int) -> dict:
    """The documented measure: log-spectral distance (dB) and envelope correlation of what the Game
    Boy played against the reference sound, after resampling, DC removal and alignment."""
    got = align(reference, to_reference_rate(played, rate))
    return {"lsd_db": log_spectral_distance(reference, got), "envelope_r": envelope_correlation(reference, got)}
