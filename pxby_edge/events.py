"""What a generator tells its caller as tokens stream: one small immutable record per happening.

    python -c "from pxby_edge.events import Pixel; print(Pixel(stream=0, frame=0, row=1, col=2, index=7, token=65))"

The generator (``pxby_edge.generate``) yields these; the media writers and the firmware bridge
consume them. ``stream`` is the batch lane (0 for batch 1). Palette ``index`` is 0-based into the
vocabulary's palette (token id minus the palette offset); audio ``level`` is the action-state value
in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class ModalityStart:
    stream: int
    modality: str  # "text" | "image" | "audio"


@dataclass(frozen=True)
class TextChar:
    stream: int
    char: str
    token: int


@dataclass(frozen=True)
class Pixel:
    stream: int
    frame: int
    row: int
    col: int
    index: int
    token: int


@dataclass(frozen=True)
class RowEnd:
    stream: int
    frame: int
    row: int
    width: int


@dataclass(frozen=True)
class FrameEnd:
    stream: int
    frame: int
    height: int
    width: int


@dataclass(frozen=True)
class AudioSample:
    stream: int
    index: int  # sample number within the audio segment
    channel: int  # 0: original sound, 1: Game Boy-filtered copy
    level: float
    token: int


@dataclass(frozen=True)
class ModalityEnd:
    stream: int
    modality: str


@dataclass(frozen=True)
class StreamEnd:
    stream: int
    tokens: int
    reason: str  # "plan", "max_tokens", "frames", "audio_length"


Event = Union[ModalityStart, TextChar, Pixel, RowEnd, FrameEnd, AudioSample, ModalityEnd, StreamEnd]
