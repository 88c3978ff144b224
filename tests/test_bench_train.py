"""bench/bench_train.py end to end on CPU at toy sizes: both loops timed after a warm-up, alternating, and
the race to a held-out accuracy measured by one evaluation for both."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_and_to_accuracy_on_cpu(tmp_path, capsys):
    from training.synth import write_dataset

    data = write_dataset(tmp_path / "d", 24, seed=0, size_px=12)
    result = _bench().main(["--config", "tiny", "--data", str(data), "--cache-dir", str(tmp_path / "c"),
                            "--batches", "2,3", "--warmup", "2", "--rounds", "2", "--min-steps", "4",
                            "--min-seconds", "0", "--to-accuracy", "0.0", "--budget-s", "5", "--eval-tokens", "600",
                            "--ours-set", "batch_size=3", "--json"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result))
    assert [r["batch"] for r in result["throughput"]] == [2, 3]
    for row in result["throughput"]:
        for name in ("ours", "upstream"):
            assert row[name]["steps"] == 4 and len(row[name]["rounds_tokens_per_s"]) == 2
            assert row[name]["tokens_per_s"] > 0 and row[name]["precision"] == "float32"
        assert row["ratio"] == pytest.approx(row["ours"]["tokens_per_s"] / row["upstream"]["tokens_per_s"])
    acc = result["to_accuracy"]
    assert acc["ours"]["reached"] and acc["upstream"]["reached"]  # 0.0 is reached at the first evaluation
    assert acc["ours"]["steps"] == acc["upstream"]["steps"] == 1  # chunks of ~600 tokens: one step of 3 or 4 x 256
    assert acc["ours_config"]["batch_size"] == 3 and acc["upstream_config"]["batch_size"] == 4
    assert acc["held_out_items"] > 0 and "time_ratio" in acc


def test_ours_config_must_keep_the_model(tmp_path):
    from training.synth import write_dataset

    data = write_dataset(tmp_path / "d", 4, seed=0, size_px=12)
    with pytest.raises(SystemExit, match="must keep the model"):
        _bench().main(["--config", "tiny", "--ours-config", "small", "--data", str(data), "--batches", "",
                       "--to-accuracy", "0.5"])
