"""The Python device model and the C core answer alike, and a live handheld survives what used to kill it.

    .venv/bin/pytest tests/test_device_diff.py
    make -C firmware_bridge/firmware fuzz-device DEVICE_SEQUENCES=100000     # the long run

2,000 random and mutated CRC-valid frame sequences go through ``DeviceCore`` and through the C
core (``firmware/device_check.c``, one process for a batch): every reply byte, the screen, the
played samples, the counters and the rest of the state must agree, and no frame may fail inside
the Python handlers. The two sequences of issue 13 that killed ``pxby-edge handheld`` are replayed
against a live ``handheld --pty`` process, which must answer them and stay up.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

from firmware_bridge import difftest
from firmware_bridge import protocol as pr
from firmware_bridge.frame import Decoder, Message, encode

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed to build the C firmware core (apt-get install gcc make)")
    return difftest.build_driver(tmp_path_factory.mktemp("fw"))


def test_python_and_c_devices_agree_on_2000_sequences(driver):
    result = difftest.run(driver, 2000, seed=13)
    assert result["failure"] is None, result["failure"]
    assert result["sequences"] == 2000 and result["feeds"] > 30_000


def test_the_comparison_names_the_first_difference():
    lines = difftest.crash_traces()
    want, _ = difftest.replay_python(lines)
    got = list(want)
    got[3] = got[3][:-2] + "ff"
    assert "output line 3" in difftest.first_disagreement(lines, want, got)
    assert "python printed" in difftest.first_disagreement(lines, want, want[:-1])


def _answers(out_line: str) -> list[Message]:
    return [m for m in Decoder().feed(bytes.fromhex(out_line.removeprefix("out "))) if isinstance(m, Message)]


def test_crash_sequences_are_answered_alike(driver):
    lines = difftest.crash_traces()
    want, errors = difftest.replay_python(lines)
    assert errors == 0
    assert difftest.replay_c(driver, lines) == want
    # held seq 1, hole 0 refused: NAK(bad payload) without a SACK bit for the frame delivered next,
    # then seq 1 applied and acknowledged
    filled = _answers(want[2])
    nak = pr.unpack(pr.NAK, filled[0].payload)[0]
    assert (filled[0].type, nak["reason"], nak["sack"]) == (pr.NAK, pr.NAK_BAD_PAYLOAD, 0)
    assert filled[-1].type == pr.ACK and filled[-1].ack == 2
    # 300 samples from 0xFFFFFF00 wrap to 44; the credit wraps with them
    ack = pr.unpack(pr.ACK, _answers(want[10])[-1].payload)[0]
    assert ack["audio_next"] == 44 and ack["audio_limit"] == 44 + 4096 - 300


# -- a live handheld ---------------------------------------------------------------------------------


class LiveHandheld:
    """``pxby-edge handheld --pty`` in its own process, spoken to over its pty."""

    def __init__(self):
        cli = [sys.executable, "-c", "import sys; from pxby_edge import cli; sys.exit(cli.main())"]
        self.proc = subprocess.Popen([*cli, "handheld", "--pty", "--seconds", "120"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)
        first = self.proc.stdout.readline()
        assert first.startswith("port: "), first + self.proc.stderr.read()
        self.fd = os.open(first.split()[1], os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.decoder = Decoder(versions=(1, 255))
        self.got: list[Message] = []

    def send(self, msg: Message) -> None:
        os.write(self.fd, encode(msg))

    def wait_for(self, predicate, what: str, timeout_s: float = 20.0) -> Message:
        """The first answer (old or new) that ``predicate`` accepts, reading until it comes."""
        deadline = time.monotonic() + timeout_s
        while True:
            for m in self.got:
                if predicate(m):
                    self.got.remove(m)
                    return m
            assert self.proc.poll() is None, f"the handheld died: {self.proc.stderr.read()}"
            left = deadline - time.monotonic()
            assert left > 0, f"no answer: {what}"
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                self.got += [m for m in self.decoder.feed(os.read(self.fd, 4096)) if isinstance(m, Message)]

    def close(self) -> tuple[int, str]:
        os.close(self.fd)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


@pytest.mark.parametrize("name", sorted(difftest.crash_sequences()))
def test_live_handheld_survives_the_crash_sequences(name):
    messages = difftest.crash_sequences()[name]
    hello, tag = messages[0], messages[0].payload[2] | messages[0].payload[3] << 8
    dev = LiveHandheld()
    try:
        dev.send(hello)
        dev.wait_for(lambda m: m.type == pr.HELLO_ACK, "HELLO_ACK")
        for msg in messages[1:]:
            dev.send(msg)
        if name == "held_then_refused_hole":
            dev.wait_for(lambda m: m.type == pr.NAK and m.payload[2] == pr.NAK_BAD_PAYLOAD, "NAK(bad payload)")
            dev.wait_for(lambda m: m.type == pr.ACK and m.ack == 2, "ACK of both tiles frames")
        else:
            dev.wait_for(lambda m: m.type == pr.ACK and pr.unpack(pr.ACK, m.payload)[0]["audio_next"] == 44,
                         "ACK of the chunk across the wrap")
        # still up, still answering
        dev.send(Message(pr.PING, pr.pack(pr.PING, token=77), 0, pr.CH_CONTROL, 0, tag))
        dev.wait_for(lambda m: m.type == pr.PONG and m.payload == pr.pack(pr.PING, token=77), "PONG")
    finally:
        code, err = dev.close()
    assert code == 0 and "Traceback" not in err, err
