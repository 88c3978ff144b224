"""The PixelBytes vocabulary: bytes, then palette colours, then action states.

    python -c "from pxby_edge.vocab import Vocab; v = Vocab(); print(v.size, v.palette_offset, v.action_offset)"

The default lists are the upstream ActionPixelBytesTokenizer's, so ids mean the same thing as in
published checkpoints (151 ids: 58 bytes, 55 NES colours, 38 action states).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

# Id 0 pads (and stands for any byte outside the vocabulary); 1 (``\t``) ends an image row;
# 2 (``\n``) ends a text, the last row of a frame, and audio.
PAD_ID = 0
ROW_END_ID = 1
SEG_END_ID = 2

DEFAULT_BYTES: tuple[bytes, ...] = tuple(
    bytes([c])
    for c in b"\x00\t\n \"'()*,-+.0123456789\xc2\xa0:[];/%!abcdefghijklmnopqrstuvwxyz"
)

DEFAULT_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (252, 252, 252), (248, 248, 248), (188, 188, 188), (124, 124, 124),
    (164, 228, 252), (60, 188, 252), (0, 120, 248), (0, 0, 252), (184, 184, 248),
    (104, 136, 252), (0, 88, 248), (0, 0, 188), (216, 184, 248), (152, 120, 248),
    (104, 68, 252), (68, 40, 188), (248, 184, 248), (248, 120, 248), (216, 0, 204),
    (148, 0, 132), (248, 164, 192), (248, 88, 152), (228, 0, 88), (168, 0, 32),
    (240, 208, 176), (248, 120, 88), (248, 56, 0), (168, 16, 0), (252, 224, 168),
    (252, 160, 68), (228, 92, 16), (136, 20, 0), (248, 216, 120), (248, 184, 0),
    (172, 124, 0), (80, 48, 0), (216, 248, 120), (184, 248, 24), (0, 184, 0),
    (0, 120, 0), (184, 248, 184), (88, 216, 84), (0, 168, 0), (0, 104, 0),
    (184, 248, 216), (88, 248, 152), (0, 168, 68), (0, 88, 0), (0, 252, 252),
    (0, 232, 216), (0, 136, 136), (0, 64, 88), (248, 216, 248), (120, 120, 120),
)


def generate_palette(num_colors: int = 55) -> list[tuple[int, int, int]]:
    """An HSV wheel of ``num_colors`` colours (upstream's ``generate_palette``)."""
    return [
        tuple(int(255 * x) for x in colorsys.hsv_to_rgb(i / num_colors, 0.8, 0.9))
        for i in range(num_colors)
    ]


def generate_action_space(num_steps: int = 38) -> list[float]:
    """``num_steps`` evenly spaced levels in [-1, 1] (upstream's ``generate_action_space``)."""
    return np.linspace(-1, 1, num_steps).tolist()


DEFAULT_ACTION_STATE: tuple[float, ...] = tuple(generate_action_space())


# A vocabulary larger than this is not one a PixelBytes model was trained with (upstream: 151 ids).
MAX_VOCAB = 4096


def _check_lists(bytes_, palette, action_states) -> None:
    """Every entry in range: one byte each, RGB triples of 0..255, finite levels in [-1, 1]."""
    if len(bytes_) + len(palette) + len(action_states) > MAX_VOCAB:
        raise ValueError(f"the vocabulary holds more than {MAX_VOCAB} tokens")
    bad = next((b for b in bytes_ if len(b) != 1), None)
    if bad is not None:
        raise ValueError(f"byte entry {bad!r} is not one byte")
    bad = next((p for p in palette if len(p) != 3 or not all(0 <= c <= 255 for c in p)), None)
    if bad is not None:
        raise ValueError(f"palette entry {list(bad)} is not an RGB triple of 0..255")
    bad = next((a for a in action_states if not -1.0 <= a <= 1.0), None)  # NaN fails too
    if bad is not None:
        raise ValueError(f"action state {bad} is not a level in [-1, 1]")


@dataclass(frozen=True)
class Vocab:
    """The three token lists and the id ranges they occupy, in that order."""

    bytes_: tuple[bytes, ...] = DEFAULT_BYTES
    palette: tuple[tuple[int, int, int], ...] = DEFAULT_PALETTE
    action_states: tuple[float, ...] = DEFAULT_ACTION_STATE
    _byte_to_id: dict = field(init=False, repr=False, compare=False)
    n_bytes: int = field(init=False, repr=False, compare=False)
    n_palette: int = field(init=False, repr=False, compare=False)
    n_actions: int = field(init=False, repr=False, compare=False)
    size: int = field(init=False, repr=False, compare=False)
    palette_offset: int = field(init=False, repr=False, compare=False)
    action_offset: int = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "bytes_", tuple(bytes(b) for b in self.bytes_))
        object.__setattr__(self, "palette", tuple(tuple(int(c) for c in p) for p in self.palette))
        object.__setattr__(self, "action_states", tuple(float(a) for a in self.action_states))
        if len(self.bytes_) < 3 or self.bytes_[:3] != (b"\x00", b"\t", b"\n"):
            raise ValueError("the byte list must start with b'\\x00', b'\\t', b'\\n' (ids 0, 1, 2)")
        if not self.palette or not self.action_states:
            raise ValueError("the palette and the action states must not be empty")
        _check_lists(self.bytes_, self.palette, self.action_states)
        lookup = {}
        for i, b in enumerate(self.bytes_):
            lookup.setdefault(b[0], i)  # first index wins, like upstream's dict built in order
        object.__setattr__(self, "_byte_to_id", lookup)
        # Plain attributes, not properties: the generator reads them on every token.
        sizes = {
            "n_bytes": len(self.bytes_),
            "n_palette": len(self.palette),
            "n_actions": len(self.action_states),
        }
        sizes["size"] = sizes["n_bytes"] + sizes["n_palette"] + sizes["n_actions"]
        sizes["palette_offset"] = sizes["n_bytes"]
        sizes["action_offset"] = sizes["n_bytes"] + sizes["n_palette"]
        for name, value in sizes.items():
            object.__setattr__(self, name, value)

    def byte_id(self, value: int) -> int:
        """Id of one byte value; 0 when the vocabulary does not hold it (upstream's unknown)."""
        return self._byte_to_id.get(value, PAD_ID)

    def is_byte(self, token_id: int) -> bool:
        return 0 <= token_id < self.n_bytes

    def is_palette(self, token_id: int) -> bool:
        return self.n_bytes <= token_id < self.action_offset

    def is_action(self, token_id: int) -> bool:
        return self.action_offset <= token_id < self.size

    def palette_array(self) -> np.ndarray:
        """(n_palette, 3) uint8 RGB."""
        return np.asarray(self.palette, dtype=np.uint8).reshape(-1, 3)

    def action_array(self) -> np.ndarray:
        """(n_actions,) float64 levels."""
        return np.asarray(self.action_states, dtype=np.float64)

    def to_dict(self) -> dict:
        """JSON-ready form (bytes as latin-1 strings, like the upstream fixture ``vocab.json``)."""
        return {
            "bytes": [b.decode("latin-1") for b in self.bytes_],
            "palette": [list(p) for p in self.palette],
            "action_states": list(self.action_states),
            "vocab_size": self.size,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        vocab = cls(
            bytes_=tuple(s.encode("latin-1") for s in data["bytes"]),
            palette=tuple(tuple(p) for p in data["palette"]),
            action_states=tuple(data["action_states"]),
        )
        if "vocab_size" in data and int(data["vocab_size"]) != vocab.size:
            raise ValueError(f"vocab_size {data['vocab_size']} does not match the lists ({vocab.size})")
        return vocab
