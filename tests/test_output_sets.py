"""A run of `generate --out` killed at any moment leaves its folder complete or absent, never half.

    python -m pytest -q tests/test_output_sets.py -m "slow or not slow"

Each run is a real `pxby-edge generate` process on the bundled model, killed with SIGKILL after a
random share of the time an uninterrupted run of the same command takes; the folder is then
compared with that run's: the same files with the same tokens, or no folder at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["generate", "--seed", "4", "--max-tokens", "600", "--frames", "1", "--width", "8", "--height", "8",
        "--audio-seconds", "0.02"]


def start(out: Path) -> subprocess.Popen:
    code = f"import sys; from pxby_edge.cli import main; sys.exit(main({[*ARGS, '--out', str(out)]!r}))"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(file names, tokens, seconds) of one uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "out"
    t0 = time.perf_counter()
    assert start(out).wait(timeout=300) == 0
    seconds = time.perf_counter() - t0
    names = sorted(p.name for p in out.iterdir())
    assert "tokens.npz" in names and "text.txt" in names
    return names, np.load(out / "tokens.npz")["tokens"], seconds


def kill_runs(reference, folder: Path, kills: int, seed: int) -> dict:
    """Start generate processes and kill each at a random moment (some finish first) until ``kills``
    were killed; every folder must be whole or absent."""
    names, tokens, seconds = reference
    rng = np.random.default_rng(seed)
    outcome = {"absent": 0, "complete": 0, "killed": 0}
    k = -1
    while outcome["killed"] < kills:
        k += 1
        out = folder / f"out{k}"
        proc = start(out)
        t0 = time.perf_counter()
        try:
            proc.wait(timeout=float(rng.uniform(0.0, 1.3 * seconds)))  # the kill's random moment
            seconds = time.perf_counter() - t0  # the machine's load moves: aim at the latest whole run
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            outcome["killed"] += 1
        if not out.exists():
            outcome["absent"] += 1
            continue
        assert sorted(p.name for p in out.iterdir()) == names, f"run {k}: {sorted(os.listdir(out))}"
        assert all((out / n).stat().st_size > 0 for n in names)
        np.testing.assert_array_equal(np.load(out / "tokens.npz")["tokens"], tokens)
        outcome["complete"] += 1
    # Nothing but the sets and the hidden folders of killed runs.
    assert all(p.name.startswith("out") or p.name.endswith(".partial") for p in folder.iterdir())
    return outcome


def test_killed_generate_leaves_a_whole_set_or_none(reference, tmp_path):
    outcome = kill_runs(reference, tmp_path, kills=5, seed=0)
    assert outcome["absent"] + outcome["complete"] >= 5


@pytest.mark.slow
def test_fifty_kills_leave_every_folder_whole_or_absent(reference, tmp_path):
    outcome = kill_runs(reference, tmp_path, kills=50, seed=1)
    assert outcome["absent"] and outcome["complete"], outcome  # the moments covered both sides of the commit
