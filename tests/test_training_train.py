"""The training loop end to end on CPU: CLI, outputs, refusals, resume, and DDP under torchrun (gloo)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pxby_edge.cli import main  # noqa: E402
from training.checkpoint import load_checkpoint, read_pxby  # noqa: E402
from training.config import TrainConfig, load_preset  # noqa: E402
from training.errors import CheckpointError, OutputExistsError  # noqa: E402
from training.synth import write_dataset  # noqa: E402
from training.train import lr_at, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "synth", 12, seed=0, size_px=12)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("n", [
    6,
    # The acceptance run (64 items, small config, one epoch): ~15 s alone, ~40 s on a busy 2-core box.
    pytest.param(64, marks=pytest.mark.slow),
])
def test_cli_synth_then_train_small_one_epoch(tmp_path, n, capsys):
    data, out = tmp_path / "D", tmp_path / "C"
    assert main(["dataset", "synth", "--n", str(n), "--size", "12", "--out", str(data)]) == 0
    quick = ["--batch", "4", "--seq-len", "256"] if n < 64 else []
    # no --no-progress: stderr is no terminal here, so no bar is drawn into it (issue 22 item 9)
    assert main(["train", "--data", str(data), "--out", str(out), "--config", "small", "--epochs", "1",
                 "--device", "cpu", "--threads", "1", *quick]) == 0
    assert capsys.readouterr().err == ""
    for name in ("config.json", "model.safetensors", "metrics.csv", "metrics.png", "train_config.json",
                 "last/model.safetensors", "last/optimizer.safetensors", "last/state.json"):
        assert (out / name).is_file(), name
    rows = _rows(out / "metrics.csv")
    assert rows and float(rows[-1]["epoch"]) == 1.0
    assert 0.0 < float(rows[-1]["val_acc_new"]) <= 1.0 and 0.0 < float(rows[-1]["val_acc_all"]) <= 1.0
    model = load_checkpoint(out)
    assert 300_000 <= model.num_parameters() <= 500_000
    pxby = read_pxby(out)
    assert pxby["data_slicing"] == {"image": 1, "audio": 4} and pxby["audio_rate"] == 2048 and pxby["source_audio_rate"] == 8192
    assert pxby["vocab"]["vocab_size"] == 151
    # The same folder again is refused (one line, exit 2) unless --force or --resume.
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--no-progress"]) == 2


def test_refusals(small_data, tmp_path):
    m, cfg = load_preset("tiny")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("keep")
    with pytest.raises(OutputExistsError, match="--force"):
        train(small_data, tmp_path / "o", m, cfg, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(small_data, tmp_path / "o", m, cfg, device="cpu", progress=False, resume=True)
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "p"), "--config", "tiny"]) == 2


def test_train_resume_continues(small_data, tmp_path):
    m, cfg = load_preset("tiny")
    out = tmp_path / "run"
    logs = []
    r1 = train(small_data, out, m, TrainConfig(**{**cfg.to_dict(), "max_steps": 3, "eval_every": 2}),
               device="cpu", progress=False, log=logs.append)
    assert r1["step"] == 3
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["step"] == 3
    r2 = train(small_data, out, m, TrainConfig(**{**cfg.to_dict(), "max_steps": 5}), device="cpu",
               progress=False, resume=True, log=logs.append)
    assert r2["step"] == 5
    assert any("resuming at step 3" in line for line in logs)
    steps = [int(r["step"]) for r in _rows(out / "metrics.csv")]
    assert steps == sorted(steps) and steps[-1] == 5 and 3 in steps


def test_training_is_seeded(small_data, tmp_path):
    m, cfg = load_preset("tiny")
    cfg = TrainConfig(**{**cfg.to_dict(), "max_steps": 2})
    a = train(small_data, tmp_path / "a", m, cfg, device="cpu", progress=False, log=lambda *_: None)
    b = train(small_data, tmp_path / "b", m, cfg, device="cpu", progress=False, log=lambda *_: None)
    assert a["val_loss"] == b["val_loss"]
    wa, wb = load_checkpoint(tmp_path / "a" / "last"), load_checkpoint(tmp_path / "b" / "last")
    for (ka, va), (_, vb) in zip(wa.state_dict().items(), wb.state_dict().items()):
        assert torch.equal(va, vb), ka


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10)
    lrs = [lr_at(s, cfg, 100) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(0.1)


def test_pad_weight_and_predict_objective(small_data, tmp_path):
    m, cfg = load_preset("tiny")
    from dataclasses import replace

    r = train(small_data, tmp_path / "p", replace(m, objective="predict"),
              replace(cfg, max_steps=2, pad_weight=1 / 120), device="cpu", progress=False, log=lambda *_: None)
    assert r["val_acc_all"] == r["val_acc_new"]  # one slot: both accuracies are the same
    assert load_checkpoint(tmp_path / "p").config.objective == "predict"


@pytest.mark.slow  # two torch processes: ~15 s alone, ~30 s on a busy 2-core machine
@pytest.mark.parametrize("qat", ["none", "int4"])
def test_torchrun_two_ranks_gloo(small_data, tmp_path, qat):
    """Both ranks hold identical weights after every optimizer step; only rank 0 writes checkpoints
    (with --qat int4 too: DDP wraps the rounding model, the checkpoint is on the int4 grid)."""
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun not installed beside this python")
    out, sync = tmp_path / "ddp", tmp_path / "sync"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "training", "--data", str(small_data),
           "--out", str(out), "--config", "tiny", "--max-steps", "4", "--eval-every", "2", "--device", "cpu",
           "--threads", "1", "--no-progress", "--check-sync", str(sync), "--qat", qat]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "per rank, 2 ranks" in proc.stdout + proc.stderr  # tokens/s per GPU is what scaling is judged by
    r0 = json.loads((sync / "rank0.json").read_text())
    r1 = json.loads((sync / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2
    assert r0["steps_checked"] == r1["steps_checked"] == 4
    assert r0["checkpoint_writes"] > 0 and r1["checkpoint_writes"] == 0
    assert (out / "model.safetensors").is_file() and (out / "metrics.png").is_file()
    rows = _rows(out / "metrics.csv")
    assert int(rows[-1]["step"]) == 4
    assert np.isfinite(float(rows[-1]["val_loss"]))
    if qat == "int4":
        from training.qat import on_grid

        assert on_grid(load_checkpoint(out), 4)


def test_evaluate_and_adherence_mechanics(small_data, tmp_path):
    from training.data import held_out_streams
    from training.evaluate import TorchStepBackend, held_out_metrics, prompt_adherence
    from training.model import PixelBytesLSTM

    m, cfg = load_preset("tiny")
    model = PixelBytesLSTM(m).eval()
    streams = held_out_streams(small_data, cfg.slicing, 0.5)
    res = held_out_metrics(model, streams)
    assert res["items"] == len(streams) and 0 <= res["image_acc_new"] <= 1 and 0 <= res["acc_all"] <= 1
    backend = TorchStepBackend(model, batch=2)
    logits = backend.step(np.zeros((2, 6), dtype=np.int32))
    assert logits.shape == (2, 6, 151)
    adh = prompt_adherence(model, per_colour=1, size_px=12)
    assert set(adh["per_colour"]) == {"red", "orange", "yellow", "green", "blue", "purple", "pink", "teal"}
    assert 0 <= adh["overall"] <= 1


def test_init_from_checkpoint(small_data, tmp_path):
    from dataclasses import replace

    from training.errors import ConfigError

    m, cfg = load_preset("tiny")
    cfg = replace(cfg, max_steps=1, head_repeat=2)
    train(small_data, tmp_path / "a", m, cfg, device="cpu", progress=False, log=lambda *_: None)
    logs = []
    train(small_data, tmp_path / "b", m, replace(cfg, lr=1e-9, warmup_steps=1, grad_clip=0.0), device="cpu",
          progress=False, log=logs.append, init_from=tmp_path / "a")
    assert any("initialised from" in line for line in logs)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b" / "last")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, atol=1e-5, rtol=0, msg=k)  # a 1e-9 step barely moves them
    with pytest.raises(ConfigError, match="--init"):
        train(small_data, tmp_path / "c", replace(m, hidden_size=8), cfg, device="cpu", progress=False,
              log=lambda *_: None, init_from=tmp_path / "a")


def test_without_matplotlib_training_goes_on_and_says_so_once(small_data, tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as on a GPU box without it: import fails
    m, cfg = load_preset("tiny")
    logs = []
    r = train(small_data, tmp_path / "n", m, replace(cfg, max_steps=3, eval_every=1), device="cpu", progress=False,
              log=logs.append)
    assert r["step"] == 3 and (tmp_path / "n" / "metrics.csv").is_file()
    assert not (tmp_path / "n" / "metrics.png").exists()
    assert sum("matplotlib is not installed" in line for line in logs) == 1
