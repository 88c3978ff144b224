"""``GameBoyLink``: the stream's link, ending at a real (or emulated) Game Boy instead of a serial device.

    pxby-edge stream --synthetic --to gameboy --port pyboy://

The host side stays one pipeline: ``Streamer`` (tiles, dirty diffing, audio encoding) talks the
serial protocol to an in-process ``DeviceCore`` over a ``VirtualLink``, exactly as it talks to
the simulator. That device is the reference: each screen it commits goes through ``VramPlanner``
to the Game Boy (the stream waits while the cable is busy, as for a serial device's window),
and each stretch of sound it plays goes through ``ApuEncoder`` to APU
register writes. ``port`` is a ``PyBoyPort`` or an ``SpiPort``: both clock ``LinkHost`` byte by byte.
"""

from __future__ import annotations

import numpy as np

from firmware_bridge import protocol as pr
from firmware_bridge.device import DeviceCore
from firmware_bridge.display import encode_tiles
from firmware_bridge.gameboy.apu import ApuEncoder
from firmware_bridge.gameboy.vram import VramPlanner
from firmware_bridge.virtual import VirtualLink


class GameBoyLink(VirtualLink):
    """A ``Link`` for ``Streamer`` whose screens and sound are mirrored onto a Game Boy ``port``."""

    def __init__(self, port, *, sound_method: str = "registers", capture=None, **session_opts):
        self.port = port
        self.planner = VramPlanner()
        self.sound = ApuEncoder(method=sound_method)
        self.capture = capture  # a simulator ``Capture`` of the reference device, or None
        self.reference: list[np.ndarray] = []  # every screen the reference device committed
        self.shown: list[np.ndarray] = []  # what the Game Boy shows after each flip, from the planner's state
        self.played: list[np.ndarray] = []  # the reference device's sound, as it played it
        self.sound_start = 0
        self.recoveries = 0
        device = DeviceCore(on_commit=self._on_commit, on_play=self._on_play,
                            on_audio_cfg=capture.on_audio_cfg if capture is not None else None)
        super().__init__(device, **session_opts)
        self.url = port.url
        port.host.hello()

    # -- reference device -> Game Boy --------------------------------------------------------
    def _on_commit(self, screen: np.ndarray, frame: int) -> None:
        """Each committed screen goes to the Game Boy once it has taken the previous one: the
        stream waits for the cable, as it waits for a serial device's window."""
        self.reference.append(screen.copy())
        if self.capture is not None:
            self.capture.on_commit(screen, frame)
        host = self.port.host
        self._run(lambda: not host.queue, "sending a screen to the Game Boy")
        for ptype, payload in self.planner.commit(encode_tiles(screen)):
            host.send(ptype, payload)
        self.shown.append(self.planner.shown())

    def _on_play(self, offset: int, samples: np.ndarray) -> None:
        if not self.played:
            # where the cry begins in the capture (before it: the APU switching on at HELLO)
            self.sound_start = len(getattr(self.port, "audio", ()))
        self.played.append(samples.copy())
        if self.capture is not None:
            self.capture.on_play(offset, samples)
        for ptype, payload in self.sound.push(samples):
            self.port.host.send(ptype, payload)

    # -- end of stream -----------------------------------------------------------------------
    def flush(self, timeout_s: float = 30.0) -> None:
        """Deliver everything to the reference device, play out its sound, then drain the Game Boy."""
        super().flush(timeout_s)
        dev = self.device
        self.wait(lambda: not dev.ring, timeout_s, "playing out the sound")
        for ptype, payload in self.sound.finish():
            self.port.host.send(ptype, payload)
        host = self.port.host
        self._run(lambda: host.idle, "flushing to the Game Boy")
        self.port.settle(3 + self.sound.frames_buffered())

    def _run(self, done, what: str) -> None:
        """Clock the port until ``done()``, starting over on a Game Boy that lost its session."""
        self.port.run_until(lambda: self._recover() or done(), what=what)

    def _recover(self) -> bool:
        """A reset Game Boy holds nothing: a new session, then the newest screen drawn whole (the
        sound queued before the reset is lost)."""
        host = self.port.host
        if host.session_lost:
            host.session_lost = False
            self.recoveries += 1
            host.hello()
            self.planner.reset()
            if self.reference:
                for ptype, payload in self.planner.commit(encode_tiles(self.reference[-1])):
                    host.send(ptype, payload)
        return False

    def counters(self) -> dict:
        """Link and ROM figures for a summary: packets, retransmissions by cause, flips, faults."""
        out = {f"gb_{k}": v for k, v in self.port.host.counters.items()}
        out.update({f"gb_{k}": v for k, v in self.planner.stats.items()})
        out["gb_sound_frames"] = self.sound.frames_out
        out["gb_recoveries"] = self.recoveries
        faults = getattr(self.port, "faults", None)
        if faults is not None:
            out.update({f"gb_line_{k}": v for k, v in faults.counts.items()})
        return out


def connect(port, **opts) -> GameBoyLink:
    """A connected ``GameBoyLink`` (the reference device's handshake; the Game Boy's HELLO is queued)."""
    opts.setdefault("seed", 1)
    opts.setdefault("max_payload", pr.MAX_PAYLOAD)
    return GameBoyLink(port, **opts).connect()

