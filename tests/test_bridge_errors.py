"""Clear errors: no such port, port busy, device silent, protocol mismatch, device too small; and the CLI.

    .venv/bin/pytest tests/test_bridge_errors.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tty
from pathlib import Path

import pytest

from firmware_bridge import protocol as pr
from firmware_bridge.errors import CapabilityError, LinkTimeout, PortError, ProtocolVersionError
from firmware_bridge.link import Link
from firmware_bridge.simulator import SocketTransport
from firmware_bridge.stream import stream_needs

pytestmark = [pytest.mark.pi, pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX ptys")]


def test_no_such_port():
    with pytest.raises(PortError, match="no such port: /dev/pxby-nonexistent"):
        Link("/dev/pxby-nonexistent").open()


def test_port_busy():
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        with Link(path).open():
            with pytest.raises(PortError, match=f"port busy: {path}"):
                Link(path).open()
    finally:
        os.close(master)
        os.close(slave)


def test_device_silent_names_port_and_baud():
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        with pytest.raises(LinkTimeout, match=f"device silent on {path} at 57600 baud"):
            Link(path, 57600, connect_timeout_s=0.3).connect()
    finally:
        os.close(master)
        os.close(slave)


def test_nobody_listening_on_socket():
    server = SocketTransport()  # binds an ephemeral loopback port, then goes away
    url = server.url
    server.close()
    with pytest.raises(PortError, match="nobody listens"):
        Link(url).open()


def test_socket_binds_loopback_by_default():
    server = SocketTransport()
    try:
        assert server.host == "127.0.0.1" and server.url.startswith("socket://127.0.0.1:")
    finally:
        server.close()


def test_protocol_version_mismatch(running_simulator):
    sim = running_simulator(versions=(2, 3))
    with pytest.raises(ProtocolVersionError, match="device speaks protocol v2..v3.*this host v1..v1"):
        Link(sim.transport.path, connect_timeout_s=3).connect()


def test_capabilities_too_small(running_simulator):
    sim = running_simulator(caps=pr.Capabilities(screen_w=128, screen_h=128, tile_slots=256))
    with pytest.raises(CapabilityError, match="screen width 128 \\(need 160\\)"):
        Link(sim.transport.path, need=stream_needs(), connect_timeout_s=3).connect()


@pytest.mark.slow  # a second interpreter importing scipy, and 2 s of sound: ~8 s on a busy 2-core machine
def test_cli_handheld_and_stream_leave_a_capture(tmp_path: Path):
    cli = [sys.executable, "-c", "import sys; from pxby_edge import cli; sys.exit(cli.main())"]
    hh = subprocess.Popen([*cli, "handheld", "--pty", "--capture", str(tmp_path), "--seconds", "60"],
                          stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        first = hh.stdout.readline()
        assert first.startswith("port: /dev/")
        from click.testing import CliRunner

        from firmware_bridge.commands import stream

        # the host in this process (one interpreter start fewer), the handheld as a real command
        run = CliRunner().invoke(stream, ["--synthetic", "--port", first.split()[1], "--baud", "921600"])
        assert run.exit_code == 0, run.output
        assert "commits" in run.output
    finally:
        hh.send_signal(2)  # Ctrl-C: the handheld writes its capture and exits
        out, _ = hh.communicate(timeout=30)
    assert "wrote" in out
    from PIL import Image

    with Image.open(tmp_path / "screen.gif") as gif:
        assert gif.n_frames > 10
    assert (tmp_path / "screen.png").is_file() and (tmp_path / "audio.wav").is_file()


def test_cli_errors_are_one_line(tmp_path: Path):
    cli = [sys.executable, "-c", "import sys; from pxby_edge import cli; sys.exit(cli.main())"]
    run = subprocess.run([*cli, "stream", "--synthetic", "--port", "/dev/pxby-nonexistent"], capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 2
    assert run.stderr.strip() == ("error: no such port: /dev/pxby-nonexistent (is the device plugged in? "
                                  "`pxby-edge ports` lists what is there)")


BAD_URLS = ["socket://127.0.0.1:99999", "socket://host", "socket://:abc", "socket://[::1", "bogus://x", "/tmp",
            "rfc2217://127.0.0.1:99999", "/dev/pxby-nonexistent"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_every_bad_port_is_a_port_error(url):
    """Both ends: the host's Link and the handheld's transport turn any bad URL into PortError."""
    from firmware_bridge.simulator import open_transport

    with pytest.raises(PortError):
        Link(url).open()
    with pytest.raises(PortError):
        open_transport(port=url).close()


def test_not_a_missing_port_is_not_called_missing():
    # Errno 21 (a directory) once matched "Errno 2" and was reported as "no such port"; now it is named as a folder
    with pytest.raises(PortError, match="^/tmp is a folder, not a port"):
        Link("/tmp").open()


def test_cli_handheld_bad_port_is_one_line():
    cli = [sys.executable, "-c", "import sys; from pxby_edge import cli; sys.exit(cli.main())"]
    run = subprocess.run([*cli, "handheld", "--port", "socket://127.0.0.1:99999"], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 2
    assert run.stderr.strip() == "error: bad socket URL 'socket://127.0.0.1:99999': expected socket://HOST:PORT with PORT 0..65535"
