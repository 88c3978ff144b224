"""Logits → the next token: temperature (0 = greedy), top-k, top-p, seeded, with constraints.

    python -c "import numpy as np; from pxby_edge.sampling import Sampler; print(Sampler(seed=1).sample(np.arange(5.0)))"

Constraints come from two places: the context builder's ``allowed()`` mask keeps the stream
well-formed (separators exactly at the row width, only colours inside an image, ...), and a
``StreamPlan`` forces the order of modalities and their lengths (text → image → audio, F frames,
S audio samples). ``PlanTracker.mask`` combines both for the next position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from pxby_edge.context import ContextBuilder
from pxby_edge.errors import GenerationError

MODALITY_NAMES = ("text", "image", "audio")
Temperature = Union[float, Mapping[str, float]]


def _check_temperature(value: float, what: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise GenerationError(f"{what} must be a finite number >= 0 (0 = greedy), got {value}")
    return value


class Sampler:
    """Seeded sampler over one stream. ``temperature`` may be one number or one per modality
    (e.g. ``{"text": 0, "image": 0.8, "audio": 1.0}``): each slot of the stream is sampled with
    the temperature of the modality it belongs to."""

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
        self.rng = np.random.default_rng(seed)

    def temperature_for(self, modality: Optional[str]) -> float:
        return self._temps.get(modality, self._default_temp) if modality else self._default_temp

    def sample(self, logits: np.ndarray, allowed: Optional[np.ndarray] = None, modality: Optional[str] = None) -> int:
        """One token id from (V,) logits, among ``allowed`` (bool (V,)) when given."""
        # Few, whole-array numpy calls: this runs once per token on a Pi-class CPU.
        z = logits if allowed is None else np.where(allowed, logits, -np.inf)
        temp = self._temps.get(modality, self._default_temp) if modality else self._default_temp
        zmax = z.max()
        if not zmax > -np.inf:
            raise GenerationError("no token is allowed at this position (the plan contradicts the stream)")
        if temp == 0.0:
            return int(z.argmax())
        p = np.exp((z - zmax) * (1.0 / temp))
        if self.top_k and self.top_k < p.size:
            kth = np.partition(p, -self.top_k)[-self.top_k]
            p[p < kth] = 0.0
        if self.top_p < 1.0:
            order = np.argsort(-p, kind="stable")
            cum = np.cumsum(p[order])
            cut = int(np.searchsorted(cum, self.top_p * cum[-1], side="left")) + 1
            p[order[cut:]] = 0.0
        # Inverse-CDF draw: one uniform per token keeps streams reproducible for a seed.
        cdf = p.cumsum()
        idx = int(cdf.searchsorted(self.rng.random() * cdf[-1], side="right"))
        return min(idx, p.size - 1)


def sample_lanes(samplers: Sequence[Sampler], logits: np.ndarray, masks: np.ndarray, modalities: Sequence[Optional[str]]) -> list:
    """One token per lane from (B, V) logits and (B, V) masks, vectorised across lanes.

    Draws exactly what ``samplers[k].sample(logits[k], masks[k], modalities[k])`` would (same
    float32 operations, one uniform per lane from each lane's own generator), so a lane's stream
    does not depend on the batch it runs in. Lanes with top-k or top-p go through ``sample``.
    """
    z = np.where(masks, logits, -np.inf)
    zmax = z.max(axis=1, keepdims=True)
    if not np.all(zmax > -np.inf):
        raise GenerationError("no token is allowed at this position (the plan contradicts the stream)")
    temps = np.array([s.temperature_for(m) for s, m in zip(samplers, modalities)], dtype=np.float64)
    greedy = temps == 0.0
    scale = (1.0 / np.where(greedy, 1.0, temps)).astype(z.dtype)[:, None]
    p = np.exp((z - zmax) * scale)
    cdf = p.cumsum(axis=1)
    out = []
    argmax = z.argmax(axis=1)
    for k, s in enumerate(samplers):
        if greedy[k]:
            out.append(int(argmax[k]))
        elif s.top_k or s.top_p < 1.0:
            out.append(s.sample(logits[k], masks[k], modalities[k]))
        else:
            row = cdf[k]
            idx = int(row.searchsorted(s.rng.random() * row[-1], side="right"))
            out.append(min(idx, row.size - 1))
    return out


@dataclass(frozen=True)
class StreamPlan:
    """What to generate, in order, and how much. ``None`` limits leave it to the model.

    ``modalities``: e.g. ("text", "image", "audio"). ``text_chars``: cap on the text's length
    (its 2 is forced there). ``frames``: image frames. ``width``/``height``: image geometry to
    force (pixels, without the separator column). ``audio_samples``: samples per channel.
    """

    modalities: tuple[str, ...] = MODALITY_NAMES
    text_chars: Optional[int] = None
    frames: Optional[int] = None
    width: Optional[int] = None
    height: Optional[int] = None
    audio_samples: Optional[int] = None

    def __post_init__(self):
        mods = tuple(self.modalities)
        object.__setattr__(self, "modalities", mods)
        if not mods:
            raise GenerationError("the plan names no modality; use e.g. text,image,audio")
        bad = [m for m in mods if m not in MODALITY_NAMES]
        if bad:
            raise GenerationError(f"unknown modality {bad[0]!r} in the plan; choose from {', '.join(MODALITY_NAMES)}")
        for name in ("text_chars", "frames", "width", "height", "audio_samples"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise GenerationError(f"plan {name.replace('_', ' ')} must be >= 1, got {value}")

    @classmethod
    def parse(cls, spec: Union[str, Sequence[str]], **limits) -> StreamPlan:
        mods = spec.split(",") if isinstance(spec, str) else list(spec)
        return cls(tuple(m.strip().lower() for m in mods if m.strip()), **limits)


class PlanTracker:
    """Follows a ContextBuilder through a StreamPlan: masks and segment decisions per position.

    The plan counts every segment of the stream, the prompt's included: a text prompt pushed
    into the builder is the start of the plan's text segment, which the model may continue.
    """

    def __init__(self, plan: StreamPlan, builder: ContextBuilder):
        self.plan = plan
        self.builder = builder
        self._mask = np.zeros(builder.vocab.size, dtype=bool)

    @property
    def finished_segments(self) -> int:
        b = self.builder
        return len(b.segments) - (b.modality is not None)

    @property
    def done(self) -> bool:
        """True once every planned segment is finished."""
        return self.builder.modality is None and self.finished_segments >= len(self.plan.modalities)

    @property
    def current(self) -> Optional[str]:
        """The modality of the next position under the plan (None once the plan is complete)."""
        b = self.builder
        if b.modality is not None:
            return b.modality
        k = self.finished_segments
        return self.plan.modalities[k] if k < len(self.plan.modalities) else None

    def mask(self) -> np.ndarray:
        """bool (V,) of tokens allowed next under both the stream's form and the plan."""
        b, plan, m = self.builder, self.plan, self.builder.masks
        if b.modality is None:
            mod = self.current
            if mod is None:
                raise GenerationError("the plan is complete: nothing more to generate")
            return {"text": m.text, "image": m.pixel, "audio": m.action}[mod]
        mod = b.modality
        if mod == "image":
            return self._image_mask()
        if mod == "text" and plan.text_chars is not None and b.position.column >= plan.text_chars:
            return m.seg_end
        if mod == "audio" and plan.audio_samples is not None:
            pos = b.position
            if pos.channel == 0 and not b.in_separator_row:
                return m.row_end if pos.frame >= plan.audio_samples else m.action
        return b.allowed()

    def _image_mask(self) -> np.ndarray:
        b, plan, m = self.builder, self.plan, self.builder.masks
        pos = b.position
        if b.width is None and plan.width is not None:
            if pos.column < plan.width:
                return m.pixel
            if plan.height == 1:
                return m.seg_end
            return m.seps if plan.height is None else m.row_end
        if b.height is None and plan.height is not None and b.width is not None and pos.column == b.width - 1:
            return m.seg_end if pos.row == plan.height - 1 else m.row_end
        return b.allowed()

    def decide(self, token: int, predicted: Optional[bool] = None) -> Optional[bool]:
        """``segment_ends`` for pushing ``token`` now: the plan decides where it can, else the
        model's own prediction (``predicted``), else the segment ends."""
        b, plan = self.builder, self.plan
        if not b.needs_decision(token):
            return None
        if b.modality == "text":
            # A planned text ends at its 2 when the plan has more to come.
            if self.finished_segments + 1 < len(plan.modalities):
                return True
        elif b.modality == "image" and plan.frames is not None:
            return b.position.frame + 1 >= plan.frames
        return True if predicted is None else predicted
