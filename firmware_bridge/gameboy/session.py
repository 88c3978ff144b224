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
from firmware_bridge.gameboy import palettes
from firmware_bridge.gameboy.apu import ApuEncoder
from firmware_bridge.gameboy.vram import VramPlanner
from firmware_bridge.gameboy.vram_cgb import CgbPlanner
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
        self.cry: list[tuple[int, bytes]] = []  # the sound packets of this round, for a replay
        self.capture = capture  # a simulator ``Capture`` of the reference device, or None
        self.reference: list[np.ndarray] = []  # every screen the reference device committed
        self.shown: list[np.ndarray] = []  # what the Game Boy shows after each flip, from the planner's state
        self.played: list[np.ndarray] = []  # the reference device's sound, as it played it
        self.sound_start = 0
        self.recoveries = 0
        self._answers_seen, self._answered_at = 0, 0.0
        self._progress, self._progress_at = (0, False), (0.0, 0)
        # a Game Boy Color (asked after HELLO: None until it answered) gets the sprite in its colours
        self.colour: bool | None = None
        self.screen_model = None  # the ``Streamer``'s ScreenModel, for the sprite's colours
        self._colours: dict[bytes, tuple] = {}  # shades of a commit -> (RGB555 screen, sprite mask)
        self.colour_reference: list[tuple[np.ndarray, np.ndarray]] = []  # what each colour commit meant
        self.colour_stats = {"colour_commits": 0, "palette_approx_commits": 0}
        device = DeviceCore(on_commit=self._on_commit, on_play=self._on_play,
                            on_audio_cfg=capture.on_audio_cfg if capture is not None else None)
        super().__init__(device, **session_opts)
        self.url = port.url
        port.host.hello()
        port.host.ask(gl.Q_CLEAR)  # the model (bit 0: Color), and no presses from before this session

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
        if self._is_colour():
            packets = self._colour_commit(screen)
        else:
            packets = self.planner.commit(encode_tiles(screen))
        for ptype, payload in packets:
            host.send(ptype, payload)
        self.shown.append(palettes.screen_rgb(self.planner.shown_colour()) if self.colour else self.planner.shown())

    # -- Game Boy Color ------------------------------------------------------------------------
    def attach_screen(self, model) -> None:
        """The ``Streamer``'s ScreenModel: its sprite rows give a Game Boy Color its colours."""
        self.screen_model = model

    def send(self, mtype: int, payload: bytes, channel: int = pr.CH_CONTROL, timeout_s: float = 10.0) -> None:
        if mtype == pr.COMMIT and self.screen_model is not None and self.colour is not False:
            # the tiles just sent were this render: remember its colours for when the device commits it
            shades = self.screen_model.render()
            self._colours[shades.tobytes()] = palettes.colour_screen(self.screen_model, shades)
            while len(self._colours) > 16:
                self._colours.pop(next(iter(self._colours)))
        super().send(mtype, payload, channel, timeout_s)

    def _is_colour(self) -> bool:
        if self.colour is None:
            host = self.port.host
            self._run(lambda: gl.Q_CLEAR in host.replies, "asking the Game Boy which model it is")
            answer = host.replies[gl.Q_CLEAR]
            self.colour = bool(answer is not None and answer & 1)
            if self.colour:
                self.planner = CgbPlanner()
        return self.colour

    def _colour_commit(self, screen: np.ndarray) -> list:
        known = self._colours.get(screen.tobytes())
        if known is None:  # a screen the streamer did not send through us (a redraw after a reset)
            known = palettes.colour_screen(None, screen)
        choice = palettes.choose(known[0], previous=self.planner.palettes)
        self.colour_reference.append(known)
        self.colour_stats["colour_commits"] += 1
        self.colour_stats["palette_approx_commits"] += not choice.exact
        return self.planner.commit_colour(choice)

    def _on_play(self, offset: int, samples: np.ndarray) -> None:
        if not self.played:
            # where the cry begins in the capture (before it: the APU switching on at HELLO)
            self.sound_start = len(getattr(self.port, "audio", ()))
        self.played.append(samples.copy())
        if self.capture is not None:
            self.capture.on_play(offset, samples)
        self._send_sound(self.sound.push(samples))

    # -- end of stream -----------------------------------------------------------------------
    def flush(self, timeout_s: float = 30.0) -> None:
        """Deliver everything to the reference device, play out its sound, then drain the Game Boy."""
        super().flush(timeout_s)
        dev = self.device
        self.wait(lambda: not dev.ring, timeout_s, "playing out the sound")
        self._send_sound(self.sound.finish())
        host = self.port.host
        # drained: the ROM says every packet it acknowledged is applied (its queue is empty)
        self._run(lambda: host.drained, "flushing to the Game Boy")
        self.port.settle(3 + self.sound.frames_buffered())

    def deliver(self, timeout_s: float = 30.0) -> None:
        """What the streamer sent (a redrawn text, say) onto the Game Boy's screen; sound untouched."""
        super().flush(timeout_s)
        host = self.port.host
        self._run(lambda: host.drained, "sending to the Game Boy")
        self.port.settle(3)

    def _send_sound(self, packets) -> None:
        for ptype, payload in packets:
            self.port.host.send(ptype, payload)
        self.cry += packets

    def new_round(self) -> None:
        """A new creature follows (an interactive session): its sound starts a fresh encoder."""
        self.sound = ApuEncoder(method=self.sound.method)
        self.cry = []

    def replay_cry(self) -> None:
        """The last creature's sound again, as it went over the cable, and wait until it has played."""
        host = self.port.host
        for ptype, payload in self.cry:
            host.send(ptype, payload)
        self._run(lambda: host.drained, "playing the cry again")
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
                screen = self.reference[-1]
                packets = self._colour_commit(screen) if self.colour else self.planner.commit(encode_tiles(screen))
                for ptype, payload in packets:
                    host.send(ptype, payload)
        return False

    def counters(self) -> dict:
        """Link and ROM figures for a summary: packets, retransmissions by cause, flips, faults."""
        out = {f"gb_{k}": v for k, v in self.port.host.counters.items()}
        out.update({f"gb_{k}": v for k, v in self.planner.stats.items()})
        out["gb_sound_frames"] = self.sound.frames_out
        out["gb_recoveries"] = self.recoveries
        out["gb_colour"] = bool(self.colour)
        if self.colour:
            out.update({f"gb_{k}": v for k, v in self.colour_stats.items()})
            frames = getattr(self.port, "frames", None) or self.shown
            if frames and self.colour_reference:
                want, mask = self.colour_reference[-1]
                out["gb_colour_exact"], out["gb_colour_error"] = palettes.match(frames[-1], want, mask)
        faults = getattr(self.port, "faults", None)
        if faults is not None:
            out.update({f"gb_line_{k}": v for k, v in faults.counts.items()})
        return out


def connect(port, **opts) -> GameBoyLink:
    """A connected ``GameBoyLink`` (the reference device's handshake; the Game Boy's HELLO is queued)."""
    opts.setdefault("seed", 1)
    opts.setdefault("max_payload", pr.MAX_PAYLOAD)
    return GameBoyLink(port, **opts).connect()

