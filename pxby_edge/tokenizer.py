"""Text, sprites and sound → one stream of 6-token contexts, exactly as upstream PixelBytes does it.

    python -c "from pxby_edge.tokenizer import ActionPixelBytesTokenizer as T; print(T()(text='hi')['input_ids'])"

Each modality becomes a (frames, rows, columns) array of ids with separator ids 1 (row end) and
2 (segment end); every position's context is its six already-seen neighbours; modalities are
concatenated text, image, audio. The result equals the upstream ActionPixelBytesTokenizer element
for element (tests/test_tokenizer.py checks every upstream fixture).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from pxby_edge.colour import quantize_rgb
from pxby_edge.errors import TokenizerError
from pxby_edge.vocab import (
    DEFAULT_ACTION_STATE,
    DEFAULT_BYTES,
    DEFAULT_PALETTE,
    ROW_END_ID,
    SEG_END_ID,
    Vocab,
)

MODALITIES = ("text", "image", "audio")
DEFAULT_SLICING = {"image": 1, "audio": 1}


def neighbour_contexts(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(contexts (N, 6), labels (N, 1)) of one modality array (T, H, W), reading order t, i, j."""
    padded = np.pad(array, ((1, 0), (1, 1), (1, 1)))
    slices = [
        padded[:-1, :-2, 1:-1],  # (t-1, i-1, j)
        padded[:-1, 1:-1, 1:-1],  # (t-1, i, j)
        padded[:-1, 2:, 1:-1],  # (t-1, i+1, j)
        padded[1:, :-2, :-2],  # (t, i-1, j-1)
        padded[1:, :-2, 1:-1],  # (t, i-1, j)
        padded[1:, 1:-1, :-2],  # (t, i, j-1), overwritten below
    ]
    context = np.stack(slices, axis=-1).reshape(-1, 6).astype(np.int64)
    labels = array.reshape(-1, 1).astype(np.int64)
    # Slot 5 is the previous target in reading order (the autoregressive slot), not the left pixel.
    context[1:, 5] = labels[:-1, 0]
    return context, labels


def concat_segments(arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Tokenizer output of modality arrays laid one after another (each with its own padding)."""
    if not arrays:
        raise TokenizerError("nothing to tokenize: give at least one of text, image or audio")
    contexts, labels = zip(*(neighbour_contexts(a) for a in arrays))
    return {"input_ids": np.concatenate(contexts), "labels": np.concatenate(labels)}


class ActionPixelBytesTokenizer:
    """Upstream-compatible tokenizer: ``tok(text=..., image=..., audio=...)`` → input_ids, labels.

    ``BYTES``, ``PALETTE`` and ``ACTION_STATE`` take custom lists (see ``pxby_edge.vocab``'s
    ``generate_*`` helpers); ``data_slicing`` keeps every s-th frame/row/column of images and
    every s-th sample of audio, as upstream.
    """

    def __init__(
        self,
        BYTES: Sequence[bytes] = DEFAULT_BYTES,  # noqa: N803 (upstream's argument names)
        PALETTE: Sequence[tuple[int, int, int]] = DEFAULT_PALETTE,  # noqa: N803
        ACTION_STATE: Sequence[float] = DEFAULT_ACTION_STATE,  # noqa: N803
        data_slicing: dict[str, int] | None = None,
    ):
        self.vocab_lists = Vocab(tuple(BYTES), tuple(PALETTE), tuple(ACTION_STATE))
        slicing = dict(DEFAULT_SLICING if data_slicing is None else data_slicing)
        unknown = set(slicing) - set(DEFAULT_SLICING)
        if unknown:
            raise ValueError(f"unknown data_slicing keys {sorted(unknown)}; use 'image' and 'audio'")
        for key in DEFAULT_SLICING:
            slicing.setdefault(key, 1)
            if int(slicing[key]) < 1:
                raise ValueError(f"data_slicing[{key!r}] must be >= 1, got {slicing[key]}")
            slicing[key] = int(slicing[key])
        self.slicing = slicing
        self.bytes_size = self.vocab_lists.n_bytes
        self.palet_size = self.vocab_lists.n_palette
        self._palette_rgb = self.vocab_lists.palette_array()
        self._actions32 = np.asarray(self.vocab_lists.action_states, dtype=np.float32)

    @property
    def vocab_size(self) -> int:
        return self.vocab_lists.size

    # -- encoding ------------------------------------------------------------------------------

    def __call__(self, text=None, image=None, audio=None, **_ignored: Any) -> dict[str, np.ndarray]:
        arrays = []
        if text is not None:
            arrays.append(self.process_text(text))
        if image is not None:
            arrays.append(self.process_image(image))
        if audio is not None:
            arrays.append(self.process_audio(audio))
        return concat_segments(arrays)

    def process_text(self, text: str) -> np.ndarray:
        """(1, 1, n+1): lowercased, NFKD, ASCII bytes → ids, then the segment end 2."""
        if not isinstance(text, str):
            raise TokenizerError(f"text must be a str, got {type(text).__name__}")
        raw = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore")
        ids = [self.vocab_lists.byte_id(b) for b in raw] + [SEG_END_ID]
        return np.asarray(ids, dtype=np.int64)[None, None, :]

    def image_ids(self, image) -> np.ndarray:
        """(frames, H, W) palette ids (with the id offset) of a PIL image, every frame, unsliced."""
        try:
            n_frames = int(getattr(image, "n_frames", 1))
            width, height = image.size
            frames = np.empty((n_frames, height, width), dtype=np.int64)
            for t in range(n_frames):
                if n_frames > 1 or hasattr(image, "seek"):
                    image.seek(t)
                rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
                frames[t] = quantize_rgb(rgb, self._palette_rgb)
        except (OSError, ValueError, AttributeError, EOFError) as exc:
            raise TokenizerError(f"cannot read the image: {exc}") from exc
        if width == 0 or height == 0:
            raise TokenizerError("the image is empty (0 pixels wide or high)")
        return frames + self.bytes_size

    def process_image(self, image) -> np.ndarray:
        """(frames, H, W+1): sliced palette ids with the separator column (1s, last row 2)."""
        return self.image_array(self.image_ids(image))

    def image_array(self, frame_ids: np.ndarray) -> np.ndarray:
        """(frames, H, W) palette token ids → the sliced modality array with its separator column."""
        s = self.slicing["image"]
        frames = np.asarray(frame_ids, dtype=np.int64)[::s, ::s, ::s]
        column = np.full((frames.shape[0], frames.shape[1], 1), ROW_END_ID, dtype=np.int64)
        column[:, -1, :] = SEG_END_ID
        return np.concatenate((frames, column), axis=2)

    def audio_ids(self, audio) -> np.ndarray:
        """(channels, N) action-state ids of a float array or a dict with ``'array'``, unsliced."""
        array = audio["array"] if isinstance(audio, dict) else audio
        try:
            arr = np.array(array, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise TokenizerError(f"audio must be a float array (channels, samples): {exc}") from exc
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] == 0 or arr.shape[0] not in (1, 2):
            raise TokenizerError(f"audio must have shape (1 or 2, samples > 0), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise TokenizerError("audio holds NaN or infinite samples")
        lo, hi = arr.min(), arr.max()
        span = np.float32(hi - lo)
        if span == 0:
            raise TokenizerError("audio is silent (every sample equal): nothing to normalise")
        # float32 throughout, as upstream's torch code computes it.
        norm = (arr - lo) / span * np.float32(2) - np.float32(1)
        return nearest_level(norm, self._actions32) + self.bytes_size + self.palet_size

    def process_audio(self, audio) -> np.ndarray:
        """(samples+1, 1, channels): sliced ids, then the separator row [1, 2][:channels]."""
        return self.audio_array(self.audio_ids(audio))

    def audio_array(self, level_ids: np.ndarray) -> np.ndarray:
        """(channels, N) action token ids → the sliced modality array with its separator row."""
        ids = np.asarray(level_ids, dtype=np.int64)[:, :: self.slicing["audio"]]
        seps = np.array([[ROW_END_ID], [SEG_END_ID]], dtype=np.int64)[: ids.shape[0]]
        return np.concatenate([ids, seps], axis=1).T[:, None, :]

    # -- decoding ------------------------------------------------------------------------------

    def decode(self, ids) -> dict[str, Any]:
        """Labels (or upstream-style (N, 6) contexts) → text, frames and audio.

        Returns ``{'text': str, 'frames': [ (H, W, 3) uint8 ], 'frame_ids': [(H, W) palette
        index], 'audio': (channels, N) float action levels}``. Frames of one image share a shape;
        a ragged last row is cut off.
        """
        arr = np.asarray(ids)
        if arr.ndim == 2 and arr.shape[1] == 6:
            arr = arr[:, -1]  # upstream: slot 5 is the previous label
        arr = arr.reshape(-1).astype(np.int64)
        return _decode_stream(arr, self.vocab_lists)


def nearest_level(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest level for each value (first on ties), as int64 with values' shape."""
    flat = values.reshape(-1, 1)
    out = np.empty(flat.shape[0], dtype=np.int64)
    step = 65536
    for start in range(0, flat.shape[0], step):
        out[start : start + step] = np.abs(flat[start : start + step] - levels[None, :]).argmin(axis=1)
    return out.reshape(values.shape)


class _StreamDecoder:
    """Splits a token stream back into text bytes, sprite frames and audio levels, one token at a time.

    A separator (1 or 2) means what the token before it was: a pixel's ends a row (2: also the frame),
    an audio level's is the audio separator row, whose shape tells mono from stereo."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.text: list[bytes] = []
        self.frames: list[np.ndarray] = []
        self.row: list[int] = []
        self.frame: list[list[int]] = []
        self.audio: list[int] = []
        self.audio_channels = 2
        self.prev_kind = None  # "byte", "pixel", "action", "audio-sep"

    def feed(self, tok: int) -> None:
        vocab = self.vocab
        if vocab.is_palette(tok):
            self.row.append(tok - vocab.palette_offset)
            self.prev_kind = "pixel"
        elif vocab.is_action(tok):
            self.audio.append(tok - vocab.action_offset)
            self.prev_kind = "action"
        elif tok in (ROW_END_ID, SEG_END_ID) and self.prev_kind == "pixel":
            self._end_row(tok)
        elif tok in (ROW_END_ID, SEG_END_ID) and self.prev_kind in ("action", "audio-sep"):
            self._audio_separator(tok)
        elif vocab.is_byte(tok) and tok != 0:
            self.text.append(vocab.bytes_[tok])
            self.prev_kind = "byte"
        elif vocab.is_byte(tok):
            self.prev_kind = "byte"

    def _end_row(self, tok: int) -> None:
        self.frame.append(self.row)
        self.row = []
        if tok == SEG_END_ID:
            self.close_frame()

    def _audio_separator(self, tok: int) -> None:
        if tok == ROW_END_ID and self.prev_kind == "action":
            # The separator row [1, 2] follows an even sample count in stereo, [1] in mono.
            self.audio_channels = 1
        elif tok == SEG_END_ID:
            self.audio_channels = 2
        self.prev_kind = "audio-sep"

    def close_frame(self) -> None:
        if self.frame:
            width = min(len(r) for r in self.frame)
            self.frames.append(np.asarray([r[:width] for r in self.frame], dtype=np.int64))
        self.frame = []

    def result(self) -> dict[str, Any]:
        if self.row:
            self.frame.append(self.row)
        self.close_frame()
        decoded_text = b"".join(self.text).decode("latin-1")
        if decoded_text.endswith("\n"):
            decoded_text = decoded_text[:-1]
        channels = self.audio_channels if self.audio else 2
        usable = len(self.audio) - len(self.audio) % channels
        levels = self.vocab.action_array()[np.asarray(self.audio[:usable], dtype=np.int64)].reshape(-1, channels).T
        palette = self.vocab.palette_array()
        return {
            "text": decoded_text,
            "frame_ids": self.frames,
            "frames": [palette[f] for f in self.frames],
            "audio": levels.astype(np.float32),
        }


def _decode_stream(ids: np.ndarray, vocab: Vocab) -> dict[str, Any]:
    decoder = _StreamDecoder(vocab)
    for tok in ids.tolist():
        decoder.feed(tok)
    return decoder.result()
