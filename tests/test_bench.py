"""``pxby-edge bench``: rows with the promised keys, a fresh process per row, ratios, one-line errors.

    .venv/bin/python -m pytest tests/test_bench.py

Speeds are measured by the bench, never asserted here: these tests check the bench's shape, not the machine.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pxby_edge.backends.bench import (
    ROW_KEYS,
    RowSpec,
    add_ratios,
    bench,
    format_table,
    record_stream,
    run_spec,
)
from pxby_edge.errors import BackendError
from pxby_edge.runtime_commands import bench as bench_command

REQUIRED = ("name", "batch", "tokens_per_s", "us_per_token_median", "us_per_token_p99", "startup_s", "peak_rss_mb")


def test_rows_carry_the_promised_keys_and_ratios(models):  # noqa: F811
    rows = bench([models.int8, models.float, models.float_b2], tokens=40, backends=["litert", "numpy"], isolate=False)
    names = [r["name"] for r in rows]
    assert "litert int8 b1 step" in names and "numpy float b2 generate" in names
    for r in rows:
        assert "error" not in r, r
        for key in REQUIRED:
            assert key in r
        assert r["tokens_per_s"] > 0 and r["us_per_token_p99"] >= r["us_per_token_median"] > 0
    step = next(r for r in rows if r["name"] == "litert float b1 step")
    assert step["bare_us"] > 0 and "io_overhead_us" in step
    b2 = next(r for r in rows if r["name"] == "litert float b2 step")
    assert b2["batch"] == 2 and b2["x_vs_batch1"] > 0
    assert "overhead_us_vs_bare" in next(r for r in rows if r["name"] == "litert float b1 generate")
    assert set(ROW_KEYS) - {"bare_us"} <= set(step)
    assert "litert int8 b1 step" in format_table(rows)


def test_a_row_runs_in_its_own_process(models, tmp_path):  # noqa: F811
    import numpy as np

    ctx = tmp_path / "ctx.npy"
    np.save(ctx, record_stream(models.float, 30))
    row = run_spec(RowSpec("step", str(models.float), "litert", 1, 30, str(ctx), label="child"))
    assert "error" not in row, row
    assert row["name"] == "child" and row["peak_rss_mb"] > 10 and row["startup_s"] > 0


def test_torch_rows_and_upstream_ratio(models):  # noqa: F811
    pytest.importorskip("torch")
    rows = bench([models.float], tokens=30, backends=["litert"], kinds=("step",), vs_torch=models.ckpt,
                 upstream_tokens=20, isolate=False)
    kinds = [r["kind"] for r in rows]
    assert kinds[:2] == ["upstream", "torch"]
    assert all(r["tokens"] > 0 for r in rows)
    assert "x_vs_upstream" in rows[-1] and "x_vs_torch" in rows[-1]


def test_ratios_pair_batch_rows_with_their_batch_one():
    rows = add_ratios([
        {"name": "a", "kind": "step", "backend": "litert", "recipe": "int8", "batch": 1, "tokens_per_s": 100.0,
         "us_per_token_median": 10.0, "bare_us": 4.0},
        {"name": "b", "kind": "step", "backend": "litert", "recipe": "int8", "batch": 8, "tokens_per_s": 350.0,
         "us_per_token_median": 3.0},
    ])
    assert rows[1]["x_vs_batch1"] == pytest.approx(3.5)
    assert rows[0]["io_overhead_us"] == pytest.approx(6.0)


def test_cli_json_and_errors(models):  # noqa: F811
    runner = CliRunner()
    res = runner.invoke(bench_command, [str(models.float), "--tokens", "20", "--backends", "numpy", "--kinds", "step",
                                        "--inline", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["name"] for r in rows] == ["numpy float b1 step"]
    res = runner.invoke(bench_command, [str(models.float), "--batch", "8", "--inline"])
    assert isinstance(res.exception, BackendError) and "--batch 8" in str(res.exception)
    with pytest.raises(BackendError, match="batch-1 file"):
        bench([models.float_b2], tokens=20, isolate=False)
