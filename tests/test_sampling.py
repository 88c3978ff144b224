"""Sampling controls and plan-constrained decoding."""

from __future__ import annotations

import numpy as np
import pytest

from pxby_edge.context import ContextBuilder, additive_mask
from pxby_edge.errors import GenerationError
from pxby_edge.plan import PlanTracker, StreamPlan
from pxby_edge.sampling import Sampler
from pxby_edge.tokenizer import ActionPixelBytesTokenizer
from pxby_edge.vocab import Vocab

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it


def test_greedy_is_argmax_within_mask():
    logits = np.array([0.0, 5.0, 1.0, 3.0])
    s = Sampler(temperature=0)
    assert s.sample(logits) == 1
    assert s.sample(logits, allowed=np.array([True, False, True, True])) == 3


def test_seed_reproduces_and_differs():
    logits = np.random.default_rng(0).normal(size=151)
    a = [Sampler(seed=7).sample(logits) for _ in range(1)] + [0]
    draws = lambda seed: [s.sample(logits) for s in [Sampler(seed=seed)] for _ in range(50)]  # noqa: E731
    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert a[0] == draws(7)[0]


def test_top_k_and_top_p_restrict_the_support():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    s = Sampler(top_k=2, seed=0)
    assert {s.sample(logits) for _ in range(300)} == {0, 1}
    s = Sampler(top_p=0.5, seed=0)
    assert {s.sample(logits) for _ in range(300)} == {0}
    s = Sampler(top_p=0.7, seed=0)
    assert {s.sample(logits) for _ in range(300)} == {0, 1}


def test_sampling_frequencies_follow_softmax():
    p = np.array([0.6, 0.3, 0.1])
    s = Sampler(seed=3)
    counts = np.bincount([s.sample(np.log(p)) for _ in range(6000)], minlength=3) / 6000
    np.testing.assert_allclose(counts, p, atol=0.03)


def test_per_modality_temperature():
    s = Sampler(temperature={"text": 0, "image": 1.0}, seed=0)
    logits = np.array([1.0, 1.2, 1.1])
    assert {s.sample(logits, modality="text") for _ in range(50)} == {1}
    assert len({s.sample(logits, modality="image") for _ in range(200)}) == 3


@pytest.mark.parametrize(
    "kwargs,match",
    [({"temperature": -1}, "temperature"), ({"top_k": -2}, "top-k"), ({"top_p": 0}, "top-p"), ({"temperature": {"video": 1}}, "unknown modality")],
)
def test_bad_sampling_options(kwargs, match):
    with pytest.raises(GenerationError, match=match):
        Sampler(**kwargs)


def test_empty_mask_is_an_error():
    with pytest.raises(GenerationError, match="no token is allowed"):
        Sampler().sample(np.zeros(3), allowed=np.zeros(3, dtype=bool))


def test_bad_plan():
    with pytest.raises(GenerationError, match="unknown modality 'video'"):
        StreamPlan.parse("text,video")
    with pytest.raises(GenerationError, match="no modality"):
        StreamPlan.parse("")
    with pytest.raises(GenerationError, match="frames"):
        StreamPlan(frames=0)


@pytest.mark.parametrize("seed", range(5))
def test_random_logits_under_a_plan_give_a_well_formed_stream(seed):
    """Whatever the model says, the constrained stream decodes to the planned geometry."""
    v = Vocab()
    tok = ActionPixelBytesTokenizer()
    b = ContextBuilder(tok)
    plan = StreamPlan(("text", "image", "audio"), text_chars=12, frames=3, width=5, height=4, audio_samples=20)
    tracker = PlanTracker(plan, b)
    rng = np.random.default_rng(seed)
    sampler = Sampler(seed=seed)
    ids, contexts = [], []
    while not tracker.done:
        contexts.append(b.context())
        mod = tracker.current
        token = sampler.sample(rng.normal(size=v.size) * 3, allowed=tracker.mask(), modality=mod)
        b.push(token, tracker.decide(token, predicted=bool(rng.integers(2))))
        ids.append(token)
        assert len(ids) < 5000
    assert b.segments == ["text", "image", "audio"]
    dec = tok.decode(np.array(ids))
    assert len(dec["frame_ids"]) == 3
    assert all(f.shape == (4, 5) for f in dec["frame_ids"])
    assert dec["audio"].shape == (2, 20)
    # Re-tokenizing what was generated gives back the very contexts the builder produced.
    text_ids = ids[: ids.index(2) + 1]
    assert len(text_ids) <= 13
    # The plan itself agrees: nothing more to generate.
    with pytest.raises(GenerationError, match="complete"):
        tracker.mask()


def test_prompt_prefix_counts_as_the_text_segment():
    tok = ActionPixelBytesTokenizer()
    b = ContextBuilder(tok)
    for t in tok.process_text("a blue")[0, 0, :-1]:
        b.push(int(t))
    tracker = PlanTracker(StreamPlan(("text", "image")), b)
    assert tracker.current == "text"
    b.push(2, tracker.decide(2))
    assert tracker.current == "image"


def test_vectorised_lanes_draw_what_each_lane_would():
    from pxby_edge.sampling import sample_lanes

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 151)).astype(np.float32) * 3
    masks = rng.random((4, 151)) > 0.3
    mods = ["text", "image", None, "audio"]
    temps = {"text": 0.0, "image": 0.7, "audio": 1.3}
    for _ in range(20):
        a = [Sampler(temperature=temps, seed=k) for k in range(4)]
        b = [Sampler(temperature=temps, seed=k) for k in range(4)]
        for _ in range(10):
            got = sample_lanes(a, logits, masks, mods)
            want = [s.sample(logits[k], masks[k], mods[k]) for k, s in enumerate(b)]
            assert got == want
        logits = rng.normal(size=(4, 151)).astype(np.float32) * 3


def test_cached_bias_path_follows_the_tempered_softmax_within_the_mask():
    """The generator's fast path (one temperature, a cached 0/-inf bias) samples softmax(logits / T) on the mask."""
    logits = np.log(np.array([0.5, 0.2, 0.2, 0.1], dtype=np.float32))
    mask = np.array([True, True, False, True])
    s = Sampler(temperature=0.5, seed=11)
    counts = np.bincount([s.sample(logits, mask, "image", additive_mask(mask)) for _ in range(8000)], minlength=4) / 8000
    want = np.where(mask, np.exp(logits / 0.5), 0.0)
    np.testing.assert_allclose(counts, want / want.sum(), atol=0.02)


def test_cached_bias_path_draws_what_the_vectorised_lanes_draw():
    from pxby_edge.sampling import sample_lanes

    rng = np.random.default_rng(5)
    a = [Sampler(temperature=0.8, seed=k) for k in range(3)]
    b = [Sampler(temperature=0.8, seed=k) for k in range(3)]
    for _ in range(150):  # past a noise block's 64 rows
        logits = rng.normal(size=(3, 151)).astype(np.float32) * 3
        masks = rng.random((3, 151)) > 0.5
        biases = [additive_mask(m) for m in masks]
        got = sample_lanes(a, logits, masks, ["text"] * 3, biases)
        want = [s.sample(logits[k], masks[k], "text", biases[k]) for k, s in enumerate(b)]
        assert got == want and all(masks[k, t] for k, t in enumerate(got))
