"""Palette frames to a 4-shade Game Boy screen: shades, 2bpp tiles, layout and tile diffing.

    python -c "from firmware_bridge.display import Layout; print(Layout.fit(32, 32))"

The model's pixels are indices into the 55-colour NES palette. Each colour becomes one of 4
shades by luminance (Rec. 601; shade 0 is the lightest, as on the DMG), optionally with 4x4
ordered (Bayer) dithering computed in *screen* coordinates, so a pixel's shade does not change
when the rows around it arrive. The screen (160x144) has the sprite on top, scaled by the
largest integer factor that fits above a text area of ``text_rows`` tile rows. Tiles are the
Game Boy's 2bpp format (Pan Docs: 8 rows of two bytes, low bitplane first, bit 7 is the
leftmost pixel). ``TileDiff`` remembers what the device has, so a sprite drawn row by row only
sends the tiles its new row touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

from firmware_bridge import protocol as pr

# The classic DMG shades, lightest first (shade 0 is "white" on a Game Boy).
DMG_PALETTE = ((0x9B, 0xBC, 0x0F), (0x8B, 0xAC, 0x0F), (0x30, 0x62, 0x30), (0x0F, 0x38, 0x0F))

OUTLINE_SHADE = 2

BAYER4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], dtype=np.float64)


def luminance(palette_rgb) -> np.ndarray:
    """(n,) Rec. 601 luma in [0, 1] of (n, 3) 0..255 colours."""
    rgb = np.asarray(palette_rgb, dtype=np.float64).reshape(-1, 3) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114])


def shades_of(lum: np.ndarray, dither: bool = False, y0: int = 0, x0: int = 0) -> np.ndarray:
    """Luma image -> shades 0 (light) .. 3 (dark); with ``dither``, Bayer thresholds at screen (y0, x0)."""
    level = (1.0 - np.asarray(lum, dtype=np.float64)) * 3.0
    if not dither:
        return np.clip(np.floor(level + 0.5), 0, 3).astype(np.uint8)
    h, w = level.shape
    ys = (np.arange(h) + y0) % 4
    xs = (np.arange(w) + x0) % 4
    threshold = (BAYER4[ys][:, xs] + 0.5) / 16.0
    return np.clip(np.floor(level + threshold), 0, 3).astype(np.uint8)


def encode_tiles(screen: np.ndarray) -> np.ndarray:
    """(H, W) shades, H and W multiples of 8 -> (H/8 * W/8, 16) 2bpp tiles, row-major."""
    screen = np.asarray(screen, dtype=np.uint8)
    h, w = screen.shape
    t = screen.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    weights = (1 << np.arange(7, -1, -1)).astype(np.uint16)
    lo = ((t & 1) * weights).sum(axis=2).astype(np.uint8)
    hi = (((t >> 1) & 1) * weights).sum(axis=2).astype(np.uint8)
    return np.stack([lo, hi], axis=2).reshape(-1, 16)


@dataclass(frozen=True)
class Layout:
    """Where the sprite goes: ``scale`` screen pixels per sprite pixel, top-left at (x, y)."""

    width: int
    height: int
    scale: int
    x: int
    y: int
    text_y: int  # first screen row of the text area

    @classmethod
    def fit(cls, width: int, height: int, text_rows: int = 4, screen_w: int = pr.SCREEN_W,
            screen_h: int = pr.SCREEN_H) -> Layout:
        text_y = screen_h - 8 * text_rows
        # 1 pixel kept free on every side for the outline (white sprite pixels on the light
        # background would otherwise not show where the sprite is)
        scale = max(1, min((screen_w - 2) // max(1, width), (text_y - 2) // max(1, height)))
        x = max(0, (screen_w - width * scale) // 2)
        y = max(0, (text_y - height * scale) // 2)
        return cls(width, height, scale, x, y, text_y)


class TextArea:
    """Renders the newest text into the bottom of the screen with Pillow's built-in font."""

    def __init__(self, width: int, height: int):
        from PIL import Image, ImageDraw, ImageFont

        self.width, self.height = width, height
        self.font = ImageFont.load_default()
        self.line_h = 9
        # measure as drawn: a 1-bit image lays glyphs out without anti-aliasing, wider than getlength says
        self._measure = ImageDraw.Draw(Image.new("1", (1, 1)))

    def fits(self, line: str) -> bool:
        return self._measure.textlength(line, font=self.font) <= self.width - 2

    def fit_line(self, text: str) -> str:
        """``text``, cut with "..." where it would not fit on one line."""
        if self.fits(text):
            return text
        while text and not self.fits(text + "..."):
            text = text[:-1]
        return text + "..."

    def wrap(self, para: str) -> list[str]:
        """``para`` as the lines it takes, broken at spaces (a word that would cross the edge starts the next
        line, as it is typed); only a word wider than a whole line is broken inside, where it reaches the edge."""
        lines, line = [], ""
        for word in para.split(" "):
            candidate = f"{line} {word}" if line else word
            if self.fits(candidate):
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:  # the word alone: by characters only if it is wider than a line
                if line and not self.fits(line + ch):
                    lines.append(line)
                    line = ""
                line += ch
        lines.append(line)
        return lines

    def render(self, text: str) -> np.ndarray:
        from PIL import Image, ImageDraw

        lines = [line for para in text.split("\n") for line in self.wrap(para)]
        keep = max(1, self.height // self.line_h)
        img = Image.new("1", (self.width, self.height), 0)
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(lines[-keep:]):
            draw.text((1, i * self.line_h), line, fill=1, font=self.font)
        return np.asarray(img, dtype=np.uint8) * 3  # ink in the darkest shade


class ScreenModel:
    """What the screen should show: the sprite as drawn so far, and the text."""

    def __init__(self, palette_rgb: Sequence, *, dither: bool = False, text_rows: int = 4,
                 screen_w: int = pr.SCREEN_W, screen_h: int = pr.SCREEN_H, expected_height: Optional[int] = None):
        self.palette_rgb = np.asarray(palette_rgb, dtype=np.int64).reshape(-1, 3)  # for a colour screen
        self.lum = luminance(palette_rgb)
        self.dither = dither
        self.text_rows = text_rows
        self.screen_w, self.screen_h = screen_w, screen_h
        self.expected_height = expected_height
        self.rows: list[Optional[np.ndarray]] = []  # palette indices of each sprite row shown
        self.width: Optional[int] = None
        self.text = ""
        self._text_area = TextArea(screen_w, 8 * text_rows) if text_rows else None

    def set_row(self, row: int, indices) -> None:
        indices = np.asarray(indices, dtype=np.int64)
        if self.width is None or len(indices) > self.width:
            self.width = len(indices)
        while len(self.rows) <= row:
            self.rows.append(None)
        self.rows[row] = indices

    def fit_line(self, text: str) -> str:
        """``text`` as one line of the text area (cut with "..." if longer)."""
        return self._text_area.fit_line(text) if self._text_area is not None else text

    def layout(self) -> Optional[Layout]:
        if not self.width:
            return None
        # until the first frame ends its height is a guess: square, or what the plan says
        height = max(len(self.rows), self.expected_height or self.width)
        return Layout.fit(self.width, height, self.text_rows, self.screen_w, self.screen_h)

    def render(self) -> np.ndarray:
        """(screen_h, screen_w) shades."""
        screen = np.zeros((self.screen_h, self.screen_w), dtype=np.uint8)
        lay = self.layout()
        if lay is not None:
            sprite = np.full((len(self.rows), lay.width), -1, dtype=np.int64)
            for r, row in enumerate(self.rows):
                if row is not None:
                    sprite[r, : len(row)] = row
            lum = np.where(sprite >= 0, self.lum[np.clip(sprite, 0, len(self.lum) - 1)], 1.0)  # unknown: light
            big = np.repeat(np.repeat(lum, lay.scale, axis=0), lay.scale, axis=1)
            h = min(big.shape[0], lay.text_y - lay.y)
            w = min(big.shape[1], self.screen_w - lay.x)
            screen[lay.y : lay.y + h, lay.x : lay.x + w] = shades_of(big[:h, :w], self.dither, lay.y, lay.x)
            self._outline(screen, lay.x - 1, lay.y - 1, lay.x + lay.width * lay.scale, lay.y + lay.height * lay.scale,
                          lay.text_y)
        if self._text_area is not None:
            screen[self.screen_h - 8 * self.text_rows :] = self._text_area.render(self.text)
        return screen

    def _outline(self, screen: np.ndarray, x0: int, y0: int, x1: int, y1: int, bottom: int) -> None:
        """A mid-shade rectangle just outside the sprite, where it fits."""
        h, w = bottom, screen.shape[1]
        xs = slice(max(0, x0), min(w, x1 + 1))
        ys = slice(max(0, y0), min(h, y1 + 1))
        for y in (y0, y1):
            if 0 <= y < h:
                screen[y, xs] = OUTLINE_SHADE
        for x in (x0, x1):
            if 0 <= x < w:
                screen[ys, x] = OUTLINE_SHADE


class TileDiff:
    """The device's tiles as the host believes them; ``changes`` lists what to send."""

    def __init__(self, n_tiles: int):
        self.known = np.zeros((n_tiles, pr.TILE_BYTES), dtype=np.uint8)  # after RESET: all zero

    def reset(self) -> None:
        self.known[:] = 0

    def changes(self, tiles: np.ndarray, max_tiles: int) -> list[tuple[int, bytes]]:
        """Runs of changed slots as (first_slot, tile bytes), at most ``max_tiles`` per run; marks them known."""
        changed = np.flatnonzero((tiles != self.known).any(axis=1))
        out: list[tuple[int, bytes]] = []
        i = 0
        while i < len(changed):
            j = i
            while j + 1 < len(changed) and changed[j + 1] == changed[j] + 1 and j + 1 - i < max_tiles:
                j += 1
            first, last = int(changed[i]), int(changed[j])
            out.append((first, tiles[first : last + 1].tobytes()))
            i = j + 1
        self.known[:] = tiles
        return out
