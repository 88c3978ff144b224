"""Finding the handheld: ``pxby-edge ports``, ``--port auto`` against a pty and a socket:// handheld,
the announcement registry, and port errors chosen by errno.

    .venv/bin/python -m pytest tests/test_ports.py
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st
from serial.tools.list_ports_common import ListPortInfo

from firmware_bridge import ports
from firmware_bridge.errors import PortError
from pxby_edge import cli

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "import sys; from pxby_edge import cli; sys.exit(cli.main())"]
pytestmark = [pytest.mark.pi, pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX ptys")]


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    """A private runtime folder for this test (inherited by the handhelds it starts)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return ports.registry_dir()


@pytest.fixture
def no_usb(monkeypatch):
    """This machine's own serial ports left out, so what auto finds is only what the test starts."""
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])


def start_handheld(*args) -> tuple:
    """A `pxby-edge handheld` process and the port it printed (read before any stream starts)."""
    proc = subprocess.Popen([*CLI, "handheld", *args, "--seconds", "120"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    assert line.startswith("port: "), proc.stderr.read() if proc.poll() is not None else line
    return proc, line.split(" ", 1)[1].strip()


def stop(proc) -> str:
    proc.terminate()  # SIGTERM: the simulator stops between steps and prints its counters
    out, _ = proc.communicate(timeout=60)
    return out


@pytest.mark.parametrize("where", [["--pty"], ["--port", "socket://127.0.0.1:0"]], ids=["pty", "socket"])
def test_ports_and_auto_find_a_running_handheld(where, registry, no_usb, capsys):
    proc, url = start_handheld(*where)
    try:
        assert cli.main(["ports", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert {"device": url, "hwid": ports.ANNOUNCED, "handheld": True}.items() <= listed[0].items()
        assert ports.resolve_port("auto") == url
        assert cli.main(["stream", "--synthetic", "--json"]) == 0  # --port auto is the default
        sent = json.loads(capsys.readouterr().out)
        assert sent["round"] == 0 and sent["commits"] > 0 and sent["audio_samples"] > 0
    finally:
        counters = stop(proc)
    assert "commits" in counters and "frames ok 0," not in counters
    assert list(registry.glob("*.json")) == []  # the announcement goes with the handheld


def test_auto_with_no_handheld_lists_the_candidates(registry, monkeypatch, capsys):
    other = ListPortInfo("/dev/ttyUSB7")
    other.vid, other.pid, other.description = 0x0403, 0x6001, "FT232R USB UART"
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [other])
    assert cli.main(["stream", "--synthetic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no handheld found (serial ports: /dev/ttyUSB7)")


def test_auto_refuses_to_choose_between_two_handhelds(registry, monkeypatch):
    board = ListPortInfo("/dev/ttyACM0")
    board.vid, board.pid, board.description = 0x2E8A, 0x000A, "Board CDC"  # a Pico running something else
    named = ListPortInfo("/dev/ttyACM1")
    named.product = "PXBY handheld"
    other = ListPortInfo("/dev/ttyACM2")
    other.vid, other.pid, other.product = 0x2E8A, 0x000A, ports.HANDHELD_PRODUCT
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [board, named, other])
    assert [(p.hwid, p.handheld) for p in ports.list_handheld_ports()] == [("2E8A:000A", False), ("", True),
                                                                            ("2E8A:000A", True)]
    with pytest.raises(PortError, match=r"several handhelds found \(/dev/ttyACM1, /dev/ttyACM2\)"):
        ports.resolve_port("auto")
    assert ports.resolve_port("/dev/ttyACM1") == "/dev/ttyACM1"


def test_stale_and_foreign_announcements_are_not_believed(registry):
    registry.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (registry / "1.json").write_text(json.dumps({"url": "/dev/pts/99", "pid": int(dead.stdout)}))
    (registry / "2.json").write_text("{not json")
    (registry / "3.json").write_text(json.dumps({"url": ["x"], "pid": os.getpid()}))
    (registry / "4.json").write_text(json.dumps({"url": "/dev/pts/5", "pid": True}))
    assert ports.announced() == []
    with ports.announce("socket://127.0.0.1:7") as path:
        assert path.parent == registry
        assert [p.device for p in ports.announced()] == ["socket://127.0.0.1:7"]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_any_announcement_bytes_give_a_live_port_or_nothing(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("reg") / "x.json"
    path.write_bytes(data)
    port = ports._read_announcement(path)
    assert port is None or (port.handheld and port.device.isprintable())


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_permission_errors_give_the_dialout_hint_by_errno(code, monkeypatch, capsys):
    def refuse(url, **kw):  # what pyserial raises for a tty the user may not open, with the number set
        raise serial.SerialException(code, f"could not open port {url}: [Errno {code}] refused")

    monkeypatch.setattr(serial, "serial_for_url", refuse)
    assert cli.main(["stream", "--synthetic", "--port", "/dev/ttyACM0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: permission denied on /dev/ttyACM0: add your user to the dialout group")
    assert err.count("\n") == 1


def test_errno_is_read_through_a_wrapped_error():
    # pyserial's socket:// handler raises its own error inside ``except``: the refusal's number is only
    # on the error it was raised from
    exc = serial.SerialException("Could not open port socket://x:1: [Errno 111] Connection refused")
    exc.__context__ = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert "nobody listens at socket://x:1" in str(ports.port_error("socket://x:1", exc))
    text_only = serial.SerialException("Permission denied: but no number")
    assert "dialout" not in str(ports.port_error("/dev/ttyS1", text_only))


def _tmp_registry(tmp_path, monkeypatch) -> Path:
    """The fallback registry (no XDG_RUNTIME_DIR) under a private temp folder standing in for /tmp."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(ports.tempfile, "gettempdir", lambda: str(tmp_path))
    return tmp_path / f"pxby-edge-{os.getuid()}"


def test_the_fallback_registry_is_made_private(tmp_path, monkeypatch):
    base = _tmp_registry(tmp_path, monkeypatch)
    with ports.announce("socket://127.0.0.1:1") as path:
        assert path.parent == base / "pxby-edge" / "handhelds"
        for level in (base, base / "pxby-edge", base / "pxby-edge" / "handhelds"):
            assert stat.S_IMODE(os.lstat(level).st_mode) == 0o700, level


@pytest.mark.parametrize("plant", ["file", "link-base", "link-handhelds"])
def test_a_planted_registry_is_refused_and_never_followed(tmp_path, monkeypatch, plant):
    base = _tmp_registry(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    if plant == "file":
        base.write_text("taken")
    elif plant == "link-base":
        base.symlink_to(elsewhere)
    else:
        (base / "pxby-edge").mkdir(mode=0o700, parents=True)
        base.chmod(0o700)
        (base / "pxby-edge" / "handhelds").symlink_to(elsewhere)
    with pytest.raises(PortError, match="not a private folder of this user"):
        with ports.announce("socket://127.0.0.1:1"):
            pass
    assert list(elsewhere.iterdir()) == []  # nothing landed where the link points
    assert ports.announced() == []


def test_an_open_registry_of_ours_is_closed(tmp_path, monkeypatch):
    base = _tmp_registry(tmp_path, monkeypatch)
    (base / "pxby-edge").mkdir(parents=True)
    base.chmod(0o755)
    with ports.announce("socket://127.0.0.1:1"):
        assert stat.S_IMODE(os.lstat(base).st_mode) == 0o700


@pytest.mark.parametrize(("path", "said"), [
    (lambda tmp: tmp, "is a folder, not a port"),
    (lambda tmp: tmp / "plain.txt", "is not a serial port (a plain file or another kind of device)"),
    (lambda tmp: Path(os.devnull), "is not a serial port"),
], ids=["folder", "file", "devnull"])
def test_a_port_that_is_no_terminal_is_named_as_such(path, said, tmp_path, capsys):
    (tmp_path / "plain.txt").write_text("hello")
    port = path(tmp_path)
    assert cli.main(["stream", "--synthetic", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {port} {said}" + err.split(said, 1)[1] and err.count("\n") == 1
    assert "`pxby-edge ports` lists them" in err and "Errno" not in err


def test_ports_has_a_header_row(registry, monkeypatch, capsys):
    board = ListPortInfo("/dev/ttyUSB3")
    board.vid, board.pid, board.description = 0x0403, 0x6001, "FT232R USB UART"
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [board])
    assert cli.main(["ports"]) == 0
    head, row = capsys.readouterr().out.splitlines()
    assert head.split() == ["PORT", "USB", "ID", "HANDHELD", "DESCRIPTION"]
    assert row.split(None, 3) == ["/dev/ttyUSB3", "0403:6001", "-", "FT232R USB UART"]
    assert head.index("USB ID") == row.index("0403:6001") and head.index("DESCRIPTION") == row.index("FT232R")
