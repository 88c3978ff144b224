"""What the wheel installs: four package names and no generic module, the console script from a venv
outside the repo, package data that code reads, the SPDX license, one line for a missing extra.

    .venv/bin/python -m pytest tests/test_packaging.py -m slow

The wheel build and the fresh `[pi]` venv (from the package index) are slow: `make test-slow` runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"pxby_edge", "training", "quantize", "firmware_bridge"}
# What a source tree holds that a build must not see (stale build/ folders would ship deleted files).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", ".cache", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".ruff_cache", ".hypothesis", ".import_linter_cache", "runs")



# -- the answer to a missing extra, in this environment (a child with torch made unimportable) --------------


def _cli_without(modules, args, cwd) -> subprocess.CompletedProcess:
    code = ("import sys\n"
            f"for name in {list(modules)!r}:\n"
            "    sys.modules[name] = None  # what `import name` then raises: ModuleNotFoundError\n"
            "from pxby_edge.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("missing, args, extra", [
    (["torch"], ["train", "--data", "d", "--out", "o"], "train"),
    (["torch"], ["quantize", "ckpt", "-o", "m.tflite"], "quantize"),  # the command's own extra brings torch too
])
def test_a_missing_optional_dependency_is_one_line_naming_the_extra(tmp_path, missing, args, extra):
    from pxby_edge.cli import command_entry_points

    if not command_entry_points():
        pytest.skip("the project is not installed here, so it has no entry points (pip install -e .)")
    work = tmp_path / "work"
    work.mkdir()
    proc = _cli_without(missing, args, work)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error:"), proc.stderr
    assert f"pip install 'pxby-edge[{extra}]'" in proc.stderr and missing[0] in proc.stderr
    assert not list(work.iterdir())  # nothing written


def test_extras_are_read_from_the_metadata():
    from pxby_edge.cli import command_entry_points, extra_providing

    if not command_entry_points():
        pytest.skip("the project is not installed here, so it has no metadata (pip install -e .)")
    assert extra_providing("torch") == "train" and extra_providing("torch", prefer="quantize") == "quantize"
    assert extra_providing("litert_torch") == extra_providing("ai_edge_quantizer") == "quantize"
    assert extra_providing("ai_edge_litert.interpreter") == "pi" and extra_providing("onnxruntime") == "onnx"
    assert extra_providing("numpy") is None  # a core dependency (tflite only pins it): no extra brings it
    assert extra_providing("no_such_module") is None


# -- the wheel ------------------------------------------------------------------------------------------


def _env() -> dict:
    """The environment of a user's shell: no PYTHONPATH pointing back into this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args, cwd, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="the build frontend is not installed (pip install -e '.[dev]')")
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    proc = _run([sys.executable, "-m", "build", "--wheel", "--outdir", work / "dist", src], cwd=work)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (whl,) = (work / "dist").glob("pxby_edge-*.whl")
    return whl


def _dist_info(whl: Path, name: str) -> str:
    with zipfile.ZipFile(whl) as z:
        (member,) = [n for n in z.namelist() if n.endswith(f".dist-info/{name}")]
        return z.read(member).decode()


@pytest.mark.slow
def test_the_wheel_holds_four_packages_and_only_data_that_code_reads(wheel):
    assert set(_dist_info(wheel, "top_level.txt").split()) == PACKAGES  # no `cli`, nothing generic besides
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == PACKAGES, top
    data = sorted(n for n in names if not n.endswith(".py") and ".dist-info/" not in n)
    # the bundled model and its ONNX twin; the presets `train --config` reads; the C core, its build and vectors
    # (firmware_bridge.vectors and .difftest build and run them); the Game Boy ROM `pyboy://` and `spi://` load
    firmware = [f"firmware_bridge/firmware/{n}" for n in (
        "Makefile", "device_check.c", "fuzz_decoder.c", "hw_host.c", "hw_host.h", "pxby_core.c", "pxby_core.h",
        "pxby_protocol.h", "test_core.c", "vector_check.c", "vectors/frames.txt")]
    assert data == sorted([*firmware, "firmware_bridge/gameboy/pxby-link.gb", "pxby_edge/assets/demo.onnx",
                           "pxby_edge/assets/demo.tflite", "training/presets/small.json", "training/presets/tiny.json",
                           "training/presets/upstream-batch64.json", "training/presets/upstream.json"])


@pytest.mark.slow
def test_metadata_declares_the_license_the_script_and_the_commands(wheel):
    meta = _dist_info(wheel, "METADATA").splitlines()
    assert "License-Expression: MIT" in meta and "License-File: LICENSE" in meta
    assert not any(line.startswith("License: ") for line in meta)  # the pre-SPDX field is gone
    entry_points = _dist_info(wheel, "entry_points.txt")
    assert "pxby-edge = pxby_edge.cli:main" in entry_points
    assert "[pxby_edge.commands]" in entry_points and "quantize = quantize.commands:quantize" in entry_points


@pytest.fixture(scope="module")
def pi_venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the repo with `pip install 'WHEEL[pi]'` (no torch)."""
    venv = tmp_path_factory.mktemp("pi") / "venv"
    proc = _run([sys.executable, "-m", "venv", venv], cwd=venv.parent)
    assert proc.returncode == 0, proc.stderr
    proc = _run([venv / "bin" / "pip", "install", "-q", f"{wheel}[pi]"], cwd=venv.parent, timeout=900)
    if proc.returncode != 0 and "No matching distribution" in proc.stderr:
        pytest.skip(f"the package index is out of reach: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_console_script_works_from_a_wheel_installed_outside_the_repo(pi_venv):
    where = pi_venv.parent
    py = pi_venv / "bin" / "python"
    probe = _run([py, "-c", "import importlib.util as u, json; import pxby_edge; "
                  "print(json.dumps([pxby_edge.__file__, u.find_spec('cli') is None, u.find_spec('torch') is None]))"],
                 cwd=where)
    assert probe.returncode == 0, probe.stderr
    location, no_cli, no_torch = json.loads(probe.stdout)
    assert Path(location).is_relative_to(pi_venv) and no_cli and no_torch
    model = Path(location).parent / "assets" / "demo.tflite"
    proc = _run([pi_venv / "bin" / "pxby-edge", "inspect", model], cwd=where)
    assert proc.returncode == 0, proc.stderr
    assert "manifest format" in proc.stdout and "recipe" in proc.stdout
    helps = _run([pi_venv / "bin" / "pxby-edge", "--help"], cwd=where)
    assert helps.returncode == 0 and "quantize" in helps.stdout and "train" in helps.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("args, extra", [
    (["train", "--data", "d", "--out", "o"], "train"),
    (["quantize", "ckpt", "-o", "m.tflite"], "quantize"),
])
def test_a_torch_free_install_names_the_extra_in_one_line(pi_venv, args, extra):
    """The same answer from a real `[pi]` install, where torch is simply absent."""
    proc = _run([pi_venv / "bin" / "pxby-edge", *args], cwd=pi_venv.parent)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error:"), proc.stderr
    assert f"pip install 'pxby-edge[{extra}]'" in proc.stderr
