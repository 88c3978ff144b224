"""`pxby-edge generate` shows what it made and never collides with an earlier run (issue 22 items 1-3).

    .venv/bin/python -m pytest tests/test_generate_shows.py

The text on stdout, on a terminal a preview of the sprite's first frame (24-bit colour, 256 colours, or
plain shades under NO_COLOR), the cry's length and the seed; without --out each run writes a new
pxby-out/run-N; without --seed a random seed, printed; the model and the prompt are checked before the
output folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
from conftest import read_pty

from pxby_edge.cli import main
from pxby_edge.preview import COLOR256, PLAIN, TRUECOLOR, colour_depth, cube_index, preview

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.pi
FAST = ["--backend", "numpy", "--max-tokens", "1200"]


def test_runs_without_out_go_to_new_folders_with_their_text_and_seed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seeds = []
    for k in (1, 2):
        assert main(["generate", *FAST]) == 0
        out = capsys.readouterr().out
        text = (tmp_path / "pxby-out" / f"run-{k}" / "text.txt").read_text()
        assert out.splitlines()[0] == text  # the text first, on stdout
        seeds.append(int(re.search(r"seed (\d+) \(--seed \1 makes it again\)", out).group(1)))
        assert f"wrote pxby-out/run-{k}/: text.txt, sprite.png, sprite.gif" in out
    assert seeds[0] != seeds[1]  # drawn at random (equal once in 2**31 runs)
    # the printed seed makes the same creature again
    assert main(["generate", *FAST, "--seed", str(seeds[0]), "-o", "again"]) == 0
    capsys.readouterr()
    assert (tmp_path / "again" / "tokens.npz").read_bytes() != b""
    assert np.array_equal(np.load(tmp_path / "again" / "tokens.npz")["tokens"],
                          np.load(tmp_path / "pxby-out" / "run-1" / "tokens.npz")["tokens"])


def test_json_has_the_text_and_the_seed_and_quiet_says_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", *FAST, "--seed", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 3 and summary["out_dir"] == str(Path("pxby-out") / "run-1")
    assert summary["text"] == (tmp_path / "pxby-out" / "run-1" / "text.txt").read_text()
    assert main(["generate", *FAST, "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "pxby-out" / "run-2" / "tokens.npz").is_file()


def test_an_explicit_out_still_needs_force_but_inputs_are_checked_first(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["generate", *FAST, "--seed", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["generate", *FAST, "--out", str(out)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "nope.tflite"), "--out", str(out)]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert main(["generate", *FAST, "--prompt", "€€€", "--out", str(out)]) == 2
    assert "no character the vocabulary can encode" in capsys.readouterr().err
    assert main(["generate", *FAST, "--seed", "1", "--out", str(out), "--force"]) == 0


def _on_a_terminal(args, cwd, **env) -> str:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLORTERM")}
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "pxby_edge.cli", *args], cwd=cwd, env={**environ, **env},
                            stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = read_pty(master)
    os.close(master)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.decode()


@pytest.mark.parametrize(("env", "mark"), [({"COLORTERM": "truecolor"}, "\x1b[38;2;"), ({}, "\x1b[38;5;"),
                                           ({"NO_COLOR": "1"}, None)], ids=["24-bit", "256", "NO_COLOR"])
def test_on_a_terminal_the_sprite_is_previewed(env, mark, tmp_path):
    out = _on_a_terminal(["generate", *FAST, "--seed", "2", "--width", "24", "--height", "24"], tmp_path, **env)
    lines = out.replace("\r", "").splitlines()
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", ln) for ln in lines]
    picture = [ln for ln in plain if ln and set(ln) <= set("▀ ░▒▓█")]
    assert len(picture) == 12 and all(len(ln) == 24 for ln in picture)  # 24x24 pixels, two rows a line
    if mark is None:
        assert "\x1b[" not in out
    else:
        assert mark in out and "▀" in out


def test_preview_depths_and_width():
    rgb = np.zeros((5, 200, 3), dtype=np.int64)
    rgb[:, :, 0] = 255
    assert colour_depth(True) == PLAIN
    assert colour_depth(False, {"COLORTERM": "truecolor"}) == TRUECOLOR and colour_depth(False, {}) == COLOR256
    assert int(cube_index(np.array([255, 0, 0]))) == 196 and int(cube_index(np.array([0, 0, 0]))) == 16
    for depth in (TRUECOLOR, COLOR256, PLAIN):
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln) for ln in preview(rgb, depth, columns=80).splitlines()]
        assert len(lines) == 1 and all(len(ln) == 67 for ln in lines)  # every 3rd pixel: 200 -> 67 columns


def test_a_sprite_too_wide_for_an_image_file_is_one_error_not_a_crash(tmp_path):
    from pxby_edge.errors import MediaError
    from pxby_edge.media import MAX_IMAGE_SIDE, write_gif
    from pxby_edge.vocab import Vocab

    wide = np.zeros((1, MAX_IMAGE_SIDE // 4 + 1), dtype=np.int64)  # what --unbounded --height 1 once made
    with pytest.raises(MediaError, match="more than the 65535 pixels a side"):
        write_gif(tmp_path / "s.gif", [wide], Vocab().palette_array(), 4)
    assert not (tmp_path / "s.gif").exists()
