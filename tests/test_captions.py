"""The caption under the sprite wraps at word boundaries (issue 22 item 13).

    .venv/bin/python -m pytest tests/test_captions.py

The simulator and the Game Boy draw the same screen: the host renders the caption into tiles
(``display.ScreenModel``) and sends them to both, so one renderer decides the wrapping for both.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import protocol as pr
from firmware_bridge.display import ScreenModel, TextArea

pytestmark = pytest.mark.pi
AREA = TextArea(pr.SCREEN_W, 32)


def test_the_demo_caption_breaks_between_words():
    lines = AREA.wrap("a small blue water creature with horns and a tail. it is blue.")
    assert lines == ["a small blue water creature", "with horns and a tail. it is blue."]


@given(st.lists(st.text("abcdefghijklmnopqrstuvwxyz.", min_size=1, max_size=40), min_size=1, max_size=12))
def test_every_line_fits_and_only_an_overlong_word_is_broken(words):
    para = " ".join(words)
    lines = AREA.wrap(para)
    assert all(AREA.fits(line) for line in lines)
    if all(AREA.fits(w) for w in words):
        assert " ".join(lines) == para  # broken only at spaces, none lost
        for line in lines:
            assert set(line.split(" ")) <= set(words)
    else:
        assert "".join(lines).replace(" ", "") == para.replace(" ", "")


def test_the_screen_shows_whole_words():
    """Rendered as streamed, the caption's lines are the wrapped ones (the last text_rows lines of them)."""
    model = ScreenModel(np.zeros((4, 3)), text_rows=4)
    text = "a small blue water creature with horns and a tail. it is blue."
    model.text = text
    area = model.render()[pr.SCREEN_H - 32:]
    assert (area == AREA.render(text)).all()
    cut = AREA.render("a small blue water creature wit\nh horns and a tail. it is blue.")
    assert (area != cut).any()  # not the old mid-word break
