"""The plan of a stream: which modalities, in which order, how long, and where each segment must end.

    python -c "from pxby_edge.plan import StreamPlan; print(StreamPlan.parse('text,image,audio', frames=2))"

A ``StreamPlan`` holds what the user asked for (exact frames, width, height, audio samples, a text cap)
and the bounds that keep a model inside what it was trained on (the largest width, height, frame
count and audio length its training data held: the manifest's geometry section), and the floors below
(the smallest sprite, frame count and audio it held): a row, a frame, a sprite or a cry may not end
short of them, so a 24×1 sprite or a 3-sample cry from a model trained on 24×24 ones cannot pass quietly.
Where the training data held one size only (floor = bound), that size is the plan, as if asked for. A ``PlanTracker``
follows a ``ContextBuilder`` through the plan and answers, per position, the tokens the plan allows
(combined with the builder's own well-formedness mask) and the segment decisions the plan takes.
It also records, per segment, which bounds had to act: a model that would have drawn an 80-pixel row
is stopped at the training width, and the summary says so.

``measure_geometry`` computes that geometry section from token streams (what ``quantize`` records).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from pxby_edge.context import ContextBuilder
from pxby_edge.errors import ContextError, GenerationError
from pxby_edge.manifest import (
    GEOMETRY_AUDIO_SAMPLES,
    GEOMETRY_IMAGE_FRAMES,
    GEOMETRY_IMAGE_HEIGHT,
    GEOMETRY_IMAGE_WIDTH,
    GEOMETRY_ITEMS,
    GEOMETRY_TEXT_TOKENS,
)
from pxby_edge.vocab import PAD_ID, ROW_END_ID, SEG_END_ID, Vocab

MODALITY_NAMES = ("text", "image", "audio")

# A bound acting on a segment is named by the plan field it stands in for.
BOUND_TEXT, BOUND_WIDTH, BOUND_HEIGHT, BOUND_FRAMES, BOUND_AUDIO = "text_chars", "width", "height", "frames", "audio_samples"
_LIMITS = (BOUND_TEXT, BOUND_FRAMES, BOUND_WIDTH, BOUND_HEIGHT, BOUND_AUDIO)
# The dimensions a floor holds up: a text shorter than any seen is a fine answer, a 1-row sprite is not.
_FLOORED = (BOUND_FRAMES, BOUND_WIDTH, BOUND_HEIGHT, BOUND_AUDIO)
# Which geometry range bounds which plan field.
GEOMETRY_BOUNDS = {BOUND_TEXT: GEOMETRY_TEXT_TOKENS, BOUND_WIDTH: GEOMETRY_IMAGE_WIDTH,
                   BOUND_HEIGHT: GEOMETRY_IMAGE_HEIGHT, BOUND_FRAMES: GEOMETRY_IMAGE_FRAMES,
                   BOUND_AUDIO: GEOMETRY_AUDIO_SAMPLES}


@dataclass(frozen=True)
class StreamPlan:
    """What to generate, in order, and how much. ``None`` limits leave it to the model.

    ``modalities``: e.g. ("text", "image", "audio"). ``text_chars``: cap on the text's length
    (its 2 is forced there). ``frames``: image frames. ``width``/``height``: image geometry to
    force (pixels, without the separator column). ``audio_samples``: samples per channel.
    ``bounds``: the largest value of each of those fields the model may reach where the field itself is
    None (keys ``BOUND_*``); reaching one ends the row, frame or segment there. ``floors``: the smallest
    (the training data's), which a segment must reach before it may end where the field is None (width,
    height, frames, audio samples); with ``enforce_floors`` False they are only compared with what was made.
    """

    modalities: tuple[str, ...] = MODALITY_NAMES
    text_chars: Optional[int] = None
    frames: Optional[int] = None
    width: Optional[int] = None
    height: Optional[int] = None
    audio_samples: Optional[int] = None
    bounds: tuple[tuple[str, int], ...] = ()
    floors: tuple[tuple[str, int], ...] = ()
    enforce_floors: bool = True

    def __post_init__(self):
        mods = tuple(self.modalities)
        object.__setattr__(self, "modalities", mods)
        if not mods:
            raise GenerationError("the plan names no modality; use e.g. text,image,audio")
        bad = [m for m in mods if m not in MODALITY_NAMES]
        if bad:
            raise GenerationError(f"unknown modality {bad[0]!r} in the plan; choose from {', '.join(MODALITY_NAMES)}")
        for name in _LIMITS:
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise GenerationError(f"plan {name.replace('_', ' ')} must be >= 1, got {value}")
        bounds = dict(self.bounds)
        for name, value in bounds.items():
            if name not in _LIMITS or int(value) < 1:
                raise GenerationError(f"plan bound {name}={value} is not one of {', '.join(_LIMITS)} >= 1")
        object.__setattr__(self, "bounds", tuple(sorted(bounds.items())))
        floors = dict(self.floors)
        for name, value in floors.items():
            if name not in _FLOORED or int(value) < 1 or int(value) > bounds.get(name, int(value)):
                raise GenerationError(f"plan floor {name}={value} is not one of {', '.join(_FLOORED)}, "
                                      ">= 1 and at most its bound")
        object.__setattr__(self, "floors", tuple(sorted(floors.items())))

    @classmethod
    def parse(cls, spec: Union[str, Sequence[str]], **limits) -> StreamPlan:
        mods = spec.split(",") if isinstance(spec, str) else list(spec)
        return cls(tuple(m.strip().lower() for m in mods if m.strip()), **limits)

    def limit(self, name: str) -> tuple[Optional[int], bool]:
        """(the value that ends ``name``'s dimension, True when it is a bound rather than the user's own)."""
        value = getattr(self, name)
        if value is not None:
            return int(value), False
        bound = dict(self.bounds).get(name)
        if bound is not None and self.floor(name) == bound:
            return int(bound), False  # the one size the model was trained on: the plan, not a cut
        return (int(bound), True) if bound is not None else (None, False)

    def floor(self, name: str) -> Optional[int]:
        """The smallest value ``name`` may end at, enforced (None: the user set it, or no floor)."""
        if getattr(self, name) is not None or not self.enforce_floors:
            return None
        return dict(self.floors).get(name)

    def short(self, name: str, made: int) -> Optional[int]:
        """The training data's smallest ``name`` when ``made`` falls short of it and the user left ``name``
        open (what the summary warns about), else None."""
        least = dict(self.floors).get(name)
        return least if getattr(self, name) is None and least is not None and made < least else None


def bounds_from_geometry(geometry: dict) -> tuple[tuple[str, int], ...]:
    """Plan bounds from a manifest's geometry section (the largest value of each range)."""
    return tuple((name, int(geometry[key][1])) for name, key in GEOMETRY_BOUNDS.items()
                 if key in geometry and int(geometry[key][1]) >= 1)


def floors_from_geometry(geometry: dict) -> tuple[tuple[str, int], ...]:
    """Plan floors from a manifest's geometry section (the smallest sprite, frame count and audio of each range)."""
    return tuple((name, int(geometry[GEOMETRY_BOUNDS[name]][0])) for name in _FLOORED
                 if GEOMETRY_BOUNDS[name] in geometry and int(geometry[GEOMETRY_BOUNDS[name]][0]) >= 1)


class PlanTracker:
    """Follows a ContextBuilder through a StreamPlan: masks and segment decisions per position.

    The plan counts every segment of the stream, the prompt's included: a text prompt pushed
    into the builder is the start of the plan's text segment, which the model may continue.
    ``acted[k]``: the bounds that cut segment k (``BOUND_*`` names, in the order they acted): where a
    bound restricted a mask and the model's own best token was one it refused (see ``settle``).
    """

    def __init__(self, plan: StreamPlan, builder: ContextBuilder):
        self.plan = plan
        self.builder = builder
        self.acted: dict[int, list[str]] = {}
        self.pending: Optional[tuple[str, np.ndarray]] = None  # a bound that restricted the last mask
        self._text = plan.limit(BOUND_TEXT)[0]  # the user's cap or the bound: either is a cap, reported alike (_mask)
        self._width, self._width_bound = plan.limit(BOUND_WIDTH)
        self._height, self._height_bound = plan.limit(BOUND_HEIGHT)
        self._frames, self._frames_bound = plan.limit(BOUND_FRAMES)
        self._audio, self._audio_bound = plan.limit(BOUND_AUDIO)
        self._least = {name: plan.floor(name) or 0 for name in _FLOORED}

    @property
    def finished_segments(self) -> int:
        b = self.builder
        return len(b.segments) - (b.cursor.modality is not None)

    @property
    def done(self) -> bool:
        """True once every planned segment is finished."""
        return self.builder.cursor.modality is None and self.finished_segments >= len(self.plan.modalities)

    @property
    def current(self) -> Optional[str]:
        """The modality of the next position under the plan (None once the plan is complete)."""
        mod = self.builder.cursor.modality
        if mod is not None:
            return mod
        k = self.finished_segments
        return self.plan.modalities[k] if k < len(self.plan.modalities) else None

    def _record(self, name: str) -> None:
        names = self.acted.setdefault(len(self.builder.segments) - 1, [])
        if name not in names:
            names.append(name)

    def _cut(self, bound: bool, name: str, forced: np.ndarray) -> np.ndarray:
        """``forced`` as the mask, and, for a bound or a cap (an exact length is the plan itself), a note
        for ``settle`` to check whether the model wanted something else here."""
        if bound:
            self.pending = (name, forced)
        return forced

    def settle(self, logits: np.ndarray) -> None:
        """After a mask that a bound restricted: record the bound as having cut the segment when the
        model's own best token under the stream's form (``logits`` (V,)) is one the bound refused."""
        name, forced = self.pending
        self.pending = None
        free = self.builder.allowed().copy()
        free[PAD_ID] = True  # an autoregressive model says "the segment ends" with padding in slot 5
        top = int(np.argmax(np.where(free, logits, -np.inf)))
        if not forced[SEG_END_ID if top == PAD_ID else top]:
            self._record(name)

    def mask(self) -> np.ndarray:
        """bool (V,) of tokens allowed next under both the stream's form and the plan (read-only)."""
        b, m = self.builder, self.builder.masks
        cur = b.cursor
        if cur.modality is None:
            mod = self.current
            if mod is None:
                raise GenerationError("the plan is complete: nothing more to generate")
            return {"text": m.text, "image": m.pixel, "audio": m.action}[mod]
        if cur.modality == "image":
            return self._image_mask(cur)
        if cur.modality == "text":
            if self._text is not None and cur.column >= self._text:
                return self._cut(True, BOUND_TEXT, m.seg_end)  # a cap, never an exact length
        elif self._audio is not None and cur.column == 0 and not cur.in_separator_row and cur.frame >= self._audio:
            return self._cut(self._audio_bound, BOUND_AUDIO, m.row_end)
        elif self._audio is not None and cur.column == 0 and not cur.in_separator_row and not self._audio_bound:
            return m.action  # an exact length: the audio may not end before it
        elif cur.column == 0 and not cur.in_separator_row and cur.frame < self._least[BOUND_AUDIO]:
            return m.action  # shorter than any cry it was trained on: not yet
        return b.allowed()

    def _image_mask(self, cur) -> np.ndarray:
        mask = self._above_floors(cur, self._row_mask(cur))
        if cur.width is None and self._height == 1 and mask[ROW_END_ID]:
            # a one-row frame: its first row is its last, so that row ends the frame (2), never a row (1)
            forced = mask.copy()
            forced[ROW_END_ID] = False
            return self._cut(self._height_bound, BOUND_HEIGHT, forced)
        return mask

    def _above_floors(self, cur, mask: np.ndarray) -> np.ndarray:
        """``mask`` without the separators that would end a row (1 or 2) narrower, or a frame (2) shorter, than
        any the model was trained on; unchanged where that would leave nothing."""
        ends = []
        if cur.width is None and cur.column < self._least[BOUND_WIDTH]:
            ends += [ROW_END_ID, SEG_END_ID]
        if cur.height is None and cur.row < self._least[BOUND_HEIGHT] - 1:
            ends.append(SEG_END_ID)
        if not ends or not mask[ends].any():
            return mask
        held = mask.copy()
        held[ends] = False
        return held if held.any() else mask

    def _row_mask(self, cur) -> np.ndarray:
        b, m = self.builder, self.builder.masks
        j, w, h = cur.column, cur.width, cur.height
        if w is None and self._width is not None:
            if j < self._width:
                return m.pixel if not self._width_bound else b.allowed()
            if self._height == 1:
                forced = m.seg_end
            else:
                forced = m.seps if self._height is None or self._height_bound else m.row_end
            return self._cut(self._width_bound, BOUND_WIDTH, forced)
        if h is None and self._height is not None and w is not None and j == w - 1:
            if cur.row >= self._height - 1:
                return self._cut(self._height_bound, BOUND_HEIGHT, m.seg_end)
            return m.row_end if not self._height_bound else b.allowed()
        return b.allowed()

    def decide(self, token: int, predicted: Optional[bool] = None) -> Optional[bool]:
        """``segment_ends`` for pushing ``token`` now: the plan decides where it can, else the
        model's own prediction (``predicted``), else the segment ends."""
        b, plan = self.builder, self.plan
        if not b.needs_decision(token):
            return None
        mod = b.cursor.modality
        if mod == "image" and b.cursor.frame + 1 < self._least[BOUND_FRAMES]:
            return False  # fewer frames than any sprite it was trained on: another one
        if mod == "text":
            # A planned text ends at its 2 when the plan has more to come.
            if self.finished_segments + 1 < len(plan.modalities):
                return True
        elif mod == "image" and self._frames is not None:
            if b.cursor.frame + 1 >= self._frames:
                if predicted is False and self._frames_bound:  # the model would have drawn another frame
                    self._record(BOUND_FRAMES)
                return True
            if not self._frames_bound:
                return False
        return True if predicted is None else predicted


def _labels(stream: np.ndarray) -> list[int]:
    """The tokens of a stream given as labels (N,) or as upstream (N, 6) contexts.

    In a context, slot 5 is the previous token of the segment and a segment's first context is all
    padding, so token i is slot 5 of context i+1, or the segment's closing 2 where that is padding."""
    arr = np.asarray(stream)
    if arr.ndim == 1:
        return arr.astype(np.int64).tolist()
    nxt = arr[1:, 5].astype(np.int64)
    return [int(t) if t != PAD_ID else SEG_END_ID for t in nxt] + [SEG_END_ID]


def _segment_ends(tokens: list[int], k: int, modality: str, vocab: Vocab) -> bool:
    """A 2 at k ends its segment unless the next token goes on in the same modality (dataset items
    hold one segment per modality, so a 2 followed by a colour is another frame, not another image)."""
    if k + 1 >= len(tokens):
        return True
    nxt = tokens[k + 1]
    same = vocab.is_palette(nxt) if modality == "image" else vocab.is_byte(nxt) and nxt != PAD_ID
    return not same


def measure_geometry(streams: Iterable, vocab: Optional[Vocab] = None) -> dict:
    """The manifest's geometry section (``GEOMETRY_*`` [min, max] ranges and the item count) of token
    streams: text length in tokens, sprite width and height in pixels, frames, audio samples per channel.

    A stream that is not a well-formed token stream (calibration data may be anything the user had) adds
    nothing: geometry describes items a generation could imitate, and a bound from noise would cut real ones."""
    vocab = vocab or Vocab()
    seen: dict[str, list[int]] = {key: [] for key in GEOMETRY_BOUNDS.values()}
    items = 0
    for stream in streams:
        item: dict[str, list[int]] = {key: [] for key in seen}
        try:
            _measure_item(_labels(stream), vocab, item)
        except ContextError:
            continue
        items += 1
        for key, values in item.items():
            seen[key].extend(values)
    out: dict = {key: [min(v), max(v)] for key, v in seen.items() if v}
    out[GEOMETRY_ITEMS] = items
    return out


def short_of_floors(plan: StreamPlan, tokens: Sequence[int], vocab: Optional[Vocab] = None) -> list:
    """(name, made, least) for each dimension the user left open whose smallest value in the finished
    segments of ``tokens`` (one stream's labels) is below the training data's smallest: a sprite or a cry
    that the floors did not hold up (``--unbounded``, or the token budget), which the summary warns about."""
    seen: dict[str, list[int]] = {key: [] for key in GEOMETRY_BOUNDS.values()}
    try:
        _measure_item(list(tokens), vocab or Vocab(), seen)
    except ContextError:
        return []
    out = []
    for name in _FLOORED:
        made = seen[GEOMETRY_BOUNDS[name]]
        least = plan.short(name, min(made)) if made else None
        if least is not None:
            out.append((name, min(made), least))
    return out


def _measure_item(tokens, vocab: Vocab, seen: dict) -> None:
    b = ContextBuilder(vocab=vocab)
    for k, token in enumerate(tokens):
        cur = b.cursor
        b.push(token, _segment_ends(tokens, k, cur.modality, vocab) if b.needs_decision(token) else None)
        if b.cursor.modality is None and cur.modality is not None:
            _record(seen, cur, token)


def _record(seen: dict, cur, token: int) -> None:
    """Note the geometry of a segment that the push of ``token`` at ``cur`` just ended."""
    if cur.modality == "text":
        seen[GEOMETRY_TEXT_TOKENS].append(cur.column)  # tokens before the closing 2, as text_chars counts
    elif cur.modality == "image":
        width = cur.width - 1 if cur.width is not None else cur.column
        seen[GEOMETRY_IMAGE_WIDTH].append(width)
        seen[GEOMETRY_IMAGE_HEIGHT].append(cur.height if cur.height is not None else cur.row + 1)
        seen[GEOMETRY_IMAGE_FRAMES].append(cur.frame + 1)
    else:
        seen[GEOMETRY_AUDIO_SAMPLES].append(cur.frame)


__all__ = ["MODALITY_NAMES", "PlanTracker", "StreamPlan", "bounds_from_geometry", "floors_from_geometry",
           "measure_geometry", "short_of_floors"]
