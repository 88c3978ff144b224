"""The shipped service: the systemd unit passes ``systemd-analyze verify`` and runs options `stream` has;
the udev rule parses and starts the unit for a handheld plugged in at any time.

    .venv/bin/python -m pytest tests/test_service.py
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "pxby-edge@.service"
RULE = ROOT / "deploy" / "99-pxby-handheld.rules"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def unit_value(key: str) -> str:
    lines = [ln.split("=", 1)[1] for ln in UNIT.read_text().splitlines() if ln.startswith(f"{key}=")]
    assert len(lines) == 1, f"{key} set {len(lines)} times"
    return lines[0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or not (SYSTEM_UNITS / "sysinit.target").is_file(),
                    reason="systemd-analyze and the system's units are not installed here (apt-get install systemd)")
def test_systemd_analyze_verify_passes_on_an_instance(tmp_path):
    # A root with the system's own units, the unit as the install step puts it, and an executable where
    # ExecStart looks (verify checks it); the instance is the kernel name udev passes (%k).
    (tmp_path / "usr" / "lib" / "systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, tmp_path / "usr" / "lib" / "systemd" / "system", symlinks=True)
    (tmp_path / "etc" / "systemd" / "system").mkdir(parents=True)
    shutil.copy(UNIT, tmp_path / "etc" / "systemd" / "system" / UNIT.name)
    exe = tmp_path / shlex.split(unit_value("ExecStart"))[0].lstrip("/")
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={tmp_path}", "pxby-edge@ttyACM0.service"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # verify only warns about a bad line; a warning is a failure here


def test_the_unit_runs_options_stream_has_and_no_hard_coded_user():
    from firmware_bridge.commands import stream

    text = UNIT.read_text()
    assert not re.search(r"^User=", text, re.M) and "/home/" not in text and "sh -c" not in text
    assert unit_value("DynamicUser") == "yes"
    args = shlex.split(unit_value("ExecStart").replace("%I", "ttyACM0"))
    assert Path(args[0]).name == "pxby-edge" and args[1] == "stream" and "--loop" in args
    ctx = stream.make_context("stream", args[2:])  # raises on an option stream does not have
    assert ctx.params["port"] == "/dev/ttyACM0" and ctx.params["loop"]
    assert unit_value("BindsTo") == "dev-%i.device" and unit_value("SupplementaryGroups") == "dialout"


RULE_TOKEN = re.compile(r'\s*([A-Z_]+(?:\{[^}]*\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)')
MATCH_KEYS = {"SUBSYSTEM", "ATTRS", "KERNEL", "ACTION"}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "TAG", "ENV", "OWNER"}


def parse_rule(line: str) -> list:
    """(key, operator, value) of one udev rule line, checked the way udev reads it."""
    pairs, pos = [], 0
    while pos < len(line):
        m = RULE_TOKEN.match(line, pos)
        assert m, f"cannot parse the rule at: {line[pos:]!r}"
        key, op, value = m.groups()
        base = key.split("{")[0]
        assert base in MATCH_KEYS | ASSIGN_KEYS, f"unknown key {key}"
        assert (op in ("==", "!=")) == (base in MATCH_KEYS and key != "ENV"), f"{key} with {op}"
        pairs.append((key, op, value))
        pos = m.end()
    return pairs


def test_the_job_keeps_an_ordinary_priority():
    # streaming a creature is no reason to run ahead of the rest of the Pi: a negative Nice takes from
    # everything else (sshd, the journal) whenever generation is busy
    assert int(unit_value("Nice")) >= 0


def test_the_udev_rule_names_the_handheld_and_wants_the_unit():
    lines = [ln for ln in RULE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    rule = {(k, op): v for k, op, v in parse_rule(lines[0])}
    assert rule[("SUBSYSTEM", "==")] == "tty"
    from firmware_bridge.ports import HANDHELD_PRODUCT

    # the handheld's own product string (the one `pxby-edge ports` marks), never a board's ids alone
    assert rule[("ATTRS{product}", "==")] == HANDHELD_PRODUCT
    assert not {k for k, _ in rule if k in ("ATTRS{idVendor}", "ATTRS{idProduct}")}
    firmware_docs = (ROOT / "firmware_bridge" / "firmware" / "README.md").read_text()
    assert f'iProduct "{HANDHELD_PRODUCT}"' in firmware_docs
    assert rule[("TAG", "+=")] == "systemd"  # without it systemd never sees the device, nor SYSTEMD_WANTS
    assert rule[("ENV{SYSTEMD_WANTS}", "+=")] == UNIT.name.replace("@.", "@%k.")
    assert rule[("GROUP", "=")] == "dialout"


@pytest.mark.parametrize("bad", ['SUBSYSTEM="tty"', 'TAG=="systemd"', 'SUBSYSTEM=="tty" GROUP="x"',
                                 'BOGUS=="1"', 'ENV{A}+="b", MODE=0660'])
def test_the_rule_parser_refuses_what_udev_would(bad):
    with pytest.raises(AssertionError):
        parse_rule(bad)


def test_loop_rounds_each_redraw_the_screen_and_pause_between():
    import numpy as np

    from firmware_bridge.device import DeviceCore
    from firmware_bridge.stream import Round, stream_rounds, synthetic_events
    from firmware_bridge.virtual import VirtualLine, VirtualLink

    device = DeviceCore()
    link = VirtualLink(device, VirtualLine(921600), seed=1, line_bps=92160).connect()
    pauses, made = [], []

    def make(k):
        made.append(k)
        return Round(synthetic_events(frames=1, size=8, audio_s=0.05, seed=k), 8000, None)

    rounds = list(stream_rounds(link, make, rounds=3, pause_s=2.5, sleep=pauses.append))
    assert made == [0, 1, 2] and [r["round"] for r in rounds] == [0, 1, 2]
    assert pauses == [2.5, 2.5]  # between rounds, not after the last
    assert all(r["commits"] > 0 and r["audio_samples"] > 0 for r in rounds)
    last = np.array(device.screen)
    # the last round alone, on a fresh device, draws the same screen: each round starts from a reset one
    fresh = DeviceCore()
    link2 = VirtualLink(fresh, VirtualLine(921600), seed=1, line_bps=92160).connect()
    list(stream_rounds(link2, lambda k: make(2), rounds=1))
    assert np.array_equal(last, fresh.screen)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed here (apt-get install systemd)")
def test_the_sandbox_scores_under_4_in_systemd_analyze_security(tmp_path):
    # --offline reads the file alone; the threshold is the one the reliability review set (8.3 before)
    unit = tmp_path / UNIT.name
    shutil.copy(UNIT, unit)
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout + proc.stderr)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) < 4.0, proc.stdout
    # the port is the only device: the dialout group alone would open every serial port
    assert unit_value("DevicePolicy") == "closed" and unit_value("DeviceAllow") == "/dev/%I rw"
    assert unit_value("PrivateNetwork") == "yes" and unit_value("RestrictAddressFamilies") == "AF_UNIX"
