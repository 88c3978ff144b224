"""What users install works outside the repo: the wheel, installed with ``[pi]`` into a fresh venv, runs
``pxby-edge generate`` and ``pxby-edge demo`` offline on the bundled model.

    .venv/bin/python -m pytest -m slow tests/test_wheel_install.py

The wheel is built the way ``make dist`` builds it (``python -m build --no-isolation``); the venv lives in
a temporary folder, the commands run there with no PYTHONPATH, so nothing of the checkout is imported.
The [pi] extra comes from the package index pip is configured with (the only network use).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# .ci/run runs it (CI=true) after `make test`; a build, a venv and a pip install of [pi] take minutes on a busy
# machine, past the suite's 300 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def run(args, cwd, timeout=900, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(map(str, args))}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_the_wheel_with_pi_extra_generates_and_runs_the_demo_outside_the_repo(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", dist, ROOT], cwd=tmp_path)
    wheel = next(dist.glob("pxby_edge-*.whl"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    bin_dir = tmp_path / "venv" / "bin"
    run([bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{wheel}[pi]"],
        cwd=tmp_path, env=env)
    home = tmp_path / "home"  # where a user would run it: not the checkout
    home.mkdir()
    gen = run([bin_dir / "pxby-edge", "generate", "--max-tokens", "400", "--out", home / "gen"], cwd=home, env=env)
    assert "with litert" in gen.stdout and gen.stderr == ""
    assert (home / "gen" / "text.txt").is_file() and (home / "gen" / "sprite.png").is_file()
    demo = run([bin_dir / "pxby-edge", "demo", "--max-tokens", "600", "--out", home / "demo"], cwd=home, env=env)
    assert "streamed with litert" in demo.stdout
    assert (home / "demo" / "handheld" / "screen.png").is_file() and (home / "demo" / "summary.json").is_file()
    where = run([bin_dir / "python", "-c", "import pxby_edge; print(pxby_edge.__file__)"], cwd=home, env=env)
    assert where.stdout.startswith(str(tmp_path / "venv"))  # the installed copy ran, not the checkout
