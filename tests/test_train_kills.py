"""A training run killed at every rename it makes resumes bit-identical, and leaves no temporary file.

    python -m pytest -q tests/test_train_kills.py            # the fast subset
    python -m pytest -q -m slow tests/test_train_kills.py    # every rename of the run

strace counts the run's ``rename`` calls and SIGKILLs the process at the N-th one
(``-e inject=rename:signal=SIGKILL:when=N``), before that rename happens: the state a power cut or
an OOM kill would leave at that instant. The run is then continued with ``--resume`` (or started
again with ``--force`` when the kill came before the first ``last/`` existed) and its every output
compared byte for byte with an uninterrupted run's: weights, optimizer moments, RNG, schedule
position, and the metrics rows (less their wall-clock columns).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--config", "tiny", "--max-steps", "6", "--eval-every", "2", "--device", "cpu", "--threads", "1",
        "--no-progress", "--batch", "2", "--seq-len", "64", "-q"]
COMPARED = ("model.safetensors", "config.json", "last/model.safetensors", "last/optimizer.safetensors",
            "last/config.json")
TIMING = ("tokens_per_s", "elapsed_s")
# Renames of a run, in order (ARGS: three saves): train_config.json, then per save the best checkpoint's
# two files when it improved, last/ (moved aside, then the new one in), metrics.csv and metrics.png.
# In the default suite: between moving the old last/ aside and the new one in (resume must put the old
# back), and after the last last/ but before metrics.csv (resume must restore the rows from last/).
FAST_KILLS = (10, 17)

def strace_works() -> bool:
    """strace is installed and may trace here (a container without ptrace rights refuses it)."""
    if shutil.which("strace") is None:
        return False
    return subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "true"], capture_output=True).returncode == 0


needs_strace = pytest.mark.skipif(not strace_works(), reason="strace is missing or cannot trace here (.ci/run installs it)")


def _cli(*args) -> list[str]:
    return [sys.executable, "-c", "import sys; from pxby_edge.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _train(data: Path, out: Path, *extra: str, strace_kill: int = 0) -> subprocess.CompletedProcess:
    cmd = _cli("train", "--data", str(data), "--out", str(out), *ARGS, *extra)
    if strace_kill:
        cmd = ["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=rename",
               "-e", f"inject=rename:signal=SIGKILL:when={strace_kill}", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=240)


def _renames(data: Path, out: Path) -> int:
    log = out.parent / "renames.txt"
    cmd = ["strace", "-f", "-qq", "-o", str(log), "-e", "trace=rename",
           *_cli("train", "--data", str(data), "--out", str(out), *ARGS)]
    subprocess.run(cmd, check=True, capture_output=True, env=_env(), timeout=240)
    return sum(1 for line in log.read_text().splitlines() if "rename(" in line)


def _state(out: Path) -> dict:
    files = {name: (out / name).read_bytes() for name in COMPARED}
    state = json.loads((out / "last" / "state.json").read_text())
    files["state"] = {k: state[k] for k in ("step", "epoch", "batch_pos", "best_val_loss", "param_groups")}
    files["hashes"] = {k: v for k, v in state["files"].items() if k != "metrics.csv"}  # its timing columns differ
    files["metrics"] = [{k: v for k, v in row.items() if k not in TIMING}
                        for row in csv.DictReader(io.StringIO((out / "metrics.csv").read_text()))]
    return files


def _leftovers(out: Path) -> list[str]:
    """Hidden entries: every temporary name the run makes starts with a dot."""
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from training.config import load_preset
    from training.data import load_streams
    from training.synth import write_dataset

    base = tmp_path_factory.mktemp("kills")
    data = write_dataset(base / "D", 6, seed=0, size_px=12)
    load_streams(data, load_preset("tiny")[1].slicing)  # the token cache's own renames happen here, not in the runs
    out = base / "ref"
    n = _renames(data, out) if strace_works() else 0
    return data, out, n


def _kill_and_resume(reference, tmp_path, n: int) -> None:
    data, ref, _ = reference
    out = tmp_path / "run"
    killed = _train(data, out, strace_kill=n)
    assert killed.returncode == -9 or killed.returncode == 137, (n, killed.returncode, killed.stderr[-500:])
    again = _train(data, out, "--resume")
    if again.returncode == 2 and "nothing to resume" in again.stderr:  # killed before the first last/
        again = _train(data, out, "--force")
    assert again.returncode == 0, (n, again.stderr[-800:])
    assert _leftovers(out) == [], n
    got, want = _state(out), _state(ref)
    for key in want:
        assert got[key] == want[key], (n, key)


@needs_strace
def test_the_run_makes_the_renames_the_kill_list_names(reference):
    """The fast subset's kill points mean what they say only while the run makes this many renames."""
    assert reference[2] == RENAMES


@needs_strace
@pytest.mark.parametrize("n", FAST_KILLS)
def test_kill_at_a_rename_then_resume_is_bit_identical(reference, tmp_path, n):
    _kill_and_resume(reference, tmp_path, n)


RENAMES = 18  # the run's renames, held by the test above


@needs_strace
@pytest.mark.slow
@pytest.mark.parametrize("n", [n for n in range(1, RENAMES + 1) if n not in FAST_KILLS])
def test_kill_at_every_other_rename_then_resume_is_bit_identical(reference, tmp_path, n):
    _kill_and_resume(reference, tmp_path, n)


@needs_strace
def test_a_killed_runs_temporaries_are_removed_by_the_next_run(reference, tmp_path):
    """Killed while writing the best checkpoint's weights: the hidden temporary is there, then gone."""
    data, _, _ = reference
    out = tmp_path / "run"
    assert _train(data, out, strace_kill=2).returncode in (-9, 137)
    assert [p for p in _leftovers(out) if re.fullmatch(r"\.model\.safetensors\.[a-z0-9_]{8}", p)]
    assert _train(data, out, "--force").returncode == 0
    assert _leftovers(out) == []
