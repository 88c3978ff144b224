"""The pure parts of scripts/arm64-check: test selection, token and capture comparison, logit figures.

    .venv/bin/python -m pytest tests/test_arm64_script.py

The emulated run itself is `scripts/arm64-check` (minutes; see docs/PI.md).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_selection_is_the_pi_marker_and_deselections_name_real_files(tmp_path):
    sel = load("arm64_tests")
    (tmp_path / "tests").mkdir()
    assert sel.select(tmp_path) == ["-m", "pi and not slow", "tests"]  # no DESELECT file here: nothing to deselect
    node = next(iter(sel.DESELECT))
    (tmp_path / node.split("::")[0]).write_text("import numpy\n")
    assert sel.select(tmp_path) == ["-m", "pi and not slow", "tests", f"--deselect={node}"]
    assert sel.select(tmp_path, "tests/a.py -k x") == ["tests/a.py", "-k", "x"]


def test_the_pi_marker_is_declared_and_selects_torch_free_tests():
    """`-m pi` is a declared marker (an undeclared one would only warn), and it picks the torch-free tests."""
    root = SCRIPTS.parent
    markers = subprocess.run([sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider"], cwd=root,
                             capture_output=True, text=True, timeout=120)
    assert "@pytest.mark.pi:" in markers.stdout
    proc = subprocess.run([sys.executable, "-m", "pytest", "--co", "-m", "pi", "-p", "no:cacheprovider",
                           "tests/test_no_torch.py", "tests/test_backends.py"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    chosen = [line for line in proc.stdout.splitlines() if "::" in line]
    assert "tests/test_no_torch.py::test_importing_every_pxby_edge_module_leaves_torch_out" in chosen
    assert "tests/test_backends.py::test_numpy_runs_the_bundled_model_like_litert" in chosen
    assert not any("test_float_stepper_equals_full_sequence_forward" in line for line in chosen)


def test_token_comparison_reports_where_streams_part(tmp_path):
    cmp = load("arm64_compare")
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    np.savez(a, tokens=np.arange(10), prompt_tokens=np.int64(3))
    np.savez(b, tokens=np.arange(10), prompt_tokens=np.int64(3))
    np.savez(c, tokens=np.r_[np.arange(6), [0, 0, 0, 0]], prompt_tokens=np.int64(3))
    assert cmp.compare_tokens(a, b) == (True, "identical (10 tokens)")
    ok, text = cmp.compare_tokens(a, c)
    assert not ok and "first difference at index 6" in text
    assert cmp.main([str(a), str(c)]) == 1


def test_capture_comparison_by_name(tmp_path):
    cmp = load("arm64_compare")
    for side, audio in (("x", b"1"), ("y", b"2")):
        (tmp_path / side).mkdir()
        (tmp_path / side / "screen.png").write_bytes(b"same")
        (tmp_path / side / "audio.wav").write_bytes(audio)
    assert cmp.compare_dirs(tmp_path / "x", tmp_path / "y", ["screen.png"])[0]
    assert not cmp.compare_dirs(tmp_path / "x", tmp_path / "y")[0]
    assert not cmp.compare_dirs(tmp_path / "x", tmp_path / "y", ["missing.png"])[0]


def test_logit_figures():
    lg = load("arm64_logits")
    a = np.zeros((4, 6, 151), np.float32)
    a[..., 3] = 1
    b = a.copy()
    b[0, 0, 3] = 0.5
    diff, same = lg.figures(a, b)
    assert diff == pytest.approx(0.5) and same == 1.0
    b[1, 2, 7] = 2
    assert lg.figures(a, b)[1] == 0.75


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_script_parses_and_prints_help():
    script = SCRIPTS / "arm64-check"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "userland" in out.stdout
    bad = subprocess.run([str(script), "--nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr
