"""Build each next 6-token context from the tokens generated so far, as the tokenizer would.

    python -c "from pxby_edge.context import ContextBuilder; b = ContextBuilder(); b.push(40); print(b.context(), b.position)"

The runtime never sees data, only what it generated. This builder keeps, per segment, what the
tokenizer's padded (frames, rows, columns) array would hold so far and answers the six
neighbours of the next position: (t-1,i-1,j), (t-1,i,j), (t-1,i+1,j), (t,i-1,j-1), (t,i-1,j) and
the previous token of the segment. Geometry is learned as separators arrive: an image row's
width from its first row end (id 1, or 2 for a one-row frame), the frame height from the first
frame end (id 2). Audio interleaves channels sample by sample; its channel count (2 in every
upstream dataset) is a constructor argument because its separator row only comes at the end.

One point is ambiguous: a 2 in a text, or at the end of an image frame, either ends the segment
or lets it go on (more text, another frame), and the next context differs. ``push`` takes that
decision as ``segment_ends`` (the generator reads it off the model: see ``pxby_edge.generate``).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from pxby_edge.errors import ContextError
from pxby_edge.vocab import PAD_ID, ROW_END_ID, SEG_END_ID, Vocab


class Position(NamedTuple):
    """Where the next token lands. ``modality`` is None at the start of a segment (any may begin)."""

    modality: Optional[str]
    frame: int  # image frame, or audio sample index
    row: int
    column: int
    channel: Optional[int]  # audio only


class Cursor(NamedTuple):
    """A read-only view of where the builder stands, remade after every push (``builder.cursor``).

    ``frame``/``row``/``column`` index the next position (audio: sample, 0, channel). ``width`` is an
    image row's length including its separator column and ``height`` a frame's rows, once learned.
    """

    modality: Optional[str]  # None at a segment start
    frame: int
    row: int
    column: int
    width: Optional[int]
    height: Optional[int]
    in_separator_row: bool  # inside audio's closing separator row


_START = Cursor(None, 0, 0, 0, None, None, False)


# The all-padding context: a segment's first position, and what a finished batch lane keeps stepping on.
ZERO_CONTEXT = (0, 0, 0, 0, 0, 0)


def additive_mask(mask: np.ndarray) -> np.ndarray:
    """float32: 0 where the bool ``mask`` allows, -inf elsewhere (added to logits, it masks them)."""
    return np.where(mask, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)


class ContextBuilder:
    """Streaming twin of the tokenizer's context construction (see module docstring).

    ``b.context()`` → int64 (6,) for the next position; ``b.push(token, segment_ends=None)``
    records the token generated there; ``b.position`` says where the next token lands.
    ``segment_ends`` matters only after a 2 in a text or at a frame end (see
    ``needs_decision``); left as None it ends the segment.
    """

    def __init__(self, tokenizer=None, *, vocab: Vocab | None = None, audio_channels: int = 2):
        if vocab is None:
            vocab = tokenizer.vocab_lists if tokenizer is not None else Vocab()
        if audio_channels not in (1, 2):
            raise ValueError("audio_channels must be 1 or 2 (the tokenizer's separator row has 2 ids)")
        self.vocab = vocab
        self.audio_channels = audio_channels
        self.masks = _MaskCache(vocab)
        self.reset()

    def reset(self) -> None:
        self.segments: list[str] = []  # modalities finished or in progress, in order
        self.tokens = 0
        self._start_segment()

    # -- queries ---------------------------------------------------------------------------------

    @property
    def modality(self) -> Optional[str]:
        return self._mod

    @property
    def width(self) -> Optional[int]:
        """Image row width including the separator column, once known."""
        return self._w

    @property
    def height(self) -> Optional[int]:
        """Image frame height, once known."""
        return self._h

    @property
    def in_separator_row(self) -> bool:
        """True inside audio's closing separator row."""
        return self._sep_row

    @property
    def position(self) -> Position:
        if self._mod == "audio":
            return Position("audio", self._t, 0, self._j, self._j)
        if self._mod is None:
            return Position(None, 0, 0, 0, None)
        return Position(self._mod, self._t, self._i, self._j, None)

    def context(self) -> np.ndarray:
        """int64 (6,): the next position's context."""
        return np.array(self.context_ids(), dtype=np.int64)

    def context_ids(self) -> tuple:
        """The next position's context as 6 Python ints (what the generator writes into the model's input)."""
        mod = self._mod
        if mod is None:
            return ZERO_CONTEXT
        if mod == "image":
            i, j = self._i, self._j
            a = b = c = d = e = 0
            prev = self._prev_frame
            if prev is not None:
                if i > 0:
                    a = prev[i - 1][j]
                b = prev[i][j]
                if i + 1 < len(prev):
                    c = prev[i + 1][j]
            if i > 0:
                above = self._frame[i - 1]
                if j > 0:
                    d = above[j - 1]
                e = above[j]
            return (a, b, c, d, e, self._last)
        if mod == "audio" and self._prev_row is not None:
            return (0, self._prev_row[self._j], 0, 0, 0, self._last)
        return (0, 0, 0, 0, 0, self._last)

    def needs_decision(self, token: int) -> bool:
        """True when pushing ``token`` next is one of the ambiguous points (see module docstring)."""
        if token != SEG_END_ID:
            return False
        if self._mod == "text":
            return True
        if self._mod == "image":
            if self._w is None:
                return self._j >= 1
            return self._j == self._w - 1 and (self._h is None or self._i == self._h - 1)
        return False

    def allowed(self) -> np.ndarray:
        """bool (V,): tokens that keep the stream well-formed at the next position (read-only).

        Padding (0) is never offered: it is what the tokenizer writes for an unknown byte, and
        generating it says nothing.
        """
        m = self.masks
        mod = self._mod
        if mod is None:
            return m.any_start
        if mod == "text":
            return m.text
        if mod == "image":
            if self._w is None:
                return m.pixel_or_sep if self._j >= 1 else m.pixel
            if self._j < self._w - 1:
                return m.pixel
            if self._h is None:
                return m.seps
            return m.seg_end if self._i == self._h - 1 else m.row_end
        # audio
        if self._j == 0:
            return m.action_or_row_end if self._t >= 1 else m.action
        return m.seg_end if self._sep_row else m.action

    # -- updates ---------------------------------------------------------------------------------

    def push(self, token: int, segment_ends: Optional[bool] = None) -> None:
        """Record the token generated at ``position``; raises ContextError if it breaks the form."""
        token = int(token)
        v = self.vocab
        if not 0 <= token < v.size:
            raise ContextError(f"token id {token} is outside the vocabulary (0..{v.size - 1})")
        if self._mod is None:
            if v.is_palette(token):
                self._mod = "image"
            elif v.is_action(token):
                self._mod = "audio"
            else:
                self._mod = "text"
            self.segments.append(self._mod)
        self.tokens += 1
        if self._mod == "text":
            self._push_text(token, segment_ends)
        elif self._mod == "image":
            self._push_image(token, segment_ends)
        else:
            self._push_audio(token)
        self.cursor = _START if self._mod is None else tuple.__new__(
            Cursor, (self._mod, self._t, self._i, self._j, self._w, self._h, self._sep_row))

    def _start_segment(self) -> None:
        self._mod: Optional[str] = None
        self._last = PAD_ID
        self._t = self._i = self._j = 0
        self._w: Optional[int] = None
        self._h: Optional[int] = None
        self._frame: list[list[int]] = []
        self._row: list[int] = []
        self._prev_frame: Optional[list[list[int]]] = None
        self._prev_row: Optional[list[int]] = None
        self._sep_row = False
        self.cursor: Cursor = _START

    def _push_text(self, token: int, segment_ends: Optional[bool]) -> None:
        if not self.vocab.is_byte(token):
            raise ContextError(f"token {token} is not a byte, but the position is inside a text")
        self._last = token
        self._j += 1
        if token == SEG_END_ID and segment_ends is not False:
            self._start_segment()

    def _check_image_token(self, token: int, is_sep: bool) -> None:
        """ContextError unless ``token`` fits the image's next position (colour, row end, frame end)."""
        w, j = self._w, self._j
        if not is_sep and not self.vocab.is_palette(token):
            raise ContextError(f"token {token} is neither a colour nor a separator, inside an image")
        if w is None:
            if is_sep and j == 0:
                raise ContextError("an image row needs at least one pixel before its separator")
        elif j < w - 1:
            if is_sep:
                raise ContextError(f"separator at column {j}, but image rows are {w - 1} pixels wide")
        elif not is_sep:
            raise ContextError(f"column {j} must hold a row separator (rows are {w - 1} pixels wide)")
        elif self._h is not None:
            want = SEG_END_ID if self._i == self._h - 1 else ROW_END_ID
            if token != want:
                raise ContextError(f"frames are {self._h} rows high: row {self._i} must end with {want}")

    def _push_image(self, token: int, segment_ends: Optional[bool]) -> None:
        w, j = self._w, self._j
        is_sep = token in (ROW_END_ID, SEG_END_ID)
        self._check_image_token(token, is_sep)
        self._row.append(token)
        self._last = token
        if not is_sep:
            self._j += 1
            return
        if w is None:
            self._w = j + 1
        self._frame.append(self._row)
        self._row = []
        self._j = 0
        if token == ROW_END_ID:
            self._i += 1
            return
        if self._h is None:
            self._h = self._i + 1
        if segment_ends is not False:
            self._start_segment()
            return
        self._prev_frame = self._frame
        self._frame = []
        self._t += 1
        self._i = 0

    def _push_audio(self, token: int) -> None:
        v = self.vocab
        j, c = self._j, self.audio_channels
        if self._sep_row:
            want = (ROW_END_ID, SEG_END_ID)[j]
            if token != want:
                raise ContextError(f"the audio separator row continues with {want}, got {token}")
        elif v.is_action(token):
            pass
        elif token == ROW_END_ID and j == 0 and self._t >= 1:
            self._sep_row = True
        else:
            raise ContextError(f"token {token} is not an audio level at sample {self._t}, channel {j}")
        self._row.append(token)
        self._last = token
        self._j += 1
        if self._j < c:
            return
        if self._sep_row:
            self._start_segment()
            return
        self._prev_row = self._row
        self._row = []
        self._j = 0
        self._t += 1


class _MaskCache:
    """Read-only boolean masks over the vocabulary, built once per builder, and their additive forms.

    The sampler adds ``bias(mask)`` (0 where allowed, -inf elsewhere) to the logits: one numpy call
    per token instead of a masked copy. Biases are cached by the identity of these read-only masks
    (and of the few variants ``with_pad`` makes), so the cache stays as small as the mask set.
    """

    def __init__(self, v: Vocab):
        n = v.size

        def mask(*ranges):
            out = np.zeros(n, dtype=bool)
            for lo, hi in ranges:
                out[lo:hi] = True
            out.setflags(write=False)
            return out

        pal = (v.palette_offset, v.action_offset)
        act = (v.action_offset, n)
        row_end = (ROW_END_ID, ROW_END_ID + 1)
        seg_end = (SEG_END_ID, SEG_END_ID + 1)
        self.text = mask((1, v.n_bytes))
        self.any_start = mask((1, n))
        self.pixel = mask(pal)
        self.pixel_or_sep = mask(pal, row_end, seg_end)
        self.seps = mask(row_end, seg_end)
        self.row_end = mask(row_end)
        self.seg_end = mask(seg_end)
        self.action = mask(act)
        self.action_or_row_end = mask(act, row_end)
        self._bias: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._pad: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def bias(self, mask: np.ndarray) -> np.ndarray:
        """float32 (V,): 0 where ``mask`` allows, -inf elsewhere (cached for this cache's masks)."""
        hit = self._bias.get(id(mask))
        if hit is not None and hit[0] is mask:
            return hit[1]
        bias = additive_mask(mask)
        if not mask.flags.writeable:  # ours: immutable, so safe to key by identity
            bias.setflags(write=False)
            self._bias[id(mask)] = (mask, bias)
        return bias

    def with_pad(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` with padding (0) allowed too: a predicted segment end (see ``pxby_edge.generate``)."""
        hit = self._pad.get(id(mask))
        if hit is not None and hit[0] is mask:
            return hit[1]
        out = mask.copy()
        out[PAD_ID] = True
        if not mask.flags.writeable:
            out.setflags(write=False)
            self._pad[id(mask)] = (mask, out)
        return out
