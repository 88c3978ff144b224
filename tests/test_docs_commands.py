"""Every `pxby-edge` command line in the docs runs as written on a fresh install.

    .venv/bin/python -m pytest tests/test_docs_commands.py            # the fast lines
    .venv/bin/python -m pytest -m slow tests/test_docs_commands.py    # all of them

The lines are read from the fenced ```sh blocks of README.md and docs/*.md (the lines that start with
`pxby-edge`) and run through bash, in order, one temporary folder per document: later blocks use the
files earlier ones wrote, as a reader following along would. HOME is a fresh folder for each block, so
alternative routes (docs/PI.md's 32-bit one repeats the demo into ~/pxby-out) each start from a clean
home. `pxby-edge` is this checkout's CLI; nothing is installed, downloaded or trained.

A line ending in `&` starts a server (a simulated handheld): it runs in the background until the document
is done, then gets Ctrl-C and must exit 0. A `stream` line with no handheld of the document running gets
a pty handheld started by the test, which `--port auto` finds (the handhelds announce themselves in a
private XDG_RUNTIME_DIR, so nothing else on the machine is picked up).

Lines that cannot run here are in SKIP with the reason; lines that take long are in SLOW and run only with
`-m slow`. An entry that matches no line of the docs fails the test, so neither list can go stale. Lines
that do not start with `pxby-edge` (make, pip, sudo, systemctl, scp) are set-up steps, not run here; the
indented blocks of docs/BENCHMARKS.md are records of the commands its figures came from (files built under
/tmp by the bench scripts), not instructions, and are not run either.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\s*$")
SHELL_FENCES = {"sh", "bash", "shell"}

# (document, the command as shlex reads it, comment dropped) -> why it does not run here
SKIP = {
    ("README.md", "pxby-edge train --data runs/synth --out runs/ckpt --config small"):
        "needs torch (the [train] extra) and minutes of training",
    ("README.md", "pxby-edge train --data runs/synth --out runs/big --config upstream --device cuda"):
        "needs a CUDA GPU",
    ("README.md", "pxby-edge quantize runs/ckpt -o model.tflite --report report.json"):
        "needs torch and the converters (the [quantize] extra) and the checkpoint `train` makes",
    ("README.md", "pxby-edge train --data runs/synth --out runs/q4 --config small --init runs/ckpt --qat int4"):
        "needs torch and the checkpoint the first `train` line makes (tests/test_train_qat.py runs --qat int4)",
    ("README.md", "pxby-edge quantize runs/q4 -o model4.tflite"):
        "needs the converters and the --qat int4 checkpoint (tests/test_train_qat.py quantizes one)",
}
# lines that run only with -m slow (over ~20 s on 2 shared cores between them)
SLOW = {
    ("README.md", "pxby-edge dataset synth --n 1500 --out runs/synth"): "1500 creatures: about 13 s",
    ("SYNTH.md", "pxby-edge dataset synth --n 1500 --out runs/synth1500 --seed 0"): "the same 1500 creatures",
    ("DEPLOY.md", "pxby-edge bench -r 3 --format md"): "every backend three times in fresh processes: about 20 s",
    ("DEPLOY.md", "pxby-edge bench --backend litert --kinds generate --threads 1,2,4 -r 5 --format md"):
        "15 fresh processes: about 15 s",
}
RUN_TIMEOUT_S = 240


@dataclass(frozen=True)
class DocLine:
    doc: str  # file name, as in SKIP
    block: int  # index of the fenced block in the document
    text: str  # the line as written (comment included)
    argv: tuple  # what shlex reads: comment dropped, quotes resolved

    @property
    def key(self) -> tuple:
        return (self.doc, " ".join(a for a in self.argv if a != "&"))

    @property
    def background(self) -> bool:
        return self.argv[-1] == "&"


def doc_lines(path: Path) -> list:
    """The `pxby-edge` lines of the shell blocks of one Markdown file, in order (continuations joined)."""
    lines, block, in_shell, fence_open = [], -1, False, False
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        fence = FENCE.match(raw.strip())
        if fence:
            fence_open = not fence_open
            in_shell = fence_open and fence.group(1) in SHELL_FENCES
            block += fence_open
            continue
        if not in_shell:
            continue
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        text, pending = pending.strip(), ""
        if text.startswith("pxby-edge"):
            lines.append(DocLine(path.name, block, text, tuple(shlex.split(text, comments=True))))
    return lines


ALL_LINES = {path.name: doc_lines(path) for path in DOCS}


def _environment(tmp: Path) -> dict:
    """PATH with a `pxby-edge` of this checkout first, a private runtime folder for handheld announcements."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "pxby-edge"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m pxby_edge.cli "$@"\n')
    shim.chmod(0o755)
    runtime = tmp / "run"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", XDG_RUNTIME_DIR=str(runtime))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env.pop("NO_COLOR", None)
    return env


class Session:
    """One document's run: its folder, its environment, the servers its `&` lines started."""

    def __init__(self, tmp: Path):
        self.cwd = tmp / "work"
        self.cwd.mkdir()
        self.env = _environment(tmp)
        self.homes = tmp / "homes"
        self.servers: list = []

    def home(self, block: int) -> dict:
        home = self.homes / f"block{block}"
        home.mkdir(parents=True, exist_ok=True)
        return dict(self.env, HOME=str(home))

    def start(self, command: str, env: dict) -> None:
        """Start a server line (without its `&`) and wait for its `port:` line, so the next line finds it."""
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.servers.append((command, proc))
        first = proc.stdout.readline()
        assert first.startswith("port: "), f"{command!r} printed {first!r}; stderr: {proc.stderr.read()}"

    def run(self, line: DocLine, env: dict) -> None:
        command = line.text
        proc = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
        assert proc.returncode == 0, f"{line.doc}: `{command}` exited {proc.returncode}:\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr

    def stop_servers(self) -> None:
        """Ctrl-C every server (a handheld saves its capture then) and check that each ended cleanly."""
        failures = []
        for command, proc in self.servers:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                failures.append(f"`{command}` exited {proc.returncode}: {err}")
        self.servers = []
        assert not failures, failures


def _needs_handheld(line: DocLine) -> bool:
    return line.argv[1:2] == ("stream",) and "--port" not in line.argv and "--synthetic" not in line.argv


def run_document(name: str, tmp: Path, *, with_slow: bool) -> list:
    """Run the document's lines in order; returns the keys that were run."""
    session = Session(tmp)
    ran = []
    try:
        for line in ALL_LINES[name]:
            if line.key in SKIP or (line.key in SLOW and not with_slow):
                continue
            env = session.home(line.block)
            if line.background:
                session.start(shlex.join(line.argv[:-1]), env)
            elif _needs_handheld(line) and not session.servers:
                session.start("pxby-edge handheld --pty", env)
                session.run(line, env)
            else:
                session.run(line, env)
            ran.append(line.key)
        session.stop_servers()
    finally:
        for _, proc in session.servers:
            proc.kill()
            proc.communicate()
    return ran


DOCS_WITH_LINES = [name for name, lines in ALL_LINES.items() if lines]


@pytest.mark.parametrize("name", DOCS_WITH_LINES)
def test_doc_command_lines_run_as_written(name, tmp_path):
    ran = run_document(name, tmp_path, with_slow=False)
    expected = [ln.key for ln in ALL_LINES[name] if ln.key not in SKIP and ln.key not in SLOW]
    assert ran == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in DOCS_WITH_LINES if any(k[0] == n for k in SLOW)])
def test_doc_command_lines_run_as_written_slow_ones_included(name, tmp_path):
    ran = run_document(name, tmp_path, with_slow=True)
    assert ran == [ln.key for ln in ALL_LINES[name] if ln.key not in SKIP]


def test_every_skipped_or_slow_entry_names_a_line_of_the_docs():
    keys = {ln.key for lines in ALL_LINES.values() for ln in lines}
    stale = [key for key in (*SKIP, *SLOW) if key not in keys]
    assert stale == [], f"no such line in the docs (update SKIP/SLOW): {stale}"


def test_the_readme_has_command_lines_to_run():
    """The extraction itself: the README's command block is found, comments and the `&` are understood."""
    lines = ALL_LINES["README.md"]
    assert ("README.md", "pxby-edge inspect") in [ln.key for ln in lines]
    servers = [ln for ln in lines if ln.background]
    assert [ln.argv[:2] for ln in servers] == [("pxby-edge", "handheld")]
