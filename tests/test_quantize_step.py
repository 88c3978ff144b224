"""The streaming step equals the whole-sequence forward, for upstream's checkpoint and ours, both
objectives; the fast state walk used for calibration equals stepping; calibration is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("training.model")

from quantize.calibrate import Streams, calibration_samples, lstm_states, synthetic_streams  # noqa: E402
from quantize.step import StepModule  # noqa: E402
from training.config import ModelConfig  # noqa: E402
from training.model import PixelBytesLSTM  # noqa: E402

STEPS = 200


# The two sides of the equality these tests hold (test support: nothing in the package steps a whole sequence).
@torch.no_grad()
def run_steps(step: StepModule, contexts: torch.Tensor, state=None):
    """Teacher-forced step loop: contexts (B, T, 6) → logits (B, T, slots, V), final (h, c)."""
    h, c = state if state is not None else step.initial_state(contexts.shape[0])
    out = []
    for t in range(contexts.shape[1]):
        logits, h, c = step(contexts[:, t].to(torch.int32), h, c)
        out.append(logits)
    return torch.stack(out, dim=1), (h, c)


@torch.no_grad()
def full_forward(model, contexts: torch.Tensor) -> torch.Tensor:
    """Upstream's whole-sequence forward: contexts (B, T, 6) → logits (B, T, slots, V)."""
    b, t, _ = contexts.shape
    emb = model.embedding(contexts.long()).reshape(b, t, -1)
    y, _ = model.sequence_model(emb)
    vocab = model.embedding.num_embeddings
    return model.fc(y).reshape(b, t, -1, vocab)


def _random_model(objective: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(embed_size=kw.get("embed", 24), hidden_size=kw.get("hidden", 32),
                      num_layers=kw.get("layers", 2), objective=objective)
    return PixelBytesLSTM(cfg).eval()


def _contexts(n: int, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 151, (batch, n, 6), generator=g)


def _check_equal(model):
    step = StepModule(model).eval()
    x = _contexts(STEPS)
    full = full_forward(model, x)
    stepped, _ = run_steps(step, x)
    assert stepped.shape == full.shape
    assert float((full - stepped).abs().max()) < 1e-5
    return step


def test_upstream_checkpoint_steps_like_its_forward(upstream_dir):
    from training.checkpoint import load_checkpoint

    model = load_checkpoint(upstream_dir / "tiny_autoregressive")
    step = _check_equal(model)
    assert step.slots == 6 and step.num_layers == 2 and step.hidden_size == 32
    # And like the reference implementation's own logits.
    io = np.load(upstream_dir / "tiny_autoregressive_io.npz")
    stepped, _ = run_steps(step, torch.as_tensor(io["input_ids"].astype(np.int64)))
    assert np.abs(stepped.numpy() - io["logits"]).max() < 1e-5


@pytest.mark.parametrize("objective,slots", [("autoregressive", 6), ("predict", 1)])
def test_our_models_step_like_their_forward(objective, slots):
    model = _random_model(objective, seed=3, embed=30, hidden=20, layers=3)
    step = _check_equal(model)
    assert step.slots == slots
    logits, h, c = step(**step.sample_inputs(4))
    assert logits.shape == (4, slots, 151) and h.shape == c.shape == (3, 4, 20)


def test_step_matches_the_models_own_step_method():
    model = _random_model("autoregressive", seed=1)
    step = StepModule(model).eval()
    ctx = _contexts(1, batch=3)[:, 0]
    with torch.no_grad():
        ours, h, c = step(ctx.to(torch.int32), *step.initial_state(3))
        theirs, (h2, c2) = model.step(ctx)
    assert torch.equal(ours, theirs) and torch.equal(h, h2) and torch.equal(c, c2)


def test_bidirectional_model_is_refused():
    model = PixelBytesLSTM(ModelConfig(embed_size=24, hidden_size=8, bidirection=True))
    with pytest.raises(ValueError, match="bidirectional"):
        StepModule(model)


def test_state_walk_equals_stepping():
    model = _random_model("autoregressive", seed=2)
    step = StepModule(model).eval()
    x = _contexts(120, batch=1, seed=5)[0]
    h_all, c_all = lstm_states(model, x.numpy())
    h, c = step.initial_state(1)
    with torch.no_grad():
        for t in range(len(x)):
            assert np.abs(h_all[t] - h[:, 0].numpy()).max() < 1e-5
            assert np.abs(c_all[t] - c[:, 0].numpy()).max() < 1e-5
            _, h, c = step(x[t: t + 1].to(torch.int32), h, c)


def test_calibration_samples_are_deterministic_and_shaped():
    pytest.importorskip("training.synth")
    model = _random_model("autoregressive", seed=4)
    step = StepModule(model).eval()
    streams = Streams(synthetic_streams(2, {"image": 2, "audio": 8}), "synthetic")
    a, summary = calibration_samples(step, streams, 12, batch=3, pool=500)
    b, _ = calibration_samples(step, streams, 12, batch=3, pool=500)
    assert len(a) == 12 and summary["positions_walked"] == 500
    for x, y in zip(a, b):
        assert x.keys() == {"context", "h0", "c0"}
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert a[0]["context"].shape == (3, 6) and a[0]["context"].dtype == np.int32
    assert a[0]["h0"].shape == (2, 3, 32) and a[-1]["c0"].any()
