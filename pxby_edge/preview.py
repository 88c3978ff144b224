"""A picture as terminal text: what `pxby-edge generate` shows of the sprite it made.

    python -c "import numpy as np; from pxby_edge.preview import preview; print(preview(np.full((4, 4, 3), 200), 'truecolor'))"

Two pixel rows make one line: the upper half block ``▀`` in the top pixel's colour on the bottom
pixel's, so a pixel is one column wide and half a line tall (square on a usual terminal). Colour comes
in the depth the terminal says it has: 24-bit where ``COLORTERM`` is ``truecolor``/``24bit``, else the
256-colour palette's 6×6×6 cube (every xterm since 1999). Under ``NO_COLOR`` there is no colour at all,
so each cell is a shade character (`` ░▒▓█``, lightest first) of its two pixels' mean luminance.
A sprite wider than the terminal is shown at the largest 1/n that fits.
"""

from __future__ import annotations

import os

import numpy as np

TRUECOLOR, COLOR256, PLAIN = "truecolor", "256", "plain"
SHADES = " ░▒▓█"  # dark to light ink on a terminal's usual dark background: more light, more block
RESET = "\x1b[0m"


def colour_depth(no_color: bool, environ=os.environ) -> str:
    """What this terminal takes: PLAIN under NO_COLOR, TRUECOLOR where COLORTERM says so, else COLOR256."""
    if no_color:
        return PLAIN
    return TRUECOLOR if environ.get("COLORTERM", "").lower() in ("truecolor", "24bit") else COLOR256


def cube_index(rgb: np.ndarray) -> np.ndarray:
    """The 256-colour palette's cube entry (16 + 36 r + 6 g + b, each 0..5) nearest to 0..255 colours (..., 3)."""
    levels = np.array([0, 95, 135, 175, 215, 255])  # xterm's cube steps
    steps = np.abs(np.asarray(rgb, dtype=np.int64)[..., None] - levels).argmin(axis=-1)
    return 16 + 36 * steps[..., 0] + 6 * steps[..., 1] + steps[..., 2]


def _fit(rgb: np.ndarray, columns: int) -> tuple[np.ndarray, bool]:
    """``rgb`` at the largest 1/n (every n-th pixel) no wider than ``columns``, padded to an even number of
    rows; True when the last row is that padding (the terminal's own background there)."""
    step = max(1, -(-rgb.shape[1] // max(1, columns)))
    small = rgb[::step, ::step]
    odd = bool(small.shape[0] % 2)
    if odd:
        small = np.concatenate([small, np.zeros_like(small[:1])], axis=0)
    return small, odd


def preview(rgb, depth: str, columns: int = 80) -> str:
    """(H, W, 3) 0..255 colours as lines of half blocks (or shades), at most ``columns`` wide."""
    img, odd = _fit(np.asarray(rgb, dtype=np.int64), columns)
    top, bottom = img[0::2], img[1::2]
    lines = []
    for y in range(top.shape[0]):
        last = odd and y == top.shape[0] - 1
        if depth == PLAIN:
            lum = (top[y] @ np.array([299, 587, 114]) + (0 if last else bottom[y] @ np.array([299, 587, 114]))) \
                / (255_000 * (1 if last else 2))
            lines.append("".join(SHADES[int(v)] for v in np.clip(np.round(lum * (len(SHADES) - 1)), 0, len(SHADES) - 1)))
        elif depth == TRUECOLOR:
            lines.append("".join(_cell_24(t, b, last) for t, b in zip(top[y], bottom[y])) + RESET)
        else:
            fg, bg = cube_index(top[y]), cube_index(bottom[y])
            lines.append("".join(f"\x1b[38;5;{f}m" + ("\x1b[49m" if last else f"\x1b[48;5;{b}m") + "\u2580"
                                 for f, b in zip(fg, bg)) + RESET)
    return "\n".join(lines)


def _cell_24(top, bottom, last: bool) -> str:
    bg = "\x1b[49m" if last else f"\x1b[48;2;{bottom[0]};{bottom[1]};{bottom[2]}m"
    return f"\x1b[38;2;{top[0]};{top[1]};{top[2]}m{bg}\u2580"


def sprite_frame(gif_path) -> np.ndarray:
    """The first frame of a sprite GIF the generator wrote, at one pixel per sprite pixel, as (H, W, 3) colours."""
    from PIL import Image

    from pxby_edge.outputs import SPRITE_SCALE

    with Image.open(gif_path) as im:
        im.seek(0)
        rgb = np.asarray(im.convert("RGB"))
    return rgb[::SPRITE_SCALE, ::SPRITE_SCALE]
