"""The `pxby-edge` group's own options: --quiet, -v, NO_COLOR, and shell completion.

    .venv/bin/python -m pytest tests/test_cli_global_options.py

stderr goes to a pty where it matters: progress bars and colour are drawn only for a terminal, so a pipe
alone would let a bar or a colour code through unseen.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from conftest import read_pty

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "pxby_edge.cli"]
pytestmark = [pytest.mark.pi, pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX ptys")]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def run_with_stderr_on_a_pty(args, cwd: Path, **env) -> tuple:
    """(exit status, stdout bytes, stderr bytes) with stderr on a terminal, stdout on a pipe."""
    master, slave = pty.openpty()
    # a new pty is 0x0, and tqdm draws a 0-column bar as nothing: give it a terminal's size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([*CLI, *args], cwd=cwd, env=_env(**env), stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    err = read_pty(master)  # drained while the child runs: a full pty must not stall it
    os.close(master)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out, err


GENERATE = ["generate", "--backend", "numpy", "--max-tokens", "600", "--seed", "3"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_generate_quiet_prints_nothing_at_all(where, tmp_path):
    """--quiet before the command's name (the group's option) or after it (the command's) is the same."""
    args = ["--quiet", *GENERATE, "--out", "q"] if where == "before" else [*GENERATE, "--quiet", "--out", "q"]
    rc, out, err = run_with_stderr_on_a_pty(args, tmp_path)
    assert rc == 0, err
    assert (out, err) == (b"", b"")
    assert (tmp_path / "q" / "tokens.npz").is_file()  # quiet, not idle


def test_generate_without_quiet_shows_its_bar_and_summary(tmp_path):
    """The counterpart of the quiet test: the same run does print when not asked to be quiet."""
    rc, out, err = run_with_stderr_on_a_pty([*GENERATE, "--out", "loud"], tmp_path)
    assert rc == 0, err
    assert b"generating" in err
    assert b"tokens in" in out and b"wrote loud" in out


def test_quiet_still_prints_errors_and_json(tmp_path):
    rc, out, err = run_with_stderr_on_a_pty(["-q", *GENERATE, "--out", "q", "--json"], tmp_path)
    assert rc == 0 and out.startswith(b"{") and err == b""
    rc, out, err = run_with_stderr_on_a_pty(["-q", *GENERATE, "--out", "q"], tmp_path)  # outputs exist now
    assert rc == 2
    assert err.startswith(b"\x1b[31m\x1b[1merror:\x1b[0m ") and b"already exists" in err and b"\n" not in err.rstrip()


def test_no_color_drops_the_colour_of_the_error_line(tmp_path):
    rc, _, err = run_with_stderr_on_a_pty(["inspect", "missing.tflite"], tmp_path, NO_COLOR="1")
    assert rc == 2
    assert err.startswith(b"error: ") and b"\x1b" not in err
    rc, _, err = run_with_stderr_on_a_pty(["inspect", "missing.tflite"], tmp_path, NO_COLOR="")  # empty: unset
    assert rc == 2 and err.startswith(b"\x1b[31m")


def test_an_error_on_a_pipe_has_no_colour_codes(tmp_path):
    proc = subprocess.run([*CLI, "inspect", "missing.tflite"], cwd=tmp_path, env=_env(), capture_output=True)
    assert proc.returncode == 2 and proc.stderr.startswith(b"error: ")


def test_verbose_error_adds_the_traceback_and_plain_error_does_not(tmp_path):
    args = ["inspect", "missing.tflite"]
    plain = subprocess.run([*CLI, *args], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    verbose = subprocess.run([*CLI, "-v", *args], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert plain.returncode == verbose.returncode == 2
    assert "Traceback" not in plain.stderr and plain.stderr.count("\n") == 1
    assert verbose.stderr.startswith("Traceback") and verbose.stderr.splitlines()[-1] == plain.stderr.strip()
    usage = subprocess.run([*CLI, "-v", "generate", "--seed", "-1"], cwd=tmp_path, env=_env(), capture_output=True,
                           text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("error: Invalid value for '--seed'")
    assert "Traceback" not in usage.stderr  # the user's mistake, not a bug: one line even with -v


def test_quiet_and_verbose_together_is_a_usage_error(tmp_path):
    proc = subprocess.run([*CLI, "-q", "-v", "inspect"], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: give --quiet or -v, not both (see pxby-edge --help)"
    proc = subprocess.run([*CLI, "inspect", "-q", "-v"], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: give --quiet or -v, not both (see pxby-edge inspect --help)"


def test_bench_quiet_drops_its_progress_lines_not_its_table(tmp_path):
    args = ["bench", "--backend", "numpy", "--kinds", "step", "--tokens", "16", "--no-onnx-int8", "--inline",
            "-o", "md"]
    loud = subprocess.run([*CLI, *args], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    quiet = subprocess.run([*CLI, "-q", *args], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=120)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "measuring numpy" in loud.stderr
    assert quiet.stderr == ""
    assert quiet.stdout.startswith("| configuration |")


def test_shell_completion_completes_commands_and_options(tmp_path):
    """What the README's `eval "$(_PXBY_EDGE_COMPLETE=bash_source pxby-edge)"` line sets up."""
    source = subprocess.run([*CLI], cwd=tmp_path, env=_env(_PXBY_EDGE_COMPLETE="bash_source"),
                            capture_output=True, text=True)
    assert "_pxby_edge_completion()" in source.stdout and "complete " in source.stdout
    words = subprocess.run([*CLI], cwd=tmp_path, capture_output=True, text=True,
                           env=_env(_PXBY_EDGE_COMPLETE="bash_complete", COMP_WORDS="pxby-edge gen", COMP_CWORD="1"))
    assert words.stdout.split() == ["plain,generate"]
    options = subprocess.run([*CLI], cwd=tmp_path, capture_output=True, text=True,
                             env=_env(_PXBY_EDGE_COMPLETE="bash_complete", COMP_WORDS="pxby-edge generate --fr",
                                      COMP_CWORD="2"))
    assert options.stdout.split() == ["plain,--frames"]
    assert '_PXBY_EDGE_COMPLETE=bash_source pxby-edge' in (ROOT / "README.md").read_text(encoding="utf-8")
