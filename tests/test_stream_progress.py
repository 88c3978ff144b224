"""`stream` on a terminal: one live line, then a round's summary in plain words; --loop counts per round, each with
its seed (issue 22 item 4).

    .venv/bin/python -m pytest tests/test_stream_progress.py
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import read_pty

from firmware_bridge.commands import round_words
from firmware_bridge.link import Link
from firmware_bridge.stream import Round, stream_needs, stream_rounds, synthetic_events

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.pi, pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX ptys")]


def test_loop_rounds_count_their_own_frames_and_bytes(running_simulator):
    sim = running_simulator()
    rnd = lambda k: Round(synthetic_events(frames=2, size=8, audio_s=0.1, seed=1), 8000, None)  # noqa: E731
    with Link(sim.transport.path, 921600, need=stream_needs()).connect() as link:
        rounds = list(stream_rounds(link, rnd, rounds=3))
        total = dict(link.session.counters)
    for key in ("frames_sent", "bytes_sent", "commits", "tiles_sent"):
        assert all(r[key] > 0 for r in rounds), key
    # the same creature each round: the link's counters are per round, as the streamer's are, and add up
    for key in ("bytes_sent", "frames_sent"):  # what the rounds leave out is the handshake before the first
        assert 0 <= total[key] - sum(r[key] for r in rounds) < rounds[0][key], key
    assert rounds[2]["frames_sent"] < 2 * rounds[0]["frames_sent"]


def test_a_round_in_plain_words():
    stats = {"round": 1, "seed": 77, "text": "a blue creature", "port": "/dev/pts/3", "tiles_sent": 614,
             "commits": 83, "audio_samples": 4096, "bytes_sent": 18503, "frames_sent": 268, "retransmits": 0,
             "reconnects": 1}
    assert round_words(stats, loop=True) == (
        'round 2 (seed 77): sent "a blue creature" to /dev/pts/3: 614 tiles in 83 screen updates, 4,096 audio '
        "samples; 18,503 bytes in 268 frames, 1 reconnect")
    assert round_words(dict(stats, reconnects=0), loop=False).startswith('seed 77: sent "a blue creature"')
    assert round_words(dict(stats, reconnects=0), loop=False).endswith("nothing resent")


def _stream(args, *, stderr_on_pty: bool) -> tuple[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    master, slave = pty.openpty() if stderr_on_pty else (None, None)
    proc = subprocess.Popen([sys.executable, "-m", "pxby_edge.cli", "stream", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=slave if stderr_on_pty else subprocess.PIPE)
    if stderr_on_pty:
        os.close(slave)
        err = read_pty(master).decode()
        os.close(master)
        out, _ = proc.communicate(timeout=120)
    else:
        out, err = proc.communicate(timeout=120)
        err = err.decode()
    assert proc.returncode == 0, err
    return out.decode(), err


def test_on_a_terminal_a_live_line_moves_then_the_summary(running_simulator):
    sim = running_simulator()
    out, err = _stream(["--synthetic", "--seed", "5", "--port", sim.transport.path], stderr_on_pty=True)
    lines = [ln for ln in re.split(r"\r", err) if "tiles" in ln]
    assert len(lines) >= 2 and len(set(lines)) >= 2  # redrawn as the round goes, not printed once
    first = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", lines[0])
    assert first.startswith(f"{sim.transport.path}  tiles ") and "retransmits " in first
    assert err.rstrip().endswith("\x1b[K")  # wiped before the summary
    assert out.startswith(f'seed 5: sent "a test sprite" to {sim.transport.path}: ')
    # stderr not a terminal: no line at all; --json: one object a round, with the text and the seed
    out, err = _stream(["--synthetic", "--seed", "5", "--port", sim.transport.path, "--json"], stderr_on_pty=False)
    assert err == "" and json.loads(out)["seed"] == 5 and json.loads(out)["text"] == "a test sprite"
