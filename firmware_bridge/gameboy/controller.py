"""The Game Boy as the controller of an endless stream: `pxby-edge stream --to gameboy --loop`.

    pxby-edge stream --synthetic --to gameboy --port pyboy://window --loop

Between creatures the host asks the link ROM for its joypad a few times a second (``read_buttons``:
query bytes outside a packet, docs/protocol.md "Joypad and model"; the ROM latches a press between
two questions, so a short one is not missed):

- A: a new creature now (the next seed, the prompt chosen),
- B: the last cry again,
- Up / Down: choose the prompt from a short list shown in the text area,
- Start: pause (no new creature by itself; the buttons still work) or resume.

Unpaused, a new creature follows every ``pause_s`` seconds, as `--loop` does for a serial handheld.
Presses made while a creature streams count once it is on the screen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

from firmware_bridge.gameboy import packets as gl

BUTTONS = {"a": 1, "b": 2, "select": 4, "start": 8}  # the ROM's answer to Q_BUTTONS
DPAD = {"right": 1, "left": 2, "up": 4, "down": 8}  # and to Q_DPAD
POLL_FRAMES = 6  # about 10 questions a second
PROMPTS = (  # whole descriptions in the training style (the model ends the text where they end)
    "a small blue water creature with horns and a tail. it is blue.",  # pxby_edge.generate.DEFAULT_PROMPT
    "a small red fire creature with wings. it is red.",
    "a green grass creature with leaves. it is green.",
    "a yellow electric creature with a long tail. it is yellow.",
    "a purple ghost creature with big eyes. it is purple.",
)
KEPT_AUDIO_FRAMES = 3600  # an emulator's sound kept while waiting (a minute): a paused session runs for days
MENU_LINES = 3  # what the 4-row text area (9-pixel lines) holds


def read_buttons(port) -> Optional[frozenset]:
    """Names of the buttons pressed since the last read (a press is latched by the ROM until read; one
    held across reads counts once); None from a ROM that does not answer (one older than the queries)."""
    host = port.host
    host.ask(gl.Q_BUTTONS, gl.Q_DPAD, gl.Q_CLEAR)
    port.run_until(lambda: not host.asks, what="reading the joypad")
    buttons, dpad = host.replies.get(gl.Q_BUTTONS), host.replies.get(gl.Q_DPAD)
    if buttons is None or dpad is None:
        return None
    return frozenset([n for n, bit in BUTTONS.items() if buttons & bit] + [n for n, bit in DPAD.items() if dpad & bit])


class Controller:
    """Creature after creature on ``run`` (a ``GameBoyRun``), steered from the Game Boy's buttons.

    ``make_round(k, prompt)`` gives round k's ``stream.Round``; ``run()`` yields each round's
    figures. ``on_poll(self)`` runs before each joypad read (tests press buttons there)."""

    def __init__(self, run, make_round: Callable, prompts=PROMPTS, *, pause_s: float = 5.0,
                 poll_frames: int = POLL_FRAMES, on_poll: Optional[Callable] = None,
                 stop: Callable[[], bool] = lambda: False, **streamer_opts):
        self.run_ = run
        self.make_round = make_round
        self.prompts = list(dict.fromkeys(prompts))
        self.pause_s = pause_s
        self.poll_frames = poll_frames
        self.on_poll = on_poll
        self.stop = stop  # asked between rounds and at every poll: True ends the session there
        self.streamer_opts = streamer_opts
        self.choice = 0
        self.paused = False
        self.streamer = None
        self.round = 0
        self.log: list[tuple[int, str]] = []  # (round, what happened), for the summary and tests

    @property
    def prompt(self) -> str:
        return self.prompts[self.choice]

    def run(self, rounds: Optional[int] = None) -> Iterator[dict]:
        k = 0
        while (rounds is None or k < rounds) and not self.stop():
            yield self._round(k)
            k += 1
            if rounds is not None and k >= rounds:
                return
            self._wait()

    def _round(self, k: int) -> dict:
        from firmware_bridge.stream import Streamer

        link = self.run_.link
        self.round = k
        link.new_round()
        rnd = self.make_round(k, self.prompt)
        self.streamer = Streamer(link, audio_rate=rnd.audio_rate, audio_total=rnd.audio_total, **self.streamer_opts)
        for event in rnd.events:
            self.streamer.feed(event)
        stats = self.streamer.finish()
        self.log.append((k, "creature"))
        return dict(stats, round=k, seed=rnd.seed, prompt=self.prompt)

    def _wait(self) -> None:
        """Until a new creature is due: A, or ``pause_s`` without a press while not paused."""
        port = self.run_.port
        waited = 0
        frames_due = int(self.pause_s * 59.73)
        while (self.paused or waited < frames_due) and not self.stop():
            if self.on_poll is not None:
                self.on_poll(self)
            pressed = self._pressed(port)
            if "a" in pressed:
                return
            if pressed:
                self._act(pressed)
                waited = 0
            port.settle(self.poll_frames)
            waited += self.poll_frames
            del port.audio[: max(0, len(port.audio) - KEPT_AUDIO_FRAMES)]

    def _pressed(self, port) -> frozenset:
        """Buttons pressed since the last read (the ROM latches each press until read: held, one counts once)."""
        now = read_buttons(port)
        if now is None:
            from firmware_bridge.errors import LinkError

            raise LinkError(f"no answer to the joypad query (status {gl.status_name(port.host.last_status)}): a dead "
                            "link (cable, power) or a link ROM older than this version (flash the one shipped with it)")
        return now

    def _act(self, pressed: frozenset) -> None:
        k = self.round
        if "b" in pressed:
            self.log.append((k, "cry"))
            self.run_.link.replay_cry()
        if "start" in pressed:
            self.paused = not self.paused
            self.log.append((k, "pause" if self.paused else "resume"))
            self._show()
        step = ("down" in pressed) - ("up" in pressed)
        if step:
            self.choice = (self.choice + step) % len(self.prompts)
            self.log.append((k, f"prompt {self.choice}"))
            self._show()

    def _show(self) -> None:
        """The prompt list (the choice marked) and the pause state in the text area, at once."""
        s = self.streamer
        lines = [("paused " if self.paused else "") + f"prompt {self.choice + 1}/{len(self.prompts)}"]
        first = max(0, min(self.choice - (MENU_LINES - 2), len(self.prompts) - (MENU_LINES - 1)))
        for i in range(first, min(len(self.prompts), first + MENU_LINES - 1)):
            lines.append(s.model.fit_line(("> " if i == self.choice else "  ") + self.prompts[i]))
        s.model.text = "\n".join(lines)
        s.commit()
        self.run_.link.deliver()




def play(url: str, make_round: Callable, prompts=PROMPTS, out_dir=None, *, overwrite: bool = False,
         pause_s: float = 5.0, rounds: Optional[int] = None, on_poll: Optional[Callable] = None,
         stop: Callable[[], bool] = lambda: False, **streamer_opts) -> Iterator[dict]:
    """An interactive session on the Game Boy at ``url`` until ``rounds`` are done, ``stop()`` says so (a
    signal handler's flag: an exception raised in a signal handler is lost inside PyBoy's serial callback)
    or the link fails; yields each round's figures once gameboy/ in ``out_dir`` holds that round's
    screen, frames and sound (each round replaces the last: a session runs for days)."""
    from firmware_bridge.gameboy.run import OUTPUTS, GameBoyRun
    from pxby_edge.atomic import check_writable

    if out_dir is not None:
        for name in OUTPUTS:  # before the Game Boy is waited for
            check_writable(Path(out_dir) / name, overwrite)
    with GameBoyRun(url, None) as run:
        ctl = Controller(run, make_round, prompts, pause_s=pause_s, on_poll=on_poll, stop=stop, **streamer_opts)
        saved = False
        for stats in ctl.run(rounds):
            stats = {**stats, **run.counters(), "port": url}
            if out_dir is not None:
                stats["outputs"] = _save(run, out_dir, overwrite or saved)
                saved = True
            yield stats
            run.forget()
        if stop() and saved:
            _save(run, out_dir, True)  # what it showed last (a prompt chosen, paused) when stopped


def _save(run, out_dir, overwrite: bool) -> list[str]:
    """gameboy/ of ``run`` into ``out_dir``, whole or not at all; the paths written."""
    from pxby_edge.atomic import OutputSet

    with OutputSet(out_dir, [], overwrite) as out:
        run.out_dir = out.folder
        written = [out.final(p) for p in run.save()]
        out.commit()
    return written
