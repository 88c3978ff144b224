"""What one optimizer step costs beyond the arithmetic: LSTM forwards per step and host syncs per step.

Issue 23 found an evaluation pass hidden in a timed run and a host round trip per step; these tests count
both on CPU so neither comes back unnoticed. A "host sync" is any read of a tensor's value on the host
(``item``, ``tolist``, ``bool``/``float``/``int``, ``numpy``, ``cpu``) or ``torch.cuda.synchronize``
made by the project's own code: on a GPU each one makes the host wait for the device.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from training import train as train_mod  # noqa: E402
from training.batches import DeviceWindows  # noqa: E402
from training.config import load_preset  # noqa: E402
from training.data import Stream, Windows  # noqa: E402
from training.synth import write_dataset  # noqa: E402
from training.train import LOG_EVERY, TrainingRun, setup_runtime, train  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
PACKAGES = tuple(PROJECT / name for name in ("training", "pxby_edge", "quantize", "firmware_bridge"))
READBACKS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy", "cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "synth", 8, seed=0, size_px=12)


class Meter:
    """Counts LSTM forwards (a hook on the module) and host read-backs made from the project's files."""

    def __init__(self, monkeypatch, lstm):
        self.forwards, self.syncs = 0, Counter()
        lstm.register_forward_hook(lambda *_: self._forward())
        for name in READBACKS:
            monkeypatch.setattr(torch.Tensor, name, self._counting(name, getattr(torch.Tensor, name)))
        monkeypatch.setattr(torch.cuda, "synchronize", self._counting("cuda.synchronize", lambda *a, **k: None))

    def _forward(self):
        self.forwards += 1

    def _counting(self, name, original):
        def wrapper(*args, **kwargs):
            caller = Path(sys._getframe(1).f_code.co_filename).resolve()
            # the project's packages only: a venv inside the checkout (what `make test` builds) holds torch,
            # whose own read-backs (the CPU optimizer's step count) are not the project's
            if any(package in caller.parents for package in PACKAGES):
                self.syncs[f"{caller.name}:{sys._getframe(1).f_lineno} {name}"] += 1
            return original(*args, **kwargs)

        return wrapper


def _run(data, tmp_path, **overrides) -> TrainingRun:
    model_cfg, cfg = load_preset("tiny")
    cfg = replace(cfg, max_steps=1000, eval_every=10**6, num_threads=1, **overrides)
    run = TrainingRun(data, tmp_path / "out", model_cfg, cfg, setup_runtime("cpu"), log=lambda *_: None)
    run.setup(cache_dir=tmp_path / "cache")
    run.start_steps()
    return run


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_one_forward_per_micro_batch_and_no_host_sync_inside_a_step(data, tmp_path, monkeypatch, grad_accum):
    run = _run(data, tmp_path, batch_size=2, grad_accum=grad_accum)
    meter = Meter(monkeypatch, run.raw_model.sequence_model)
    steps = 0
    for group in run.step_groups():
        forwards = meter.forwards
        run.train_step(group)
        steps += 1
        assert meter.forwards - forwards == grad_accum  # one forward per micro-batch: metrics share its logits
        if run.step % LOG_EVERY:
            assert not meter.syncs, f"step {run.step} read the device back: {dict(meter.syncs)}"
        else:  # a logging step: the sums are read back once (positions, then the sums)
            assert sum(meter.syncs.values()) <= 2, dict(meter.syncs)
            meter.syncs.clear()
        if steps == LOG_EVERY + 3:
            break
    assert run.step == LOG_EVERY + 3


def test_a_run_adds_only_its_validations_forwards(data, tmp_path, monkeypatch):
    """``train()`` end to end: forwards = steps + held-out batches of each validation, nothing else."""
    model_cfg, cfg = load_preset("tiny")
    cfg = replace(cfg, max_steps=7, eval_every=3, epochs=1, num_threads=1, batch_size=2)
    counted = {}
    real_setup = TrainingRun.setup

    def setup_and_meter(self, *a, **k):
        real_setup(self, *a, **k)
        counted["meter"] = Meter(monkeypatch, self.raw_model.sequence_model)
        counted["run"] = self

    monkeypatch.setattr(TrainingRun, "setup", setup_and_meter)
    result = train(data, tmp_path / "o", model_cfg, cfg, device="cpu", progress=False, log=lambda *_: None,
                   cache_dir=tmp_path / "cache")
    run, meter = counted["run"], counted["meter"]
    val_batches = -(-len(run.val_b) // cfg.batch_size)
    epoch_steps = len(run.train_b) // cfg.batch_size + bool(len(run.train_b) % cfg.batch_size)
    evals = len({s for s in range(1, 8) if s % 3 == 0 or s == 7 or s % epoch_steps == 0})
    assert result["step"] == 7 and len(run.rows) == evals
    assert meter.forwards == 7 + evals * val_batches


def test_non_finite_loss_is_caught_at_the_next_read_back_not_in_the_step(data, tmp_path, monkeypatch):
    from training.errors import TrainingDivergedError

    run = _run(data, tmp_path, batch_size=2)
    groups = run.step_groups()
    run.train_step(next(groups))
    with torch.no_grad():
        run.raw_model.fc.bias.fill_(float("nan"))
    meter = Meter(monkeypatch, run.raw_model.sequence_model)
    while run.step % LOG_EVERY != LOG_EVERY - 1:
        run.train_step(next(groups))  # no error and no read-back inside the steps
    assert not meter.syncs
    with pytest.raises(TrainingDivergedError, match="diverged"):
        run.train_step(next(groups))


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=5), seq_len=st.integers(2, 12),
       stride=st.integers(1, 12), objective=st.sampled_from(["autoregressive", "predict"]),
       head_repeat=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_device_windows_equal_the_host_windows(lengths, seq_len, stride, objective, head_repeat, seed):
    """The on-device gather gives exactly ``Windows.batch`` (the reference) for any windows in any order."""
    rng = np.random.default_rng(seed)
    streams = [Stream(str(i), rng.integers(0, 151, (n, 6), dtype=np.uint8), rng.integers(0, 151, n, dtype=np.uint8))
               for i, n in enumerate(lengths)]
    w = Windows(streams, seq_len, stride, objective, head_repeat)
    dw = DeviceWindows(w, torch.device("cpu"))
    idx = rng.integers(0, len(w), size=int(rng.integers(1, 9)))
    x, y = dw.batch(torch.from_numpy(idx))
    xr, yr = w.batch(idx)
    np.testing.assert_array_equal(x.numpy(), xr)
    np.testing.assert_array_equal(y.numpy(), yr)
    assert x.dtype == y.dtype == torch.int64


def test_epoch_order_is_the_seeded_shard(data):
    rt = setup_runtime("cpu")
    a, b = train_mod.epoch_order(10, rt, 1337, 0), train_mod.epoch_order(10, rt, 1337, 0)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(10))
    assert not torch.equal(a, train_mod.epoch_order(10, rt, 1337, 1))


def test_cuda_graph_is_refused_where_it_cannot_run(data, tmp_path):
    from pxby_edge.cli import main

    assert main(["train", "--data", str(data), "--out", str(tmp_path / "g"), "--config", "tiny", "--device", "cpu",
                 "--cuda-graph", "--no-progress"]) == 2
    assert not (tmp_path / "g").exists()


def test_saved_state_holds_a_device_learning_rate_as_a_number(tmp_path):
    """A graphed step keeps each group's learning rate as a tensor; state.json must still be plain JSON."""
    import json

    from training.config import ModelConfig
    from training.model import PixelBytesLSTM
    from training.resume_state import save_run_state

    model = PixelBytesLSTM(ModelConfig(embed_size=12, hidden_size=8, num_layers=1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt.param_groups[0]["lr"] = torch.tensor(2e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    save_run_state(tmp_path, model, opt, scaler, {}, {"step": 1}, [])
    state = json.loads((tmp_path / "last" / "state.json").read_text())
    assert state["param_groups"][0]["lr"] == pytest.approx(2e-3)
