"""The pure parts of scripts/arm64-check: test selection, token and capture comparison, logit figures.

    .venv/bin/python -m pytest tests/test_arm64_script.py

The emulated run itself is `scripts/arm64-check` (minutes; see docs/PI.md).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_selection_keeps_pi_tests_and_drops_model_makers(tmp_path):
    sel = load("arm64_tests")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_plain.py").write_text("import numpy as np\nfrom pxby_edge.vocab import Vocab\n")
    (tests / "test_optional.py").write_text("import pytest\n\ndef test_x():\n    pytest.importorskip('skimage')\n")
    (tests / "test_torch_top.py").write_text("import torch\n")
    (tests / "test_torch_inside.py").write_text("def f():\n    import torch\n")
    (tests / "test_maker_skip.py").write_text("import pytest\n\ndef f():\n    pytest.importorskip('litert_torch')\n")
    (tests / "test_onnx_top.py").write_text("try:\n    import onnxruntime\nexcept ImportError:\n    pass\n")
    (tests / "test_arm64_script.py").write_text("")
    assert sel.select(tmp_path) == ["tests/test_optional.py", "tests/test_plain.py"]
    assert sel.select(tmp_path, "tests/a.py -k x") == ["tests/a.py", "-k", "x"]


def test_deselections_name_real_files_and_come_last(tmp_path):
    sel = load("arm64_tests")
    (tmp_path / "tests").mkdir()
    node = next(iter(sel.DESELECT))
    (tmp_path / node.split("::")[0]).write_text("import numpy\n")
    assert sel.select(tmp_path) == [node.split("::")[0], f"--deselect={node}"]


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
