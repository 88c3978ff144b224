"""``pxby-edge bench``: rows with the promised keys, a fresh process per row, repeats with ±, ratios,
every output format, the plot, one-line errors.

    .venv/bin/python -m pytest tests/test_bench.py

Speeds are measured by the bench, never asserted here: these tests check the bench's shape, not the machine.
The files are the bundled model and ones this module builds with the project's own training and quantize code.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pxby_edge.bench import (
    ONNX_INT8,
    ROW_KEYS,
    BenchMatrix,
    RowSpec,
    add_ratios,
    bench,
    format_rows,
    mean_rows,
    record_stream,
    run_spec,
)
from pxby_edge.constants import BACKEND_NAMES
from pxby_edge.errors import BackendError
from pxby_edge.generate import default_model_path
from pxby_edge.manifest import read_manifest

pytest.importorskip("ai_edge_litert")

BUNDLED_RECIPE = read_manifest(default_model_path()).recipe  # bench names its rows by the file's recipe
ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("name", "batch", "threads", "tokens", "tokens_per_s", "us_per_token_median", "us_per_token_p99",
            "startup_s", "peak_rss_mb")


@pytest.fixture(scope="module")
def tiny(models) -> SimpleNamespace:
    """The session's checkpoint saved by training/ and its float files at batch 1 and 2 made by quantize/."""
    return SimpleNamespace(ckpt=models.ckpt, float=models.float, float_b2=models.float_b2)


def test_rows_carry_the_promised_keys_and_ratios(tiny):
    rows = bench(BenchMatrix([tiny.float, tiny.float_b2], backends=["litert", "numpy"], tokens=40), isolate=False)
    names = [r["name"] for r in rows]
    assert "litert float b1 step" in names and "numpy float b2 generate" in names
    for r in rows:
        assert "error" not in r, r
        assert all(key in r for key in REQUIRED)
        assert r["tokens"] == 40 and r["tokens_per_s"] > 0 and r["us_per_token_p99"] >= r["us_per_token_median"] > 0
    step = next(r for r in rows if r["name"] == "litert float b1 step")
    assert step["bare_us"] > 0 and "io_overhead_us" in step
    assert set(ROW_KEYS) <= set(step)
    assert step["file_kb"] == pytest.approx(tiny.float.stat().st_size / 1024)
    b2 = next(r for r in rows if r["name"] == "litert float b2 step")
    assert b2["batch"] == 2 and b2["x_vs_batch1"] > 0
    assert "overhead_us_vs_bare" in next(r for r in rows if r["name"] == "litert float b1 generate")


def test_a_row_runs_in_its_own_process(tmp_path):
    import numpy as np

    ctx = tmp_path / "ctx.npy"
    np.save(ctx, record_stream(default_model_path(), 30))
    row = run_spec(RowSpec("step", str(default_model_path()), "litert", 1, 30, str(ctx), label="child"))
    assert "error" not in row, row
    assert row["name"] == "child" and row["tokens"] == 30 and row["peak_rss_mb"] > 10 and row["startup_s"] > 0


def test_a_failing_row_is_one_line_not_a_crash(tmp_path):
    row = run_spec(RowSpec("step", str(tmp_path / "missing.tflite"), "litert", 1, 30, str(tmp_path / "none.npy"),
                           label="broken"))
    assert row["name"] == "broken" and row["error"] and "\n" not in row["error"]


def test_torch_rows_and_upstream_ratio(tiny):
    from training.bench_rows import torch_specs

    rows = bench(BenchMatrix([tiny.float], backends=["litert"], kinds=("step",), tokens=30), isolate=False,
                 extra_specs=torch_specs(tiny.ckpt, tokens=30, upstream_tokens=20, threads=1))
    assert [r["kind"] for r in rows[:2]] == ["upstream", "torch"]
    assert [r["tokens"] for r in rows] == [20, 30, 30]
    assert "x_vs_upstream" in rows[-1] and "x_vs_torch" in rows[-1]


def test_onnx_int8_rows_run_through_the_generator_and_give_our_ratio():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    rows = bench(BenchMatrix([default_model_path()], backends=["litert", "onnx"], kinds=("generate",), tokens=30),
                 isolate=False)
    int8 = next(r for r in rows if r.get("recipe") == ONNX_INT8)
    assert "error" not in int8 and int8["backend"] == "onnx" and int8["tokens"] == 30
    ours = next(r for r in rows if r["backend"] == "litert")
    assert ours["x_vs_onnx_int8"] == pytest.approx(ours["tokens_per_s"] / int8["tokens_per_s"])


def test_without_onnx_the_int8_rows_are_one_error_row_and_the_rest_runs(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # onnxruntime without the onnx package
    rows = bench(BenchMatrix([default_model_path()], backends=["litert", "onnx"], kinds=("step",), tokens=20), isolate=False)
    assert [r["name"] for r in rows] == [f"litert {BUNDLED_RECIPE} b1 step", "onnx fp32 b1 step", "onnx int8 (quantize_dynamic)"]
    assert "pip install onnx" in rows[-1]["error"] and "error" not in rows[0]
    assert "error: needs onnxruntime's quantization tools" in format_rows(rows)


def test_repeats_give_mean_and_standard_deviation():
    runs = [{"name": "a", "kind": "step", "batch": 1, "tokens": 64, "tokens_per_s": v, "us_per_token_median": 1e6 / v}
            for v in (100.0, 200.0, 300.0)]
    row = mean_rows(runs)
    assert row["tokens_per_s"] == pytest.approx(200.0) and row["tokens_per_s_sd"] == pytest.approx(100.0)
    assert row["repeats"] == 3 and row["batch"] == 1 and row["tokens"] == 64
    assert "200 ± 100" in format_rows([row], "table")


def test_ratios_pair_batch_rows_with_their_batch_one():
    rows = add_ratios([
        {"name": "a", "kind": "step", "backend": "litert", "recipe": "int8", "batch": 1, "threads": 1,
         "tokens_per_s": 100.0, "us_per_token_median": 10.0, "bare_us": 4.0},
        {"name": "b", "kind": "step", "backend": "litert", "recipe": "int8", "batch": 8, "threads": 1,
         "tokens_per_s": 350.0, "us_per_token_median": 3.0},
    ])
    assert rows[1]["x_vs_batch1"] == pytest.approx(3.5)
    assert rows[0]["io_overhead_us"] == pytest.approx(6.0)


def test_cli_md_with_repeats_thread_sweep_and_plot(tmp_path, run_cli):
    pytest.importorskip("matplotlib")
    png = tmp_path / "b.png"
    code, out, err = run_cli("bench", "--tokens", "64", "-r", "2", "-o", "md", "--backend", "numpy", "--kinds", "step",
                              "--threads", "1,2", "--plot", str(png), "--inline")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("| configuration |") and lines[1].startswith("| --- |")
    assert [ln.split(" | ")[0] for ln in lines[2:]] == [f"| numpy {BUNDLED_RECIPE} b1 step t1", f"| numpy {BUNDLED_RECIPE} b1 step t2"]
    assert all(" | 64 | " in ln and " ± " in ln for ln in lines[2:])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_cli("bench", "--tokens", "16", "--backend", "numpy", "--plot", str(png), "--inline")
    assert code == 2 and "--force" in err


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_cli_machine_readable_outputs(fmt, run_cli):
    code, out, err = run_cli("bench", "--tokens", "20", "--backend", "numpy", "--kinds", "step", "--inline", "-o", fmt)
    assert code == 0, err
    if fmt == "csv":
        table = list(csv.reader(io.StringIO(out)))
        assert table[0][0] == "configuration" and table[1][0] == f"numpy {BUNDLED_RECIPE} b1 step"
        return
    rows = json.loads(out) if fmt == "json" else [json.loads(ln) for ln in out.splitlines()]
    assert [r["name"] for r in rows] == [f"numpy {BUNDLED_RECIPE} b1 step"] and rows[0]["tokens"] == 20


def test_cli_errors_are_one_line(tmp_path, run_cli):
    code, out, err = run_cli("bench", "--backend", "litert,bogus", "--tokens", "16")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert all(name in err for name in BACKEND_NAMES) and "'bogus'" in err
    code, _, err = run_cli("bench", "--threads", "0", "--tokens", "16")
    assert code == 2 and err.startswith("error: ") and "1,2,4" in err
    code, _, err = run_cli("bench", "--kinds", "step,bogus", "--tokens", "16")
    assert code == 2 and err.startswith("error: --kinds takes step and/or generate")
    code, _, err = run_cli("bench", str(default_model_path()), "--batch", "8", "--inline")
    assert code == 2 and "--batch 8" in err
    code, out, _ = run_cli("bench", "--help")
    assert code == 0 and "Seed of the recorded token stream" in " ".join(out.split())


def test_plot_without_matplotlib_is_one_line(tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli("bench", "--tokens", "16", "--backend", "numpy", "--kinds", "step", "--inline", "--plot",
                            str(tmp_path / "b.png"))
    assert code == 2 and err.strip().splitlines()[-1] == ("error: --plot needs matplotlib, which is not installed "
                                                         "here: pip install matplotlib")


def test_the_stream_needs_a_batch_one_file(tiny):
    with pytest.raises(BackendError, match="batch-1 file"):
        bench(BenchMatrix([tiny.float_b2], tokens=20), isolate=False)


def test_vs_torch_without_torch_names_the_extra(tmp_path, run_cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    code, _, err = run_cli("bench", "--vs-torch", str(tmp_path), "--tokens", "16", "--inline")
    assert code == 2 and err.count("\n") == 1 and "pip install 'pxby-edge[train]'" in err
