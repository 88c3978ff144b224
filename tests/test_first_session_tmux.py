"""A first session in an 80x24 terminal, driven through tmux (issue 22, done-when).

    .venv/bin/python -m pytest tests/test_first_session_tmux.py

`generate` twice without --out (both succeed, the text and the sprite's preview on screen), `handheld --tty` in
one window and `stream` in another (the picture fits the 80x24 window, the stream's live line moves), and a bare
`pxby-edge` (its help). tmux runs on a private socket and is killed at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.pi, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")]


class Tmux:
    def __init__(self, workdir: Path):
        self.socket = f"pxby-first-{os.getpid()}"
        bin_dir = workdir / "bin"
        bin_dir.mkdir()
        exe = bin_dir / "pxby-edge"  # the command as a user types it, running this checkout
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pxby_edge.cli "$@"\n')
        exe.chmod(0o755)
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.env = (f"env -u NO_COLOR COLORTERM=truecolor TERM=xterm-256color PYTHONPATH={path} "
                    f"PATH={bin_dir}:{os.environ['PATH']}")
        self.workdir = workdir
        self.tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "first", "-c", str(workdir),
                  f"{self.env} sh")

    def tmux(self, *args) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "-f", os.devnull, *args], check=True, capture_output=True,
                              text=True, timeout=30).stdout

    def window(self, name: str) -> None:
        self.tmux("new-window", "-d", "-n", name, "-c", str(self.workdir), f"{self.env} sh")
        self.tmux("resize-window", "-t", f"first:{name}", "-x", "80", "-y", "24")

    def type(self, target: str, line: str) -> None:
        self.tmux("send-keys", "-t", target, line, "Enter")

    def screen(self, target: str, history: int = 0) -> list[str]:
        """The pane's lines as shown (and ``history`` lines scrolled off above them)."""
        return self.tmux("capture-pane", "-p", "-t", target, "-S", str(-history)).splitlines()

    def wait_for(self, target: str, pattern: str, timeout_s: float = 90.0) -> list[str]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            screen = self.screen(target)
            if re.search(pattern, "\n".join(screen)):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never showed in {target}:\n" + "\n".join(self.screen(target)))

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def _picture_rows(screen: list[str]) -> list[str]:
    return [ln.rstrip() for ln in screen if "▀" in ln]


def test_a_first_session_in_80x24(tmp_path):
    t = Tmux(tmp_path)
    try:
        # generate twice, no --out: two folders, each run's text and preview on screen
        for k in (1, 2):
            t.type("first:0", "clear; pxby-edge generate")
            screen = t.wait_for("first:0", rf"wrote pxby-out/run-{k}/")
            text = (tmp_path / "pxby-out" / f"run-{k}" / "text.txt").read_text()
            assert text[:60] in "\n".join(screen)
            picture = _picture_rows(screen)
            assert len(picture) == 12 and {len(ln) for ln in picture} == {24}  # 24x24 sprite: 12 lines of 24
            assert "error" not in "\n".join(screen)
        # the handheld in its own window, then a stream from a third
        t.window("handheld")
        t.type("first:handheld", "pxby-edge handheld --tty")
        port = re.search(r"port: (\S+)", "\n".join(t.wait_for("first:handheld", r"port: /dev/\S+"))).group(1)
        t.window("stream")
        # A 3 s cry plays in real time on the handheld, so the stream lasts that long whatever the model
        # (the bundled one's own cry took about 1 s, short enough to slip between two captures on a busy machine).
        t.type("first:stream", f"clear; pxby-edge stream --port {port} --seed 4 --audio-seconds 3")
        seen, end = set(), time.monotonic() + 90
        while time.monotonic() < end:
            screen = t.screen("first:stream")
            live = [ln.strip() for ln in screen if ln.startswith(f"{port}  tiles ")]
            seen.update(live)
            if any(ln.startswith("seed 4: sent ") for ln in screen):
                break
            time.sleep(0.05)
        assert len(seen) >= 2, seen  # the live line moved
        assert all(len(ln) <= 80 for ln in seen)
        screen = t.wait_for("first:handheld", "▀")
        time.sleep(1.0)  # the last commit drawn
        picture = _picture_rows(t.screen("first:handheld"))
        assert len(picture) == 24 and {len(ln) for ln in picture} == {53}  # 1/3 scale: all of it, in 80x24
        # a bare pxby-edge: its help, laid out
        t.type("first:0", "clear; pxby-edge")
        t.wait_for("first:0", r"Commands:")
        screen = t.screen("first:0", history=40)  # the help is longer than 24 lines: its start scrolled up
        assert any(ln.startswith("Usage: pxby-edge [OPTIONS] COMMAND") for ln in screen)
        assert any(ln.strip().startswith("generate") for ln in screen)
        assert not any(ln.startswith("error:") for ln in screen)
    finally:
        t.close()
