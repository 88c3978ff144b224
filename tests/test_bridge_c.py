"""The C firmware core agrees with the Python codec on every shared vector, and its unit tests pass.

    .venv/bin/pytest tests/test_bridge_c.py

Builds with gcc through the firmware Makefile; skips (saying why) where gcc or make is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from firmware_bridge import vectors
from firmware_bridge.frame import Decoder

FIRMWARE = Path(vectors.__file__).resolve().parent / "firmware"


def test_committed_vectors_and_header_are_current():
    assert vectors.VECTOR_FILE.read_text() == vectors.vector_text(), "run `python -m firmware_bridge.vectors --write`"
    assert vectors.HEADER_FILE.read_text() == vectors.vector_text.__globals__["pr"].c_header()


def test_python_decodes_every_vector_as_recorded():
    cases = 0
    for block in vectors.VECTOR_FILE.read_text().split("vector ")[1:]:
        lines = block.splitlines()
        stream = bytes.fromhex(lines[1].removeprefix("stream "))
        want = [ln.removeprefix("expect ") for ln in lines[2:] if ln.startswith("expect ")]
        assert [vectors.describe(x) for x in Decoder().feed(stream)] == want, lines[0]
        cases += 1
    assert cases >= 40


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed to build the C firmware core (apt-get install gcc make)")
    build = tmp_path_factory.mktemp("fw")
    run = subprocess.run(["make", "-s", "-C", str(FIRMWARE), f"BUILD={build}", "CC=gcc",
                          f"{build}/test_core", f"{build}/vector_check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return build


def test_c_unit_tests(built):
    run = subprocess.run([str(built / "test_core")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failures" in run.stdout


def test_c_decodes_every_vector_as_python(built):
    text = vectors.VECTOR_FILE.read_text()
    run = subprocess.run([str(built / "vector_check")], input=text, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    want = [ln.removeprefix("expect ") for ln in text.splitlines() if ln.startswith(("vector ", "expect ", "end"))]
    assert run.stdout.splitlines() == want
