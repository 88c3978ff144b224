"""The plan: training-geometry bounds keep a stream inside them, record a cut only where the model
wanted more, and ``measure_geometry`` reads back exactly the geometry a stream was made with."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pxby_edge import manifest as mf
from pxby_edge.backends.null import NullBackend
from pxby_edge.context import ContextBuilder
from pxby_edge.errors import GenerationError
from pxby_edge.generate import GenerationRequest, Generator
from pxby_edge.plan import (
    BOUND_WIDTH,
    PlanTracker,
    StreamPlan,
    bounds_from_geometry,
    floors_from_geometry,
    measure_geometry,
)
from pxby_edge.sampling import Sampler
from pxby_edge.tokenizer import ActionPixelBytesTokenizer, concat_segments
from pxby_edge.vocab import Vocab

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it


def _stream(plan: StreamPlan, seed: int) -> tuple[list[int], PlanTracker]:
    """Random logits under ``plan`` until it is complete (the stream a model could make)."""
    v = Vocab()
    b = ContextBuilder(vocab=v)
    tracker = PlanTracker(plan, b)
    rng = np.random.default_rng(seed)
    sampler = Sampler(seed=seed)
    ids = []
    while not tracker.done:
        logits = rng.normal(size=v.size) * 3
        mask = tracker.mask()
        if tracker.pending is not None:
            tracker.settle(logits)
        token = sampler.sample(logits, allowed=mask, modality=tracker.current)
        b.push(token, tracker.decide(token, predicted=bool(rng.integers(2))))
        ids.append(token)
        assert len(ids) < 20000
    return ids, tracker


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), width=st.integers(1, 9), height=st.integers(1, 9), frames=st.integers(1, 4),
       audio=st.integers(1, 40), text=st.integers(1, 30))
def test_bounds_hold_whatever_the_model_says(seed, width, height, frames, audio, text):
    plan = StreamPlan(bounds=(("width", width), ("height", height), ("frames", frames), ("audio_samples", audio),
                              ("text_chars", text)))
    ids, _ = _stream(plan, seed)
    dec = ActionPixelBytesTokenizer().decode(np.array(ids))
    assert 1 <= len(dec["frame_ids"]) <= frames
    assert all(f.shape[0] <= height and f.shape[1] <= width for f in dec["frame_ids"])
    assert 1 <= dec["audio"].shape[1] <= audio
    assert len(ids[: ids.index(2)]) <= text


@pytest.mark.parametrize("seed", range(4))
def test_measured_geometry_is_the_geometry_made(seed):
    plan = StreamPlan(text_chars=7, frames=3, width=5, height=4, audio_samples=11)
    ids, _ = _stream(plan, seed)
    want = {mf.GEOMETRY_TEXT_TOKENS: [7, 7], mf.GEOMETRY_IMAGE_WIDTH: [5, 5], mf.GEOMETRY_IMAGE_HEIGHT: [4, 4],
            mf.GEOMETRY_IMAGE_FRAMES: [3, 3], mf.GEOMETRY_AUDIO_SAMPLES: [11, 11], mf.GEOMETRY_ITEMS: 1}
    assert measure_geometry([ids]) == want


def test_geometry_of_tokenized_items_as_contexts_or_labels():
    tok = ActionPixelBytesTokenizer(data_slicing={"image": 1, "audio": 1})
    rng = np.random.default_rng(0)
    items = []
    for frames, h, w, n in ((2, 6, 5, 30), (4, 3, 7, 9)):
        image = rng.integers(0, 55, size=(frames, h, w)) + tok.bytes_size
        arrays = [tok.process_text("a red fire creature."), tok.image_array(image),
                  tok.process_audio(rng.uniform(-1, 1, size=(2, n)))]
        items.append(concat_segments(arrays))
    want = {mf.GEOMETRY_TEXT_TOKENS: [20, 20], mf.GEOMETRY_IMAGE_WIDTH: [5, 7], mf.GEOMETRY_IMAGE_HEIGHT: [3, 6],
            mf.GEOMETRY_IMAGE_FRAMES: [2, 4], mf.GEOMETRY_AUDIO_SAMPLES: [9, 30], mf.GEOMETRY_ITEMS: 2}
    assert measure_geometry([it["input_ids"] for it in items]) == want
    assert measure_geometry([it["labels"].reshape(-1) for it in items]) == want


def _favouring(token: int):
    """Logits whose best token is always ``token`` in slot 5 (the only slot the generator reads)."""
    def logits(contexts, steps):
        out = np.zeros((contexts.shape[0], 6, Vocab().size), dtype=np.float32)
        out[:, 5, token] = 10.0
        return out
    return logits


def _generate(backend, **kw):
    gen = Generator(backend, GenerationRequest(prompt="a", modalities=("text", "image"), text_chars=3, temperature=0, **kw))
    list(gen.events())
    return gen


def test_a_bound_is_reported_only_where_the_model_wanted_more():
    geometry = {mf.GEOMETRY_IMAGE_WIDTH: (2, 4), mf.GEOMETRY_IMAGE_HEIGHT: (1, 3), mf.GEOMETRY_IMAGE_FRAMES: (1, 1)}
    # A model that always wants a colour: its rows are cut at the width; at the end of the third row it
    # has no preference among the separators, so the height bound took nothing from it.
    gen = _generate(NullBackend(logits_fn=_favouring(60), geometry=geometry))
    image = gen.segments()[1]
    assert image["modality"] == "image" and image["ended_by"] == "plan"
    assert image["bounds"] == [BOUND_WIDTH]
    assert any("largest width (4 pixels)" in w for w in gen.warnings())
    # A model that always wants another row: two-pixel rows (the floor), its frame cut at the height.
    gen = _generate(NullBackend(logits_fn=_favouring(1), geometry=geometry))
    assert gen.segments()[1]["bounds"] == ["height"]
    assert any("largest height (3 rows)" in w for w in gen.warnings())
    # The same bounds with request values given by the user: the plan is exact, nothing is "cut".
    gen = _generate(NullBackend(logits_fn=_favouring(60), geometry=geometry), width=4, height=3, frames=1)
    assert gen.segments()[1]["bounds"] == [] and gen.warnings() == []
    # A model that always wants another letter: the text cap cuts it.
    gen = _generate(NullBackend(logits_fn=_favouring(32), geometry=geometry), width=4, height=3, frames=1)
    assert gen.warnings() == ["text: the text was cut at --text-chars (3); the model would have gone on"]


def test_unbounded_request_ignores_the_geometry_and_the_budget_is_reported():
    geometry = {mf.GEOMETRY_IMAGE_WIDTH: (4, 4)}
    gen = _generate(NullBackend(logits_fn=_favouring(60), geometry=geometry), bounded=False, max_tokens=40)
    assert gen.segments()[1] == {"modality": "image", "ended_by": "max_tokens", "bounds": []}
    assert gen.stop_reason == "max_tokens"
    assert any("token budget" in w for w in gen.warnings())


def test_bounds_from_geometry_and_bad_bounds():
    assert bounds_from_geometry({mf.GEOMETRY_IMAGE_WIDTH: (20, 24), mf.GEOMETRY_ITEMS: 3}) == (("width", 24),)
    assert StreamPlan(width=5, bounds=(("width", 24),)).limit("width") == (5, False)
    assert StreamPlan(bounds=(("width", 24),)).limit("width") == (24, True)
    with pytest.raises(GenerationError, match="plan bound"):
        StreamPlan(bounds=(("depth", 3),))
    with pytest.raises(GenerationError, match="plan bound"):
        StreamPlan(bounds=(("width", 0),))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), width=st.integers(1, 9), height=st.integers(1, 9), frames=st.integers(1, 4),
       audio=st.integers(1, 40), data=st.data())
def test_floors_hold_whatever_the_model_says(seed, width, height, frames, audio, data):
    """Nothing ends short of the training data's smallest sprite, frame count or cry (issue 22 item 7)."""
    least = {name: data.draw(st.integers(1, top)) for name, top in
             (("width", width), ("height", height), ("frames", frames), ("audio_samples", audio))}
    plan = StreamPlan(bounds=(("width", width), ("height", height), ("frames", frames), ("audio_samples", audio)),
                      floors=tuple(least.items()))
    ids, _ = _stream(plan, seed)
    dec = ActionPixelBytesTokenizer().decode(np.array(ids))
    assert least["frames"] <= len(dec["frame_ids"]) <= frames
    assert all(least["height"] <= f.shape[0] <= height and least["width"] <= f.shape[1] <= width
               for f in dec["frame_ids"])
    assert least["audio_samples"] <= dec["audio"].shape[1] <= audio


def test_one_trained_size_is_the_plan_and_never_a_warning():
    geometry = {mf.GEOMETRY_IMAGE_WIDTH: (4, 4), mf.GEOMETRY_IMAGE_HEIGHT: (3, 3), mf.GEOMETRY_IMAGE_FRAMES: (2, 2)}
    assert dict(floors_from_geometry(geometry)) == {"width": 4, "height": 3, "frames": 2}
    for favourite in (60, 1, 2):  # a colour, another row, the end: whatever the model wants, 2 frames of 4x3
        gen = _generate(NullBackend(logits_fn=_favouring(favourite), geometry=geometry))
        dec = ActionPixelBytesTokenizer().decode(np.array(gen.lanes[0].tokens))
        assert [f.shape for f in dec["frame_ids"]] == [(3, 4), (3, 4)]
        assert gen.segments()[1]["bounds"] == [] and [w for w in gen.warnings() if w.startswith("image")] == []


def test_a_segment_short_of_the_training_data_is_warned_about():
    geometry = {mf.GEOMETRY_IMAGE_WIDTH: (3, 6), mf.GEOMETRY_IMAGE_HEIGHT: (2, 5), mf.GEOMETRY_IMAGE_FRAMES: (1, 1)}
    # held up by the floors: a model that ends every row at once still draws 3-pixel rows, 2 of them
    gen = _generate(NullBackend(logits_fn=_favouring(2), geometry=geometry))
    dec = ActionPixelBytesTokenizer().decode(np.array(gen.lanes[0].tokens))
    assert dec["frame_ids"][0].shape == (2, 3) and gen.warnings() == []
    # --unbounded: it ends them where it likes, and the summary says how far short that is
    gen = _generate(NullBackend(logits_fn=_favouring(2), geometry=geometry), bounded=False, frames=1)
    dec = ActionPixelBytesTokenizer().decode(np.array(gen.lanes[0].tokens))
    assert dec["frame_ids"][0].shape == (1, 1)
    assert gen.warnings() == [
        "image: its rows are 1 pixels wide, narrower than any sprite it was trained on (3)",
        "image: its frames are 1 rows high, shorter than any sprite it was trained on (2)",
    ]
    # what the user asked for is never "short"
    gen = _generate(NullBackend(logits_fn=_favouring(2), geometry=geometry), bounded=False, frames=1, width=1, height=1)
    assert gen.warnings() == []
