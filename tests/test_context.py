"""The streaming context builder reproduces the tokenizer's contexts from labels alone."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pxby_edge.context import ContextBuilder
from pxby_edge.errors import ContextError
from pxby_edge.tokenizer import ActionPixelBytesTokenizer, concat_segments
from pxby_edge.vocab import Vocab

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

TEXT_ALPHABET = "abcxyz 019.,!?\n\t#éÀ/;:-'\"()"


@st.composite
def segment(draw, tok: ActionPixelBytesTokenizer, audio_channels: int):
    kind = draw(st.sampled_from(["text", "image", "audio"]))
    v = tok.vocab_lists
    if kind == "text":
        return tok.process_text(draw(st.text(alphabet=TEXT_ALPHABET, max_size=30)))
    if kind == "image":
        t, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
        ids = draw(st.lists(st.integers(0, v.n_palette - 1), min_size=t * h * w, max_size=t * h * w))
        return tok.image_array(np.asarray(ids).reshape(t, h, w) + v.palette_offset)
    n = draw(st.integers(1, 12))
    ids = draw(st.lists(st.integers(0, v.n_actions - 1), min_size=n * audio_channels, max_size=n * audio_channels))
    return tok.audio_array(np.asarray(ids).reshape(audio_channels, n) + v.action_offset)


@st.composite
def item(draw):
    slicing = {"image": draw(st.integers(1, 3)), "audio": draw(st.integers(1, 3))}
    tok = ActionPixelBytesTokenizer(data_slicing=slicing)
    channels = draw(st.sampled_from([1, 2]))
    arrays = draw(st.lists(segment(tok, channels), min_size=1, max_size=4))
    return tok, channels, arrays


def segment_last_flags(arrays) -> np.ndarray:
    flags = []
    for a in arrays:
        f = np.zeros(a.size, dtype=bool)
        f[-1] = True
        flags.append(f)
    return np.concatenate(flags)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item())
def test_pushing_labels_reproduces_input_ids(case):
    tok, channels, arrays = case
    out = concat_segments(arrays)
    labels = out["labels"][:, 0]
    last = segment_last_flags(arrays)
    b = ContextBuilder(tok, audio_channels=channels)
    got = np.empty_like(out["input_ids"])
    for k, label in enumerate(labels):
        got[k] = b.context()
        assert b.allowed()[label] or label == 0, f"label {label} at {b.position} was not allowed"
        b.push(int(label), segment_ends=bool(last[k]))
    np.testing.assert_array_equal(got, out["input_ids"])
    assert b.modality is None
    assert len(b.segments) == len(arrays)


@settings(max_examples=100, deadline=None)
@given(item())
def test_position_tracks_image_geometry(case):
    tok, channels, arrays = case
    b = ContextBuilder(tok, audio_channels=channels)
    last = segment_last_flags(arrays)
    labels = concat_segments(arrays)["labels"][:, 0]
    k = 0
    for a in arrays:
        frames, rows, cols = a.shape
        for t in range(frames):
            for i in range(rows):
                for j in range(cols):
                    pos = b.position
                    if k and b.modality == "image":
                        assert (pos.frame, pos.row, pos.column) == (t, i, j)
                    if b.modality == "audio":
                        assert (pos.frame, pos.channel) == (t, j)
                    b.push(int(labels[k]), segment_ends=bool(last[k]))
                    k += 1


def test_first_context_of_every_segment_is_padding():
    b = ContextBuilder()
    assert b.context().tolist() == [0] * 6
    assert b.position.modality is None


def test_image_geometry_is_enforced():
    v = Vocab()
    b = ContextBuilder(vocab=v)
    px = v.palette_offset
    for tok in (px, px + 1, 1):  # a 2-pixel row, then its end
        b.push(tok)
    assert b.width == 3
    b.push(px)
    with pytest.raises(ContextError, match="column 1"):
        b.push(1)  # too early: rows are 2 pixels wide
    with pytest.raises(ContextError, match="neither a colour"):
        b.push(v.action_offset)


def test_mask_allows_only_separator_at_row_end():
    v = Vocab()
    b = ContextBuilder(vocab=v)
    for tok in (v.palette_offset, 1, v.palette_offset):
        b.push(tok)
    allowed = b.allowed()
    assert set(np.flatnonzero(allowed)) == {1, 2}  # height unknown yet: either separator
    b.push(2, segment_ends=False)  # a 2-row frame ends; another frame follows
    assert b.height == 2
    assert b.context().tolist() == [0, v.palette_offset, v.palette_offset, 0, 0, 2]


def test_text_decision_keeps_text_going():
    b = ContextBuilder()
    b.push(40)
    assert b.needs_decision(2)
    b.push(2, segment_ends=False)
    assert b.modality == "text"
    b.push(41)
    assert b.context().tolist() == [0, 0, 0, 0, 0, 41]


@settings(max_examples=100, deadline=None)
@given(item())
def test_cursor_is_the_builders_position_and_geometry(case):
    tok, channels, arrays = case
    b = ContextBuilder(tok, audio_channels=channels)
    last = segment_last_flags(arrays)
    for k, label in enumerate(concat_segments(arrays)["labels"][:, 0]):
        cur, pos = b.cursor, b.position
        assert cur.modality == pos.modality and cur.frame == pos.frame and cur.column == pos.column
        assert (cur.width, cur.height, cur.in_separator_row) == (b.width, b.height, b.in_separator_row)
        if cur.modality == "image":
            assert cur.row == pos.row
        b.push(int(label), segment_ends=bool(last[k]))
    assert b.cursor.modality is None
