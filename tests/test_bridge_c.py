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
from firmware_bridge.difftest import replay_python
from firmware_bridge.frame import Decoder

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

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
        assert [vectors.expect_line(x) for x in Decoder().feed(stream)] == want, lines[0]
        cases += 1
    assert cases >= 40


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed to build the C firmware core (apt-get install gcc make)")
    build = tmp_path_factory.mktemp("fw")
    run = subprocess.run(["make", "-s", "-j2", "-C", str(FIRMWARE), f"BUILD={build}", "CC=gcc",
                          f"{build}/test_core", f"{build}/vector_check", f"{build}/device_check"],
                         capture_output=True, text=True)
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


class Recorder:
    """A DeviceCore that also writes down every byte and tick it gets, for a replay in C."""

    def __init__(self, device):
        self.device = device
        self.lines: list[str] = []

    def feed(self, data, now_ms):
        self.lines.append(f"at {now_ms} {bytes(data).hex()}")
        self.device.feed(data, now_ms)

    def tick(self, now_ms):
        self.lines.append(f"at {now_ms}")
        self.device.tick(now_ms)

    def take_output(self):
        return self.device.take_output()


def test_c_device_behaves_as_python_device(built):
    """A faulty streaming session recorded from the Python device, replayed into the C core: every
    reply byte, the screen, the played audio and the counters must agree."""
    from firmware_bridge.device import DeviceCore
    from firmware_bridge.stream import Streamer, synthetic_events
    from firmware_bridge.virtual import VirtualLine, VirtualLink

    build = built
    rec = Recorder(DeviceCore())
    link = VirtualLink(rec, VirtualLine(921600, seed=4, corrupt=0.005, drop=0.002), seed=2, max_payload=120,
                       line_bps=92160).connect()
    streamer = Streamer(link, audio_rate=8000)
    for event in synthetic_events(frames=2, size=8, audio_s=0.25, seed=1):
        streamer.feed(event)
    streamer.finish(timeout_s=120)
    link.wait(lambda: rec.device.fill == 0 and not rec.device.playing, 10, "playing out")
    want, errors = replay_python(rec.lines)
    assert errors == 0
    got = subprocess.run([str(build / "device_check")], input="\n".join(rec.lines) + "\n", capture_output=True,
                         text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    got_lines = got.stdout.splitlines()
    assert len(got_lines) == len(want)
    for i, (g, w) in enumerate(zip(got_lines, want)):
        assert g == w, f"line {i}: input {rec.lines[i] if i < len(rec.lines) else 'end'}"
    assert int(want[-3].split()[1]) > 300  # the session did play sound


def test_an_install_without_the_c_sources_says_so(tmp_path, capsys):
    """A wheel missing the firmware folder gets a typed one-line error, not 'stale' or a traceback."""
    from firmware_bridge.errors import FirmwareSourcesMissing

    with pytest.raises(FirmwareSourcesMissing, match="not in this install"):
        vectors.firmware_sources(tmp_path)
    assert vectors.firmware_sources() == FIRMWARE


def test_the_wheel_ships_every_firmware_file_the_code_reads():
    tomllib = pytest.importorskip("tomllib")
    import fnmatch

    root = FIRMWARE.parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = patterns["firmware_bridge"]
    needed = [vectors.VECTOR_FILE, vectors.HEADER_FILE, *FIRMWARE.glob("*.c"), *FIRMWARE.glob("*.h"),
              FIRMWARE / "Makefile"]
    for path in needed:
        rel = path.relative_to(FIRMWARE.parent).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in shipped), rel
