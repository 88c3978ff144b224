"""``generate`` says nothing on stderr but its progress bar: LiteRT's XNNPACK notice is dropped at fd 2.

    .venv/bin/python -m pytest tests/test_quiet_stderr.py
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest
from conftest import read_pty

from pxby_edge.backends.litert import _DELEGATE_NOISE, _without_delegate_notice

pytest.importorskip("ai_edge_litert")

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it
CLI = [sys.executable, "-m", "pxby_edge.cli"]
GENERATE = ["generate", "--backend", "litert", "--max-tokens", "300", "--seed", "3", "--force"]


def test_generate_with_stderr_on_a_pipe_prints_nothing_there(tmp_path):
    proc = subprocess.run([*CLI, *GENERATE, "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "with litert" in proc.stdout  # the summary still goes to stdout


def test_generate_with_stderr_on_a_pty_shows_only_the_progress_bar(tmp_path):
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, *GENERATE, "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    err = read_pty(master)  # drained while the child runs: a full pty must not stall it
    os.close(master)
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert _DELEGATE_NOISE not in err
    # what is left once the bar's redraws are taken out: tqdm's lines start with its description
    bar = re.compile(rb"(\x1b\[[0-9;]*[A-Za-z])*generating")
    rest = [ln for ln in re.split(rb"[\r\n]+", err) if ln.strip() and not bar.match(ln)]
    assert rest == [], rest


def test_other_lines_pass_and_a_large_write_does_not_block(capfd):
    noise = _DELEGATE_NOISE + b"\n"
    other = b"W: a real warning\n" * 20000  # larger than any pipe or pty buffer
    with _without_delegate_notice():
        os.write(2, noise)
        os.write(2, other)
        os.write(2, noise)
    assert capfd.readouterr().err.encode() == other
