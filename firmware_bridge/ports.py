"""Finding the handheld: serial ports that look like one, handhelds that announced themselves, ``--port auto``.

    pxby-edge ports --json

Two kinds of handheld are found. A USB one (an RP2040 running the firmware as a CDC device, or a
board whose USB product string says ``pxby``) shows up in pyserial's ``list_ports``. A simulated one
(``pxby-edge handheld`` on a pty or a ``socket://`` URL) has no USB descriptor, so it announces itself:
while it serves, it keeps a small JSON file (``{"url", "pid", "name"}``) in the user's runtime folder,
``$XDG_RUNTIME_DIR/pxby-edge/handhelds/`` (``/tmp/pxby-edge-UID/handhelds/`` where that variable is
unset). A file is believed only when this user owns it, it parses, and its process is alive.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from firmware_bridge.errors import PortError
from pxby_edge.atomic import pid_alive

# The USB product string the handheld's firmware reports (firmware_bridge/firmware/README.md, "USB identity");
# the udev rule in deploy/ matches it exactly. Not the vendor and product ids: an RP2040 running any Pico SDK
# program shows the same 2e8a:000a, and it is no handheld.
HANDHELD_PRODUCT = "pxby handheld"
HANDHELD_WORD = "pxby"  # in a USB product, manufacturer or description string (as other systems report it)
ANNOUNCED = "announced"  # the ``hwid`` of a handheld found through its announcement file
MAX_ANNOUNCEMENT_BYTES = 4096


@dataclass(frozen=True)
class Port:
    device: str  # what --port takes: /dev/ttyACM0, /dev/pts/3, socket://127.0.0.1:7777
    description: str
    hwid: str  # VID:PID in hex, or "announced", or "" for a port with neither
    handheld: bool

    def to_dict(self) -> dict:
        return asdict(self)


def registry_dir() -> Path:
    """Where running handhelds announce themselves (per user, never shared)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(tempfile.gettempdir(), f"pxby-edge-{os.getuid()}")
    return Path(base) / "pxby-edge" / "handhelds"


def _private_levels(folder: Path) -> list[Path]:
    """The folders of the registry path this user must own alone: below XDG_RUNTIME_DIR (which the login
    made private), or from ``/tmp/pxby-edge-UID`` down, a name anyone on the machine could take first."""
    levels = [folder.parent, folder]
    if not os.environ.get("XDG_RUNTIME_DIR"):
        levels.insert(0, folder.parent.parent)
    return levels


def _unsafe(path: Path) -> Optional[str]:
    """Why ``path`` is not a folder of this user's alone (None when it is)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return "a link" if stat.S_ISLNK(st.st_mode) else "not a folder"
    if st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}"
    if st.st_mode & 0o077:
        return f"open to others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def private_registry() -> Path:
    """The registry folder, made 0700 where absent; refused (one line) when any level of it is a link, is
    another user's or is open to others: announcements there would go where someone else wants."""
    folder = registry_dir()
    for level in _private_levels(folder):
        with contextlib.suppress(FileExistsError):
            os.mkdir(level, 0o700)
        why = _unsafe(level)
        if why is not None and why.startswith("open to others"):
            os.chmod(level, 0o700)  # ours, made by an older version with the umask's mode: close it
            why = _unsafe(level)
        if why is not None:
            raise PortError(f"{level} is {why}, not a private folder of this user: remove it, "
                            "or set XDG_RUNTIME_DIR to a folder of your own")
    return folder


@contextlib.contextmanager
def announce(url: str, name: str = "pxby-edge handheld (simulator)") -> Iterator[Path]:
    """Keep an announcement of the handheld at ``url`` in the registry for as long as the block runs."""
    folder = private_registry()
    path = folder / f"{os.getpid()}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"url": url, "pid": os.getpid(), "name": name}, fh)
    os.replace(tmp, path)  # a reader sees the whole file or none
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _read_announcement(path: Path) -> Optional[Port]:
    """The handheld a registry file names, or None for anything not to be believed."""
    try:
        st = path.stat()
        if st.st_uid != os.getuid() or st.st_size > MAX_ANNOUNCEMENT_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    url, pid, name = data.get("url"), data.get("pid"), data.get("name", "")
    if not isinstance(url, str) or not url.isprintable() or not isinstance(pid, int) or isinstance(pid, bool):
        return None
    if pid <= 0 or not pid_alive(pid):
        return None
    return Port(url, f"{str(name)[:80]} (pid {pid})", ANNOUNCED, True)


def announced() -> list[Port]:
    """Handhelds that announced themselves and still run, oldest announcement first."""
    folder = registry_dir()
    try:
        if any(_unsafe(level) for level in _private_levels(folder)):
            return []  # not ours alone: nothing in it is believed
    except OSError:
        return []
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns if p.exists() else 0)
    return [port for port in map(_read_announcement, files) if port is not None]


def _usb_port(info) -> Port:
    vid, pid = getattr(info, "vid", None), getattr(info, "pid", None)
    hwid = f"{vid:04X}:{pid:04X}" if vid is not None and pid is not None else ""
    words = " ".join(str(getattr(info, k, "") or "") for k in ("description", "product", "manufacturer")).lower()
    handheld = HANDHELD_WORD in words
    return Port(info.device, str(info.description or ""), hwid, handheld)


def list_handheld_ports() -> list[Port]:
    """Every serial port of this machine (pyserial's list_ports), then the announced handhelds."""
    from serial.tools import list_ports

    return [_usb_port(info) for info in list_ports.comports()] + announced()


def resolve_port(port: str) -> str:
    """``port`` itself, or for ``auto`` the one handheld found (PortError listing the candidates otherwise)."""
    if port != "auto":
        return port
    ports = list_handheld_ports()
    found = [p.device for p in ports if p.handheld]
    if len(found) == 1:
        return found[0]
    if found:
        raise PortError(f"several handhelds found ({', '.join(found)}); choose one with --port")
    others = ", ".join(p.device for p in ports) or "none"
    raise PortError(f"no handheld found (serial ports: {others}); plug it in or start `pxby-edge handheld`, "
                    "check `pxby-edge ports`, or give --port")


def _errno(exc: Optional[BaseException]) -> Optional[int]:
    """The OS error number of ``exc`` or of the error it was raised from (pyserial's socket:// handler
    wraps the socket's error without its number)."""
    seen = 0
    while exc is not None and seen < 4:
        if isinstance(getattr(exc, "errno", None), int):
            return exc.errno
        if type(exc).__name__ == "error" and exc.args and isinstance(exc.args[0], int):
            return exc.args[0]  # termios.error (pyserial configuring a file that is no terminal): (errno, text)
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def port_error(url: str, exc: BaseException) -> PortError:
    """The one-line PortError for a port that would not open, chosen by the OS error number."""
    code = _errno(exc)
    if code in (errno.EACCES, errno.EPERM):
        return PortError(f"permission denied on {url}: add your user to the dialout group "
                         "(`sudo usermod -aG dialout $USER`, then log in again)")
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return PortError(f"no such port: {url} (is the device plugged in? `pxby-edge ports` lists what is there)")
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
        return PortError(f"port busy: {url} is held by another program (close it, then retry)")
    if code == errno.EISDIR:
        return PortError(f"{url} is a folder, not a port: give the device (`pxby-edge ports` lists them) "
                         "or the path `pxby-edge handheld` prints")
    if code == errno.ENOTTY:
        return PortError(f"{url} is not a serial port (a plain file or another kind of device): give the device "
                         "(`pxby-edge ports` lists them) or the path `pxby-edge handheld` prints")
    if code == errno.ECONNREFUSED:
        return PortError(f"nobody listens at {url} (start `pxby-edge handheld` first)")
    return PortError(f"cannot open {url}: {' '.join(str(exc).split())}")
