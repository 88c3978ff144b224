"""Which transport a port URL opens, and which device kind a stream goes to: the one place a URL's scheme is read.

    python -c "from firmware_bridge.transports import choose_device; print(choose_device('pyboy://', None))"

Two kinds of device take a stream (``DEVICES``, the ``--to`` choices of ``stream`` and ``demo``):

- a **handheld** speaks the serial protocol (docs/protocol.md) over any byte stream pyserial opens:
  a device path, a pty, ``socket://HOST:PORT``, ``loop://``. pyserial's URL handlers
  (``serial.serial_for_url``) are its transport mechanism, so a new byte-stream transport is a
  pyserial URL handler and nothing here changes; ``link.Link`` drives it.
- a **Game Boy** runs the link ROM, which takes the Game Boy packet protocol (``gameboy/packets.py``)
  one byte per link-port exchange: not a byte stream the serial protocol could run on. Its
  transports are the schemes of ``GAMEBOY_TRANSPORTS``; each names an opener ``module:function``
  (imported only when that scheme is opened) that takes the URL and the emulator options
  (``faults``, ``boot_frames``) and returns a *Game Boy port*: ``host`` (a ``packets.LinkHost``),
  ``run_until(done, what=...)``, ``settle(frames)``, ``step()``, ``close()``, and what it captured,
  ``frames``, ``audio``, ``sample_rate``. ``gameboy.session.GameBoyLink`` drives any such port.

Adding a Game Boy transport (an emulator, another cable) is one entry in ``GAMEBOY_TRANSPORTS`` and
its opener; ``choose_device``, ``--to`` and every command follow from the table. Above the port,
every link is a ``link.PumpedLink`` (``Link``, ``virtual.VirtualLink``, ``GameBoyLink``): the
``Streamer`` sees only that.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple, Optional

from firmware_bridge.errors import PortError

DEVICES = ("handheld", "gameboy")  # the --to choices of `stream` and `demo`
HANDHELD, GAMEBOY = DEVICES


class GameBoyTransport(NamedTuple):
    opener: str  # "module:function": (url, *, faults=None, boot_frames=0) -> a Game Boy port
    forms: str  # the URLs it takes, for messages and --help


GAMEBOY_TRANSPORTS = {
    "pyboy": GameBoyTransport("firmware_bridge.gameboy.pyboy_link:open_url",
                              "pyboy:// (headless), pyboy://window, pyboy://cgb[-window] (a Game Boy Color)"),
    "mgba": GameBoyTransport("firmware_bridge.gameboy.mgba_link:open_url",
                             "mgba://[?hz=N&gap_us=N&jitter_us=N&seed=N&model=DMG|CGB] (mGBA, clocked as a Pi clocks)"),
    "spi": GameBoyTransport("firmware_bridge.gameboy.spi:open_url", "spi:///dev/spidevB.D[?hz=N&gap_us=N]"),
}
DEFAULT_GAMEBOY_URL = "pyboy://"  # --to gameboy with no port: the ROM in the emulator


def scheme_of(url: Optional[str]) -> str:
    """The scheme of ``url`` in lower case (``pyboy``, ``socket``), or "" for a plain path like /dev/ttyACM0."""
    head, sep, _ = (url or "").partition("://")
    return head.lower() if sep and head.replace("+", "").isalnum() else ""


def is_gameboy_url(url: Optional[str]) -> bool:
    return scheme_of(url) in GAMEBOY_TRANSPORTS


def gameboy_forms() -> str:
    return ", ".join(t.forms for t in GAMEBOY_TRANSPORTS.values())


def open_gameboy_port(url: str, *, faults=None, boot_frames: int = 0):
    """The Game Boy port ``url`` names, opened by its scheme's opener; ``PortError`` naming the valid forms otherwise."""
    transport = GAMEBOY_TRANSPORTS.get(scheme_of(url))
    if transport is None:
        raise PortError(f"not a Game Boy port: {url!r} (valid: {gameboy_forms()})")
    module, _, name = transport.opener.partition(":")
    return getattr(importlib.import_module(module), name)(url, faults=faults, boot_frames=boot_frames)


class DeviceChoice(NamedTuple):
    kind: str  # HANDHELD or GAMEBOY
    url: Optional[str]  # None: no port given (a handheld found by `auto`, or simulated here: the caller's choice)


def choose_device(port: Optional[str], to: Optional[str]) -> DeviceChoice:
    """What ``--to`` and ``--port`` pick: a Game Boy URL is a Game Boy; ``--to gameboy`` without a port (or with
    ``auto``) is the ROM in PyBoy; anything else is a handheld. A port of the other kind than ``--to`` says is refused."""
    if to is not None and to not in DEVICES:
        raise PortError(f"unknown device kind {to!r}; choose one of {', '.join(DEVICES)}")
    port = None if port == "auto" and to == GAMEBOY else port
    kind = to or (GAMEBOY if is_gameboy_url(port) else HANDHELD)
    if kind == GAMEBOY:
        if port is not None and not is_gameboy_url(port):
            raise PortError(f"--to gameboy takes a Game Boy port, not {port!r} (valid: {gameboy_forms()})")
        return DeviceChoice(GAMEBOY, port or DEFAULT_GAMEBOY_URL)
    if is_gameboy_url(port):
        raise PortError(f"{port!r} is a Game Boy port; drop --to handheld or use --to gameboy")
    return DeviceChoice(HANDHELD, port)


def socket_address(url: str) -> Optional[tuple[str, int]]:
    """(host, port) of ``socket://HOST:PORT``, None for a URL of another scheme; ``PortError`` saying what is
    wrong with a bad one (pyserial's own message names its logging options instead)."""
    if scheme_of(url) != "socket":
        return None
    hostport = url.partition("://")[2].split("?", 1)[0].split("/", 1)[0]
    host, _, num = hostport.rpartition(":")
    if not num.isdigit() or not 0 <= int(num) <= 65535:
        raise PortError(f"bad socket URL {url!r}: expected socket://HOST:PORT with PORT 0..65535")
    return host.strip("[]") or "127.0.0.1", int(num)
