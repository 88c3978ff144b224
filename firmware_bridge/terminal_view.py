"""The handheld's screen as terminal text: half blocks in 24-bit colour, scaled to fit the terminal.

    pxby-edge handheld --tty        # in any terminal; resize it and the picture follows

Two screen pixel rows make one line (the upper half block ``▀`` in the top pixel's colour on the
bottom pixel's), so a pixel is one column wide and half a line tall: square on a usual terminal.
The 160×144 screen at scale 1 is 160 columns × 72 lines; ``fit_scale`` picks the largest scale of
``SCALES`` (whole and half steps up, then 3/4 down to 1/4) whose picture fits the terminal, so an
80×24 terminal shows it at 1/3 (53 × 24). Smaller than the smallest, the view is a one-line note.
``LiveView`` draws from its own thread, so a slow terminal never stalls the device's answers.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

import numpy as np

from firmware_bridge import protocol as pr
from firmware_bridge.display import DMG_PALETTE

# Largest first: 8, 7.5, ..., 1.5, 1 (whole and half steps), then the fractions a smaller terminal needs
# (3/4 fits 200×60, 1/3 fits 80×24 exactly).
SCALES = (*(k / 2 for k in range(16, 1, -1)), 3 / 4, 2 / 3, 1 / 2, 1 / 3, 1 / 4)
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
HOME, CLEAR = "\x1b[H", "\x1b[2J"


def picture_size(scale: float, screen_w: int = pr.SCREEN_W, screen_h: int = pr.SCREEN_H) -> tuple[int, int]:
    """(columns, lines) the screen takes at ``scale``; pixel rows come in pairs, one line each."""
    eps = 1e-9  # 144 * (2/3) is 95.999... in floats
    return max(1, int(screen_w * scale + eps)), max(1, int(screen_h * scale + eps) // 2)


def fit_scale(columns: int, lines: int) -> Optional[float]:
    """The largest of ``SCALES`` whose picture fits ``columns`` × ``lines``; None when not even 1/4 does."""
    for scale in SCALES:
        w, h = picture_size(scale)
        if w <= columns and h <= lines:
            return scale
    return None


def resample(screen: np.ndarray, scale: float) -> np.ndarray:
    """The shades at ``scale``: repeated pixels up, the mean shade of each block down (a 1-pixel stroke
    of the caption stays as a lighter line rather than vanishing between sampled pixels)."""
    if scale == 1:
        return screen
    w, h = picture_size(scale, screen.shape[1], screen.shape[0])
    if scale > 1:
        ys = (np.arange(2 * h) / scale).astype(np.intp)
        xs = (np.arange(w) / scale).astype(np.intp)
        return screen[ys][:, xs]
    from PIL import Image

    grey = Image.fromarray((screen.astype(np.uint8) * 85), "L").resize((w, 2 * h), Image.BOX)
    return np.clip(np.round(np.asarray(grey, dtype=np.float64) / 85), 0, 3).astype(np.uint8)


def halfblocks(screen: np.ndarray, palette=DMG_PALETTE) -> str:
    """The screen as ANSI 24-bit colour text, two pixel rows per line (upper half block)."""
    pal = [tuple(int(v) for v in c) for c in palette]
    # one escape sequence per (top, bottom) shade pair, looked up per cell: the view is redrawn up
    # to 20 times a second, and formatting 11,520 cells one by one took tens of ms of the GIL
    cell = [f"\x1b[38;2;{t[0]};{t[1]};{t[2]}m\x1b[48;2;{b[0]};{b[1]};{b[2]}m\u2580" for t in pal for b in pal]
    rows = screen.shape[0] // 2 * 2
    pairs = (screen[0:rows:2].astype(np.intp) * len(pal) + screen[1:rows:2]).tolist()
    return "\n".join("".join([cell[k] for k in row]) + "\x1b[0m" for row in pairs)


def too_small_note(columns: int, lines: int) -> str:
    """The one line shown instead of a picture no scale fits (cut to the terminal's width)."""
    w, h = picture_size(SCALES[-1])
    note = f"terminal {columns}x{lines} is too small for the handheld's screen (needs {w}x{h}); enlarge it"
    return note[: max(1, columns)]


def view_text(screen: np.ndarray, size: Optional[tuple[int, int]], palette=DMG_PALETTE) -> str:
    """What one draw writes, from the top-left corner: the screen at the scale ``size`` (columns, lines)
    allows, or the note; ``size`` None draws scale 1 (no terminal to measure)."""
    scale = 1.0 if size is None else fit_scale(*size)
    if scale is None:
        return HOME + too_small_note(*size)
    return HOME + halfblocks(resample(screen, scale), palette)


class LiveView:
    """The terminal view, drawn by its own thread from a one-frame mailbox.

    A terminal drains 24-bit colour half blocks at a few MB/s at best, and a write to it blocks
    while it is behind: drawn from the device loop, that stalled the answers for seconds (late ACKs,
    retransmissions, re-handshakes). Here the loop only drops the newest screen in the mailbox;
    screens that arrive while a draw is under way replace each other, and at most 20 are drawn a
    second. ``size`` measures the terminal (columns, lines) at every draw; ``resized()`` (from a
    SIGWINCH handler) clears and redraws the last screen at the new size. The screen is cleared at the
    first draw, not before, so what was printed above (the port line) stays until a picture comes.
    """

    def __init__(self, write: Callable[[str], None], palette=DMG_PALETTE, min_interval_s: float = 0.05,
                 size: Optional[Callable[[], tuple[int, int]]] = None):
        self.write, self.palette, self.min_interval_s, self.size = write, palette, min_interval_s, size
        self._latest: Optional[np.ndarray] = None
        self._shown: Optional[np.ndarray] = None  # the last screen drawn, drawn again after a resize
        self._clear = True
        self._wake = threading.Condition()
        self._closed = False
        self.drawn = 0
        self.thread = threading.Thread(target=self._run, name="pxby-handheld-view", daemon=True)
        self.thread.start()

    def show(self, screen: np.ndarray) -> None:
        with self._wake:
            self._latest = screen
            self._wake.notify()

    def resized(self) -> None:
        """The terminal changed size: clear it and draw the last screen again (safe from a signal handler:
        it only sets fields, the drawing thread does the rest)."""
        self._clear = True
        if self._latest is None and self._shown is not None:
            self._latest = self._shown
        with self._wake:
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._latest is not None or self._closed)
                screen, self._latest = self._latest, None
            if screen is None:
                return
            self._draw(screen)
            with self._wake:  # pace the redraws without holding a frame back: the newest one waits
                self._wake.wait_for(lambda: self._closed, self.min_interval_s)

    def _draw(self, screen: np.ndarray) -> None:
        clear, self._clear = self._clear, False
        text = view_text(screen, self.size() if self.size is not None else None, self.palette)
        self.write((CLEAR if clear else "") + text)
        self._shown = screen
        self.drawn += 1

    def close(self, timeout_s: float = 5.0) -> None:
        """Draw the last screen if one waits, then stop."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self.thread.join(timeout_s)
