"""`handheld --tty`'s picture fits the terminal, follows a resize, and says so when nothing fits (issue 22 item 5).

    .venv/bin/python -m pytest tests/test_terminal_view.py
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import protocol as pr
from firmware_bridge.terminal_view import (
    CLEAR,
    SCALES,
    LiveView,
    fit_scale,
    picture_size,
    resample,
    view_text,
)

pytestmark = pytest.mark.pi
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _visible(text: str) -> list[str]:
    return ANSI.sub("", text).split("\n")


@pytest.mark.parametrize(("size", "scale", "picture"), [
    ((80, 24), 1 / 3, (53, 24)),
    ((200, 60), 3 / 4, (120, 54)),
    ((160, 72), 1, (160, 72)),
    ((400, 200), 2.5, (400, 180)),
])
def test_the_largest_scale_that_fits_is_taken(size, scale, picture):
    assert fit_scale(*size) == scale
    assert picture_size(scale) == picture


@given(st.integers(1, 500), st.integers(1, 300))
def test_the_drawn_picture_never_exceeds_the_terminal(columns, lines):
    screen = np.random.default_rng(columns * 1000 + lines).integers(0, 4, (pr.SCREEN_H, pr.SCREEN_W), dtype=np.uint8)
    rows = _visible(view_text(screen, (columns, lines)))
    assert len(rows) <= lines and max(len(r) for r in rows) <= columns
    scale = fit_scale(columns, lines)
    if scale is None:
        note = f"terminal {columns}x{lines} is too small for the handheld's screen (needs 40x18); enlarge it"
        assert rows == [note[:columns]]
    else:
        assert (len(rows[0]), len(rows)) == picture_size(scale)
        bigger = [s for s in SCALES if s > scale]
        assert not bigger or not (picture_size(bigger[-1])[0] <= columns and picture_size(bigger[-1])[1] <= lines)


def test_resampling_keeps_shades_and_whole_blocks():
    screen = np.zeros((pr.SCREEN_H, pr.SCREEN_W), dtype=np.uint8)
    screen[:72, :80] = 3
    half = resample(screen, 1 / 2)
    assert half.shape == (72, 80) and half[:36, :40].min() == 3 and half[36:].max() == 0
    double = resample(screen, 2)
    assert double.shape == (288, 320) and (double[::2, ::2] == screen).all()


def test_a_resize_clears_and_redraws_the_last_screen_at_the_new_size():
    writes: list[str] = []
    drawn = threading.Condition()
    size = [(160, 72)]

    def write(text):
        with drawn:
            writes.append(text)
            drawn.notify_all()

    view = LiveView(write, size=lambda: size[0], min_interval_s=0)
    try:
        screen = np.ones((pr.SCREEN_H, pr.SCREEN_W), dtype=np.uint8)
        view.show(screen)
        with drawn:
            assert drawn.wait_for(lambda: len(writes) == 1, 10)
        assert writes[0].startswith(CLEAR)  # the first draw clears what was above (until then the port line shows)
        assert len(_visible(writes[0])) == 72
        size[0] = (80, 24)
        view.resized()
        with drawn:
            assert drawn.wait_for(lambda: len(writes) == 2, 10)
        assert writes[1].startswith(CLEAR) and len(_visible(writes[1])) == 24
        view.show(screen)
        with drawn:
            assert drawn.wait_for(lambda: len(writes) == 3, 10)
        assert not writes[2].startswith(CLEAR)  # same size: drawn over in place, no flicker
    finally:
        view.close()


def test_handheld_tty_keeps_the_port_line_hides_the_cursor_and_gives_it_back():
    import os
    import pty
    import subprocess
    import sys
    from pathlib import Path

    from conftest import read_pty

    from firmware_bridge.terminal_view import HIDE_CURSOR, SHOW_CURSOR

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pxby_edge.cli", "handheld", "--tty", "--seconds", "1"], cwd=root,
                            env=env, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = read_pty(master).decode()
    os.close(master)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("port: /dev/") and out.index(HIDE_CURSOR) > out.index("\n")  # the port line first
    assert CLEAR not in out  # nothing connected: nothing drawn, so nothing wiped the port line
    assert out.rindex(SHOW_CURSOR) > out.rindex(HIDE_CURSOR)  # the cursor given back on the way out
