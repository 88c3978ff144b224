"""Logits → the next token: temperature (0 = greedy), top-k, top-p, seeded, with constraints.

    python -c "import numpy as np; from pxby_edge.sampling import Sampler; print(Sampler(seed=1).sample(np.arange(5.0)))"

Constraints arrive as a mask per position: the context builder's ``allowed()`` keeps the stream
well-formed and ``pxby_edge.plan.PlanTracker.mask`` adds the plan (order of modalities, lengths,
the training data's bounds). The sampler only draws among what the mask allows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional, Union

import numpy as np

from pxby_edge.context import additive_mask
from pxby_edge.errors import GenerationError
from pxby_edge.plan import MODALITY_NAMES

Temperature = Union[float, Mapping[str, float]]


def _check_temperature(value: float, what: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise GenerationError(f"{what} must be a finite number >= 0 (0 = greedy), got {value}")
    return value


# Noise rows drawn per refill: small enough that a block (64 × 151 float32, 39 KB) stays in cache.
NOISE_ROWS = 64
_TINY = np.float32(np.finfo(np.float32).tiny)


class Sampler:
    """Seeded sampler over one stream. ``temperature`` may be one number or one per modality
    (e.g. ``{"text": 0, "image": 0.8, "audio": 1.0}``): each slot of the stream is sampled with
    the temperature of the modality it belongs to.

    Draws use the Gumbel-max trick: the token is ``argmax(logits / T + g)`` with ``g`` standard
    Gumbel noise, which is an exact sample of ``softmax(logits / T)``. Per token that is three
    whole-array numpy calls (add noise, add the mask's bias, argmax) where an inverse-CDF draw needs
    seven (max, subtract, scale, exp, cumsum, a uniform, searchsorted); numpy's per-call overhead is
    what dominates at 151 logits on a Pi-class CPU. The noise comes in blocks of ``NOISE_ROWS``
    rows from the sampler's own generator, one row per sampled (non-greedy) token, so a stream
    depends only on its seed, never on the batch it runs in. With one temperature for every
    modality the block is pre-scaled by it (``logits + T·g`` has the same argmax as
    ``logits / T + g``), which saves the per-token multiply.
    """

    def __init__(self, temperature: Temperature = 1.0, top_k: int = 0, top_p: float = 1.0, seed: Optional[int] = None):
        if isinstance(temperature, Mapping):
            unknown = set(temperature) - set(MODALITY_NAMES)
            if unknown:
                raise GenerationError(f"unknown modality {sorted(unknown)} in temperature; use {MODALITY_NAMES}")
            self._temps = {m: _check_temperature(temperature.get(m, 1.0), f"temperature[{m}]") for m in MODALITY_NAMES}
            self._default_temp = 1.0
        else:
            t = _check_temperature(temperature, "temperature")
            self._temps = dict.fromkeys(MODALITY_NAMES, t)
            self._default_temp = t
        if int(top_k) < 0:
            raise GenerationError(f"top-k must be >= 0 (0 = off), got {top_k}")
        if not 0.0 < float(top_p) <= 1.0:
            raise GenerationError(f"top-p must be in (0, 1], got {top_p}")
        self.top_k = int(top_k)
        self.top_p = float(top_p)
        self.plain = not self.top_k and self.top_p >= 1.0  # no top-k/top-p: the vectorised path applies
        self.rng = np.random.default_rng(seed)
        temps = set(self._temps.values()) | {self._default_temp}
        # The one temperature every modality samples with, if there is one (noise is pre-scaled by it).
        self.uniform_temp: Optional[float] = temps.pop() if len(temps) == 1 else None
        self._noise_scale = self.uniform_temp if self.uniform_temp else 1.0
        self._fast = self.plain and bool(self.uniform_temp)
        self._block: Optional[np.ndarray] = None
        self._row = 0
        self._z: Optional[np.ndarray] = None

    def temperature_for(self, modality: Optional[str]) -> float:
        return self._temps.get(modality, self._default_temp) if modality else self._default_temp

    def noise(self, size: int) -> np.ndarray:
        """The next row of Gumbel noise (float32, (size,)), scaled by ``uniform_temp`` when there is one."""
        block, r = self._block, self._row
        if block is None or r >= block.shape[0] or block.shape[1] != size:
            e = self.rng.standard_exponential(size=(NOISE_ROWS, size), dtype=np.float32)
            np.maximum(e, _TINY, out=e)  # log(0) would make an infinite draw
            np.log(e, out=e)
            np.multiply(e, np.float32(-self._noise_scale), out=e)  # Gumbel = -log(Exp(1))
            self._block, block, r = e, e, 0
        self._row = r + 1
        return block[r]

    def sample(self, logits: np.ndarray, allowed: Optional[np.ndarray] = None, modality: Optional[str] = None,
               bias: Optional[np.ndarray] = None) -> int:
        """One token id from (V,) logits, among ``allowed`` (bool (V,)) when given.

        ``bias``: the additive form of ``allowed`` (0 / -inf, float32), when the caller has it cached.
        """
        z = self._z
        if self._fast and bias is not None and z is not None and z.shape == logits.shape:
            # The usual case (one temperature, no top-k/top-p, a cached mask): the general path's
            # float32 operations in the same order, with no branch or call that does not add to them.
            np.add(logits, bias, out=z)
            block, r = self._block, self._row
            if block is not None and r < NOISE_ROWS and block.shape[1] == z.size:
                self._row = r + 1
                z += block[r]
            else:
                z += self.noise(z.size)
            idx = int(z.argmax())
            if not z[idx] > -np.inf:  # the bias made every token -inf
                raise GenerationError("no token is allowed at this position (the plan contradicts the stream)")
            return idx
        return self._sample_general(logits, allowed, modality, bias)

    def _sample_general(self, logits: np.ndarray, allowed: Optional[np.ndarray], modality: Optional[str],
                        bias: Optional[np.ndarray]) -> int:
        """``sample`` for every case the fast path does not take (per-modality temperatures, top-k/p, greedy)."""
        z = self._z
        temp = self._temps.get(modality, self._default_temp) if modality else self._default_temp
        if allowed is not None and bias is None:
            bias = additive_mask(allowed)
        if z is None or z.shape != logits.shape:
            z = self._z = np.empty(logits.shape, dtype=np.float32)
        if temp == 0.0:
            if bias is None:
                np.copyto(z, logits)
            else:
                np.add(logits, bias, out=z)
        else:
            if self.uniform_temp:
                np.copyto(z, logits)
            else:
                np.multiply(logits, np.float32(1.0 / temp), out=z)
            if not self.plain:
                self._restrict(z, bias)
            elif bias is not None:
                z += bias
            z += self.noise(z.size)
        idx = int(z.argmax())
        if not z[idx] > -np.inf or (allowed is not None and not allowed[idx]):
            raise GenerationError("no token is allowed at this position (the plan contradicts the stream)")
        return idx

    def _restrict(self, z: np.ndarray, bias: Optional[np.ndarray]) -> None:
        """Top-k / top-p on tempered logits ``z`` (in place): what is cut becomes -inf."""
        if bias is not None:
            z += bias
        scale = np.float32(1.0 / self.uniform_temp) if self.uniform_temp else np.float32(1.0)
        if self.top_k and self.top_k < z.size:
            kth = np.partition(z, -self.top_k)[-self.top_k]
            z[z < kth] = -np.inf
        if self.top_p < 1.0:
            t = z * scale  # z may be pre-temperature (noise carries T): probabilities need the tempered form
            p = np.exp(t - t.max())
            order = np.argsort(-p, kind="stable")
            cum = np.cumsum(p[order])
            cut = int(np.searchsorted(cum, self.top_p * cum[-1], side="left")) + 1
            z[order[cut:]] = -np.inf


def sample_lanes(samplers: Sequence[Sampler], logits: np.ndarray, masks: np.ndarray, modalities: Sequence[Optional[str]],
                 biases: Optional[Sequence[np.ndarray]] = None) -> list:
    """One token per lane from (B, V) logits and (B, V) masks, vectorised across lanes.

    Draws exactly what ``samplers[k].sample(logits[k], masks[k], modalities[k])`` would (the same
    float32 operations in the same order, each lane's noise from its own generator), so a lane's
    stream does not depend on the batch it runs in. Lanes with top-k or top-p go through ``sample``.
    ``biases``: each lane's cached additive mask, when the caller has them.
    """
    n, size = logits.shape
    bias = np.stack(biases) if biases is not None else additive_mask(masks)
    z = np.empty((n, size), dtype=np.float32)
    scale = None
    rows = []
    special = []
    for k, s in enumerate(samplers):
        temp = s.temperature_for(modalities[k])
        if temp != 0.0 and not s.plain:
            special.append(k)
            rows.append(None)
            continue
        if temp != 0.0 and not s.uniform_temp:
            if scale is None:
                scale = np.ones((n, 1), dtype=np.float32)
            scale[k, 0] = np.float32(1.0 / temp)
        rows.append(s.noise(size) if temp != 0.0 else None)
    if scale is None:
        np.copyto(z, logits)
    else:
        np.multiply(logits, scale, out=z)
    z += bias
    if any(r is not None for r in rows):
        z += np.stack([r if r is not None else _zeros(size) for r in rows])
    out = z.argmax(axis=1).tolist()
    for k in range(n):
        if k in special:
            out[k] = samplers[k].sample(logits[k], masks[k], modalities[k],
                                        None if biases is None else biases[k])
        elif not z[k, out[k]] > -np.inf or not masks[k][out[k]]:
            raise GenerationError("no token is allowed at this position (the plan contradicts the stream)")
    return out


_ZEROS: dict = {}


def _zeros(size: int) -> np.ndarray:
    z = _ZEROS.get(size)
    if z is None:
        z = _ZEROS[size] = np.zeros(size, dtype=np.float32)
    return z
