"""The handheld simulator: a ``DeviceCore`` on a pty, a socket or a serial URL, with capture and live view.

    pxby-edge handheld --pty --capture out/handheld

It prints ``port: <path or URL>`` first (scripts read that line), then serves until
interrupted. The device logic is ``device.DeviceCore`` (the firmware's state machine, buffers and
limits); this module adds the transports, the capture folder (``screen.png`` after every COMMIT,
``screen.gif`` with every COMMIT, ``audio.wav`` with what the speaker played, gaps as silence),
a live 4-shade view in the terminal (``terminal_view``) and counters.
``restart()`` reboots the device (fresh state, new boot id) as pulling its power would.
"""

from __future__ import annotations

import io
import os
import select
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from firmware_bridge import protocol as pr
from firmware_bridge.device import DeviceCore
from firmware_bridge.display import DMG_PALETTE
from firmware_bridge.errors import PortError
from firmware_bridge.link import monotonic_ms
from firmware_bridge.ports import port_error
from firmware_bridge.terminal_view import LiveView
from pxby_edge.atomic import atomic_write
from pxby_edge.constants import DEVICE_AUDIO_RATE

# -- transports ---------------------------------------------------------------------------------


class PtyTransport:
    """The device end of a fresh pseudo-terminal; ``path`` is what the host opens."""

    def __init__(self):
        import tty

        self.fd, slave = os.openpty()
        # raw before anyone writes: a cooked pty would echo the host's bytes back and eat 0x03/0x04
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave  # kept open so the pty survives the host closing and reopening it
        self.url = self.path

    def read(self, timeout_s: float) -> bytes:
        r, _, _ = select.select([self.fd], [], [], timeout_s)
        if not r:
            return b""
        try:
            return os.read(self.fd, 65536)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        while data:
            try:
                n = os.write(self.fd, data)
            except BlockingIOError:
                select.select([], [self.fd], [], 0.05)
                continue
            data = data[n:]

    def close(self) -> None:
        for fd in (self.fd, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class SocketTransport:
    """A TCP listener (loopback unless told otherwise) serving one host at a time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.server.bind((host, port))
        except (OSError, OverflowError) as exc:
            self.server.close()
            raise PortError(f"cannot listen on {host}:{port}: {exc}") from exc
        self.server.listen(1)
        self.host, self.port = self.server.getsockname()[:2]
        self.url = f"socket://{self.host}:{self.port}"
        self.conn: Optional[socket.socket] = None

    def read(self, timeout_s: float) -> bytes:
        if self.conn is None:
            r, _, _ = select.select([self.server], [], [], timeout_s)
            if r:
                self.conn, _ = self.server.accept()
                self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return b""
        r, _, _ = select.select([self.conn], [], [], timeout_s)
        if not r:
            return b""
        try:
            data = self.conn.recv(65536)
        except OSError:
            data = b""
        if not data:  # the host went away: wait for the next one
            self.conn.close()
            self.conn = None
        return data

    def write(self, data: bytes) -> None:
        if self.conn is not None and data:
            try:
                self.conn.sendall(data)
            except OSError:
                self.conn.close()
                self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


class SerialTransport:
    """Any pyserial URL (a real tty wired to the host, a pty made by socat, ``loop://``)."""

    def __init__(self, url: str, baud: int = 115200):
        import serial

        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=0)
        except (serial.SerialException, OSError, ValueError, OverflowError, TypeError) as exc:
            raise port_error(url, exc) from exc
        self.url = url

    def read(self, timeout_s: float) -> bytes:
        self.port.timeout = timeout_s
        n = self.port.in_waiting
        return self.port.read(n if n else 1)

    def write(self, data: bytes) -> None:
        if data:
            self.port.write(data)

    def close(self) -> None:
        self.port.close()


def open_transport(pty: bool = False, port: Optional[str] = None, baud: int = 115200):
    """``--pty`` or ``--port URL``: ``socket://HOST:PORT`` listens there, anything else is opened."""
    if pty or port is None:
        return PtyTransport()
    from firmware_bridge.transports import socket_address

    address = socket_address(port)
    return SocketTransport(*address) if address is not None else SerialTransport(port, baud)


# -- capture ------------------------------------------------------------------------------------


# A handheld serves for as long as its service runs (days, behind `stream --loop`), so what it keeps
# of the past is bounded: every commit is a 23 KB screen, and keeping them all grew a 5-minute soak
# from 33 MB to 650 MB. With --capture the GIF holds the last GIF_FRAMES commits (80 ms each: the
# last 2 minutes, 35 MB at most); without it only a few screens stay, for the counters and tests.
GIF_FRAMES = 1500
RECENT_FRAMES = 32
KEPT_AUDIO_SAMPLES = DEVICE_AUDIO_RATE * 600  # audio.wav: the last ten minutes the speaker played
RECENT_AUDIO_SAMPLES = DEVICE_AUDIO_RATE * 30  # without --capture: the last half minute, for the counters and tests


class Capture:
    """What the device showed and played, across restarts (the recent past, bounded); writes the capture folder."""

    def __init__(self, out_dir=None, palette=DMG_PALETTE):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # import the image code now: doing it at the first COMMIT stalls the device for tens
            # of ms, long enough for the host to resend its window
            from PIL import GifImagePlugin, Image, PngImagePlugin  # noqa: F401
        self.palette = np.asarray(palette, dtype=np.uint8)
        self.frames: deque[np.ndarray] = deque(maxlen=GIF_FRAMES if self.out_dir is not None else RECENT_FRAMES)
        self.commits = 0  # every commit seen; ``frames`` keeps the last ones
        self.screen: Optional[np.ndarray] = None
        self.chunks: deque[tuple[int, np.ndarray]] = deque()  # (offset, samples) in the order played
        self._kept_samples = 0
        self._audio_bound = KEPT_AUDIO_SAMPLES if self.out_dir is not None else RECENT_AUDIO_SAMPLES
        self.played = 0
        self.gaps = 0
        self.replayed = 0
        self.next_offset: Optional[int] = None
        self.audio_rate = pr.Capabilities.audio_rate  # until an AUDIO_CFG says (the device's own rate)
        self.audio_format = pr.AUDIO_U8
        self.lock = threading.Lock()
        self._png_at = -1.0

    def on_commit(self, screen: np.ndarray, frame: int) -> None:
        with self.lock:
            self.screen = screen.copy()
            self.frames.append(self.screen)
            self.commits += 1
        now = time.monotonic()
        if self.out_dir is not None and now - self._png_at >= 0.25:
            # at most 4 writes a second: a PNG per row would stall the device loop (late ACKs,
            # needless retransmissions); save() writes the last one in any case
            self._png_at = now
            self._save_png(self.out_dir / "screen.png", self.screen)

    def on_audio_cfg(self, start: int) -> None:
        """A sound opens at ``start``: the first one sets where counting begins, so samples lost
        before anything played (say, in a reset) are gaps too."""
        with self.lock:
            if self.next_offset is None:
                self.next_offset = start

    def on_play(self, offset: int, samples: np.ndarray) -> None:
        with self.lock:
            if self.next_offset is not None:
                if offset > self.next_offset:
                    self.gaps += offset - self.next_offset
                elif offset < self.next_offset:
                    self.replayed += self.next_offset - offset
            self.chunks.append((offset, samples.copy()))
            self._kept_samples += len(samples)
            while self._kept_samples > self._audio_bound and len(self.chunks) > 1:
                self._kept_samples -= len(self.chunks.popleft()[1])
            self.played += len(samples)
            self.next_offset = offset + len(samples)

    def image(self, screen: np.ndarray, scale: int = 1):
        from PIL import Image

        # shades through the palette, or a colour screen (a Game Boy Color's) as it is
        img = Image.fromarray(self.palette[screen] if screen.ndim == 2 else np.ascontiguousarray(screen[..., :3]), "RGB")
        return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img

    def _save_png(self, path: Path, screen: np.ndarray) -> None:
        image = io.BytesIO()
        self.image(screen).save(image, format="PNG")
        _replace(path, image)

    def audio(self) -> np.ndarray:
        """Played samples as floats in [-1, 1] at their offsets; gaps are silence."""
        with self.lock:
            chunks = list(self.chunks)
        if not chunks:
            return np.zeros(0)
        start = chunks[0][0]
        end = max(o + len(s) for o, s in chunks)
        out = np.zeros(end - start)
        top = 255.0 if self.audio_format == pr.AUDIO_U8 else 15.0
        for o, s in chunks:
            out[o - start : o - start + len(s)] = s / top * 2.0 - 1.0
        return out

    def save(self) -> list[str]:
        """Write screen.png, screen.gif and audio.wav; returns the paths written."""
        if self.out_dir is None:
            return []
        written = []
        with self.lock:
            frames = list(self.frames)
        if frames:
            self._save_png(self.out_dir / "screen.png", frames[-1])
            images = [self.image(f) for f in frames]
            gif = io.BytesIO()
            images[0].save(gif, format="GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
            _replace(self.out_dir / "screen.gif", gif)
            written += [str(self.out_dir / "screen.png"), str(self.out_dir / "screen.gif")]
        audio = self.audio()
        if audio.size:
            from scipy.io import wavfile

            wav = io.BytesIO()
            wavfile.write(wav, self.audio_rate, np.round(audio * 32767).astype(np.int16))
            _replace(self.out_dir / "audio.wav", wav)
            written.append(str(self.out_dir / "audio.wav"))
        return written


def _replace(path: Path, data: io.BytesIO) -> None:
    # made in memory, then written under an unpredictable temporary name and renamed: a viewer never sees
    # half a file, and no link planted in the capture folder under a name we would use is followed
    atomic_write(path, data.getvalue(), overwrite=True)


# -- the simulator ------------------------------------------------------------------------------


class Simulator:
    """Serves a ``DeviceCore`` on a transport until ``stop()``; thread-safe ``restart()``."""

    def __init__(self, transport, *, caps: Optional[pr.Capabilities] = None,
                 versions: tuple[int, int] = (pr.PROTOCOL_MIN, pr.PROTOCOL_MAX), capture: Optional[Capture] = None,
                 view: Optional[LiveView] = None, clock: Callable[[], int] = monotonic_ms):
        self.transport = transport
        self.caps = caps or pr.Capabilities()
        self.versions = versions
        self.capture = capture or Capture()
        self.clock = clock
        self.boots = 0
        self._restart = threading.Event()
        self._stop = threading.Event()
        self.view = view
        self.thread: Optional[threading.Thread] = None
        self.totals: dict = {}
        self._commits: list = []  # (screen, frame) committed this turn, drawn once it has answered
        self._turned = threading.Condition()  # notified after every loop turn (see ``wait_until``)
        self.core = self._boot()

    def _boot(self) -> DeviceCore:
        self.boots += 1
        return DeviceCore(self.caps, versions=self.versions, boot_id=self.boots, on_commit=self._on_commit,
                          on_play=self._on_play, on_audio_cfg=self.capture.on_audio_cfg)

    def _on_play(self, offset: int, samples: np.ndarray) -> None:
        self.capture.audio_rate = self.core.audio_rate or self.capture.audio_rate
        self.capture.audio_format = self.core.audio_format or self.capture.audio_format
        self.capture.on_play(offset, samples)

    def _on_commit(self, screen: np.ndarray, frame: int) -> None:
        # drawn after this turn's answers are written (see ``step``): a device that paints
        # before it acknowledges looks like a lossy line to the host's retransmission timer
        self._commits.append((screen, frame))

    def _draw(self) -> None:
        commits, self._commits = self._commits, []
        for screen, frame in commits:
            self.capture.on_commit(screen, frame)
        if commits and self.view is not None:
            self.view.show(commits[-1][0])

    def restart(self) -> None:
        """Reboot the device at its next loop turn (as if its power were cycled)."""
        self._restart.set()

    @property
    def counters(self) -> dict:
        c = dict(self.totals)
        for k, v in self.core.counters.items():
            c[k] = c.get(k, 0) + v
        c["boots"] = self.boots
        c["capture_gaps"] = self.capture.gaps
        c["capture_played"] = self.capture.played
        return c

    def step(self, timeout_s: float = 0.002) -> None:
        if self._restart.is_set():
            self._restart.clear()
            for k, v in self.core.counters.items():
                self.totals[k] = self.totals.get(k, 0) + v
            self.core = self._boot()
        data = self.transport.read(timeout_s)
        now = self.clock()
        if data:
            self.core.feed(data, now)
        else:
            self.core.tick(now)
        out = self.core.take_output()
        if out:
            self.transport.write(out)
        self._draw()
        with self._turned:
            self._turned.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Block until ``predicate()`` holds after one of the loop's turns (checked as each ends,
        no polling); False if ``timeout_s`` passed first."""
        with self._turned:
            return self._turned.wait_for(predicate, timeout_s)

    def wait_played(self, samples: int, slack_s: float = 2.0) -> bool:
        """Block until the speaker has played ``samples`` (what the host sent: it plays in real time, after the
        last acknowledgement); False if that took ``slack_s`` longer than the samples last."""
        rate = self.core.audio_rate or self.capture.audio_rate
        return self.wait_until(lambda: self.capture.played >= samples, samples / rate + slack_s)

    def serve(self, seconds: Optional[float] = None) -> None:
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
                self.step()
        finally:
            if self.view is not None:
                self.view.close()  # the loop is over: the last screen is drawn, then the view ends

    def start(self) -> Simulator:
        self.thread = threading.Thread(target=self.serve, name="pxby-handheld", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
