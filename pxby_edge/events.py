"""What a generator tells its caller as tokens stream: one small immutable record per happening.

    python -c "from pxby_edge.events import Pixel; print(Pixel(stream=0, frame=0, row=1, col=2, index=7, token=65))"

The generator (``pxby_edge.generate``) yields these; the media writers and the firmware bridge
consume them. ``stream`` is the batch lane (0 for batch 1). Palette ``index`` is 0-based into the
vocabulary's palette (token id minus the palette offset); audio ``level`` is the action-state value
in [-1, 1].

Records are NamedTuples rather than frozen dataclasses: one is made per token on the hot path, and
a frozen dataclass costs ~2.7 µs to build against ~1 µs here (measured on the bench machine). Two
records are equal only when they are of the same kind, unlike plain tuples.
"""

from __future__ import annotations

from typing import NamedTuple, Union


class ModalityStart(NamedTuple):
    stream: int
    modality: str  # "text" | "image" | "audio"


class TextChar(NamedTuple):
    stream: int
    char: str
    token: int


class Pixel(NamedTuple):
    stream: int
    frame: int
    row: int
    col: int
    index: int
    token: int


class RowEnd(NamedTuple):
    stream: int
    frame: int
    row: int
    width: int


class FrameEnd(NamedTuple):
    stream: int
    frame: int
    height: int
    width: int


class AudioSample(NamedTuple):
    stream: int
    index: int  # sample number within the audio segment
    channel: int  # 0: original sound, 1: Game Boy-filtered copy
    level: float
    token: int


class ModalityEnd(NamedTuple):
    stream: int
    modality: str


class StreamEnd(NamedTuple):
    stream: int
    tokens: int
    reason: str  # "plan" (every planned segment ended) or "max_tokens" (the token budget ran out first)


def _eq(self, other):
    return type(self) is type(other) and tuple.__eq__(self, other)


def _ne(self, other):
    return not _eq(self, other)


def _hash(self):
    return hash((type(self).__name__, *self))


# NamedTuple cannot take a mixin base: the kind-aware comparison is set on each record class instead.
for _cls in (ModalityStart, TextChar, Pixel, RowEnd, FrameEnd, AudioSample, ModalityEnd, StreamEnd):
    _cls.__eq__, _cls.__ne__, _cls.__hash__ = _eq, _ne, _hash

Event = Union[ModalityStart, TextChar, Pixel, RowEnd, FrameEnd, AudioSample, ModalityEnd, StreamEnd]
