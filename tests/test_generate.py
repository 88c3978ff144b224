"""The generation loop over the null backend: events, plans, seeds, batch lanes, segment ends."""

from __future__ import annotations

import numpy as np
import pytest

from pxby_edge import events as ev
from pxby_edge.backends.null import NullBackend
from pxby_edge.errors import GenerationError
from pxby_edge.generate import GenerationRequest, Generator
from pxby_edge.tokenizer import ActionPixelBytesTokenizer

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it


def scripted(batch=1, slots=6, end_text_after=None, seed=0):
    """A NullBackend whose slot 5 says "0" (segment end) once a text is long enough, when asked:
    then segment ends come from the model, as they do from a trained one."""
    if end_text_after is None:
        return NullBackend(batch=batch, slots=slots, seed=seed)
    table = NullBackend(batch=batch, slots=slots, seed=seed)

    def logits(contexts, steps):
        key = (contexts.astype(np.int64) @ np.array([3, 5, 7, 11, 13, 17])) % table.table.shape[0]
        out = table.table[key].copy()
        is_text = contexts[:, 5] < 58
        out[is_text & (steps > end_text_after), 5, 0] = 50.0
        return out

    return NullBackend(batch=batch, slots=slots, seed=seed, logits_fn=logits)


def collect(gen):
    return list(gen.events())


def test_events_describe_the_token_stream():
    req = GenerationRequest(prompt="a blue", frames=2, width=6, height=5, audio_samples=30, seed=3, text_chars=20)
    gen = Generator(scripted(), req)
    events = collect(gen)
    lane = gen.lanes[0]
    dec = ActionPixelBytesTokenizer().decode(np.asarray(lane.tokens))
    text = "".join(e.char for e in events if isinstance(e, ev.TextChar))
    assert text == dec["text"] and text.startswith("a blue")
    pixels = [e for e in events if isinstance(e, ev.Pixel)]
    assert len(pixels) == 2 * 5 * 6
    grid = np.zeros((2, 5, 6), dtype=int)
    for p in pixels:
        grid[p.frame, p.row, p.col] = p.index
    np.testing.assert_array_equal(grid, np.stack(dec["frame_ids"]))
    assert [e.modality for e in events if isinstance(e, ev.ModalityStart)] == ["text", "image", "audio"]
    assert [e.modality for e in events if isinstance(e, ev.ModalityEnd)] == ["text", "image", "audio"]
    samples = [e for e in events if isinstance(e, ev.AudioSample)]
    assert len(samples) == 60 and dec["audio"].shape == (2, 30)
    assert [(s.index, s.channel) for s in samples[:3]] == [(0, 0), (0, 1), (1, 0)]
    frame_ends = [e for e in events if isinstance(e, ev.FrameEnd)]
    assert [(f.frame, f.height, f.width) for f in frame_ends] == [(0, 5, 6), (1, 5, 6)]
    assert isinstance(events[-1], ev.StreamEnd) and events[-1].reason == "plan"
    assert len(gen.step_ns) == lane.generated


def test_seed_reproduces_and_lanes_differ():
    def run(seed, batch=1):
        gen = Generator(scripted(batch=batch), GenerationRequest(prompt="a", max_tokens=300, seed=seed, batch=batch))
        collect(gen)
        return [lane.tokens for lane in gen.lanes]

    assert run(5) == run(5)
    assert run(5) != run(6)
    two = run(5, batch=2)
    assert two[0] == run(5)[0]
    assert two[0] != two[1]


def test_max_tokens_stops_every_lane():
    # A fixed 16x8 frame cannot fit in 50 tokens, so no lane can finish its plan first.
    req = GenerationRequest(prompt="ab", max_tokens=50, batch=3, frames=1, width=16, height=8)
    gen = Generator(scripted(batch=3), req)
    events = collect(gen)
    assert [lane.generated for lane in gen.lanes] == [50, 50, 50]
    ends = [e for e in events if isinstance(e, ev.StreamEnd)]
    assert sorted(e.stream for e in ends) == [0, 1, 2] and {e.reason for e in ends} == {"max_tokens"}


def test_pad_in_slot_five_ends_the_text():
    gen = Generator(scripted(end_text_after=8), GenerationRequest(prompt="abc", modalities=("text", "image"), max_tokens=40, text_chars=None))
    collect(gen)
    tokens = gen.lanes[0].tokens
    end = tokens.index(2)
    assert 3 <= end <= 9
    assert gen.lanes[0].builder.segments[:2] == ["text", "image"]


def test_predict_objective_uses_its_single_slot():
    gen = Generator(scripted(slots=1), GenerationRequest(prompt="ab", frames=1, width=3, height=2, audio_samples=4))
    collect(gen)
    assert gen.lanes[0].builder.segments == ["text", "image", "audio"]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"prompt": "€€€"}, "no character"),
        ({"modalities": ("audio",)}, "does not start with"),
        ({"modalities": ("text",), "complete_text": False}, "nothing is left"),
        ({"batch": 2}, "batch 1"),
        ({"max_tokens": 0}, "max tokens"),
        ({"modalities": ("text", "smell")}, "unknown modality"),
    ],
)
def test_bad_requests(kwargs, match):
    with pytest.raises(GenerationError, match=match):
        Generator(scripted(), GenerationRequest(**kwargs))


def test_null_backend_keeps_the_backend_contract():
    from pxby_edge.backends import Backend
    from pxby_edge.errors import BackendError

    be = NullBackend(batch=2, seed=4)
    assert isinstance(be, Backend) and be.manifest.batch == 2 and be.context_shape == (2, 6)
    ctx = np.array([[0, 0, 0, 0, 0, 40], [1, 2, 3, 4, 5, 60]], dtype=np.int32)
    first = be.step(ctx).copy()
    assert first.shape == (2, 6, 151) and first.dtype == np.float32
    np.testing.assert_array_equal(NullBackend(batch=2, seed=4).step(ctx), first)
    assert not np.array_equal(NullBackend(batch=2, seed=5).step(ctx), first)
    state = be.get_state()
    assert state.tolist() == [1, 1]
    be.reset([1])
    assert be.get_state().tolist() == [1, 0]
    be.set_state(state)
    assert be.get_state().tolist() == [1, 1]
    still = NullBackend(constant=True)
    assert still.step([[0] * 6]) is still.step([[9] * 6])
    with pytest.raises(BackendError, match="slots"):
        NullBackend(slots=3)
    with pytest.raises(BackendError, match="shape"):
        be.step(np.zeros((3, 6), dtype=np.int32))


def test_bundled_model_default_generation_ends_by_its_plan(tmp_path):
    """Seed 1 ran to the 20,000-token cap (an 80×2964 sprite strip, no audio) before the geometry bounds."""
    from pxby_edge.generate import default_model_path, run_generation
    from pxby_edge.manifest import GEOMETRY_IMAGE_HEIGHT, GEOMETRY_IMAGE_WIDTH, read_manifest

    manifest = read_manifest(default_model_path())
    assert manifest.bound(GEOMETRY_IMAGE_WIDTH) == 24 and manifest.bound(GEOMETRY_IMAGE_HEIGHT) == 24
    from pxby_edge.outputs import write_generation

    run = run_generation(GenerationRequest(seed=1), backend="numpy")
    s = run.complete()
    write_generation(run.generator, tmp_path)
    assert s["stop_reason"] == "plan" and (tmp_path / "audio.wav").is_file()
    assert [seg["modality"] for seg in s["segments"][0]] == ["text", "image", "audio"]
    assert all(seg["ended_by"] == "plan" for seg in s["segments"][0])
    frames = ActionPixelBytesTokenizer().decode(np.load(tmp_path / "tokens.npz")["tokens"])["frame_ids"]
    assert frames and all(f.shape[0] <= 24 and f.shape[1] <= 24 for f in frames)
