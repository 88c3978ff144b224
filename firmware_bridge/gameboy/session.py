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
from firmware_bridge.errors import LinkTimeout
from firmware_bridge.gameboy import packets as gl
from firmware_bridge.gameboy.apu import ApuEncoder
from firmware_bridge.gameboy.vram import VramPlanner
from firmware_bridge.virtual import VirtualLink

BACKLOG = 1024  # payload bytes queued ahead: about 11 video frames of the link at the spi:// default

# Longer than anything a healthy Game Boy does without answering: a real one's boot ROM (≈ 2.5 s) and
# the link ROM's start after a power cycle; the ROM's interrupt answers every byte even while it
# clears VRAM or waits for VBlank.
DEAD_LINK_S = 5.0
# Without a single packet taken: far past the longest a packet waits in a healthy link (a sound packet
# waiting for room, ≈ 1.2 s) and past several resend timeouts at the slowest accepted byte rate.
STALL_S = 10.0
STALL_BYTES = 8 * gl.POLL_LIMIT


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
        self._answers_seen, self._answered_at = 0, 0.0
        self._progress, self._progress_at = (0, False), (0.0, 0)
        device = DeviceCore(on_commit=self._on_commit, on_play=self._on_play,
                            on_audio_cfg=capture.on_audio_cfg if capture is not None else None)
        super().__init__(device, **session_opts)
        self.url = port.url
        port.host.hello()

    # -- reference device -> Game Boy --------------------------------------------------------
    def _on_commit(self, screen: np.ndarray, frame: int) -> None:
        """Each committed screen is queued for the Game Boy once less than ``BACKLOG`` bytes wait
        for the cable: the stream waits for the cable, as it waits for a serial device's window,
        and the host has the next screens' packets ready whenever the ROM can take one (an
        emulator's port is clocked a frame at a time, about 90 link bytes)."""
        self.reference.append(screen.copy())
        if self.capture is not None:
            self.capture.on_commit(screen, frame)
        host = self.port.host
        self._run(lambda: host.backlog() < BACKLOG, "sending a screen to the Game Boy")
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
        # drained: the ROM says every packet it acknowledged is applied (its queue is empty)
        self._run(lambda: host.drained, "flushing to the Game Boy")
        self.port.settle(3 + self.sound.frames_buffered())

    def _run(self, done, what: str) -> None:
        """Clock the port until ``done()``, starting over on a Game Boy that lost its session; a line
        that has not answered for ``DEAD_LINK_S`` ends the stream (``LinkTimeout``)."""
        self.port.run_until(lambda: self._alive(what) and (self._recover() or done()), what=what)

    def _alive(self, what: str) -> bool:
        """True, or ``LinkTimeout`` once nothing but 0x00/0xFF (a pulled cable, a switched-off Game
        Boy, a port the ROM stopped arming) has come back for ``DEAD_LINK_S`` of the port's time."""
        host, now = self.port.host, self.port.elapsed_s
        if host.answers != self._answers_seen:
            self._answers_seen, self._answered_at = host.answers, now
        elif now - self._answered_at > DEAD_LINK_S:
            raise LinkTimeout(
                f"{what}: no answer from the Game Boy on {self.url} for {DEAD_LINK_S:g} s (the line reads "
                f"0x{host.last_status & 0xFF:02x}; is the cable in, the Game Boy on and running the link ROM?)")
        # it answers, but nothing gets through (every packet refused or lost): as hopeless, and as bounded
        done = (host.counters["packets"], host.session_lost)
        if done != self._progress:
            self._progress, self._progress_at = done, (now, host.counters["bytes"])
        elif now - self._progress_at[0] > STALL_S and host.counters["bytes"] - self._progress_at[1] > STALL_BYTES:
            raise LinkTimeout(
                f"{what}: the Game Boy on {self.url} answers but took no packet for {STALL_S:g} s (last status "
                f"{gl.status_name(host.last_status)}; retransmits {host.counters['retransmits']}); try a longer gap_us")
        return True

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

