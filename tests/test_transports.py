"""The one device chooser and transport table (firmware_bridge/transports.py) that `stream` and `demo` share."""

from __future__ import annotations

import pytest

from firmware_bridge.errors import PortError
from firmware_bridge.transports import (
    DEVICES,
    GAMEBOY_TRANSPORTS,
    DeviceChoice,
    choose_device,
    is_gameboy_url,
    open_gameboy_port,
    scheme_of,
    socket_address,
)

pytestmark = pytest.mark.pi


@pytest.mark.parametrize("port,to,want", [
    (None, None, DeviceChoice("handheld", None)),  # demo: a simulated handheld; stream passes "auto"
    ("auto", None, DeviceChoice("handheld", "auto")),
    ("/dev/ttyACM0", None, DeviceChoice("handheld", "/dev/ttyACM0")),
    ("socket://127.0.0.1:7777", "handheld", DeviceChoice("handheld", "socket://127.0.0.1:7777")),
    ("pyboy://", None, DeviceChoice("gameboy", "pyboy://")),
    ("SPI:///dev/spidev0.0?hz=100000", None, DeviceChoice("gameboy", "SPI:///dev/spidev0.0?hz=100000")),
    (None, "gameboy", DeviceChoice("gameboy", "pyboy://")),
    ("auto", "gameboy", DeviceChoice("gameboy", "pyboy://")),
    ("pyboy://window", "gameboy", DeviceChoice("gameboy", "pyboy://window")),
])
def test_the_device_follows_to_and_port(port, to, want):
    assert choose_device(port, to) == want


@pytest.mark.parametrize("port,to,message", [
    ("/dev/ttyUSB9", "gameboy", "--to gameboy takes a Game Boy port.*pyboy://"),
    ("pyboy://", "handheld", "is a Game Boy port"),
    ("pyboy://", "toaster", "unknown device kind"),
])
def test_a_port_of_the_other_kind_is_refused(port, to, message):
    with pytest.raises(PortError, match=message):
        choose_device(port, to)


def test_both_commands_offer_the_same_devices():
    from firmware_bridge.commands import demo, stream

    def choices(command):
        return next(p for p in command.params if p.name == "to").type.choices

    assert tuple(choices(stream)) == tuple(choices(demo)) == DEVICES


def test_schemes_are_read_in_one_place():
    assert scheme_of("pyboy://window") == "pyboy" and scheme_of("/dev/ttyACM0") == "" and scheme_of(None) == ""
    assert scheme_of("rfc2217://host:1") == "rfc2217" and not is_gameboy_url("socket://x:1")
    assert all(is_gameboy_url(f"{scheme}://") for scheme in GAMEBOY_TRANSPORTS)
    with pytest.raises(PortError, match="not a Game Boy port.*spi:///dev/spidevB.D"):
        open_gameboy_port("/dev/ttyACM0")


def test_every_gameboy_opener_exists():
    import importlib

    for transport in GAMEBOY_TRANSPORTS.values():
        module, _, name = transport.opener.partition(":")
        assert callable(getattr(importlib.import_module(module), name))


def test_spi_refuses_emulator_options():
    with pytest.raises(PortError, match="emulator options"):
        open_gameboy_port("spi:///dev/spidev0.0", boot_frames=3)


def test_socket_urls_are_checked_before_pyserial_sees_them():
    assert socket_address("/dev/ttyACM0") is None
    assert socket_address("socket://:7777") == ("127.0.0.1", 7777)
    assert socket_address("socket://[::1]:80") == ("::1", 80)
    with pytest.raises(PortError, match="PORT 0..65535"):
        socket_address("socket://host:99999")
