"""Generator events to the device: text as it appears, the sprite row by row, each frame, the sound.

    pxby-edge stream MODEL --port socket://127.0.0.1:7777

``Streamer`` consumes ``pxby_edge.events`` records one at a time (``stream_round`` drives a whole
round). Drawing goes through a ``ScreenModel`` (what the screen should show) and a
``TileDiff`` (what the device has), so each row sends only the tiles it changed, then a COMMIT.
After any handshake (the first, or one after a device reset) the device may hold nothing: the
streamer resets it and redraws the whole screen; the link resumes the sound where it was.
Audio goes through ``AudioEncoder`` and is held on the host until the prebuffer computed from
the measured generation rate is full.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Callable, NamedTuple, Optional

import numpy as np

from firmware_bridge import protocol as pr
from firmware_bridge.audio import AudioEncoder, prebuffer_samples
from firmware_bridge.display import DMG_PALETTE, ScreenModel, TileDiff, encode_tiles
from firmware_bridge.errors import CapabilityError

FORMATS = {"u8": pr.AUDIO_U8, "u4": pr.AUDIO_U4}


def stream_needs() -> dict:
    """Capabilities a device needs for a stream: the full Game Boy screen as tiles, a 2-bit display."""
    return {
        "screen_w": pr.SCREEN_W,
        "screen_h": pr.SCREEN_H,
        "bpp": 2,
        "tile_slots": pr.MAP_W * pr.MAP_H,
        "max_payload": pr.fixed_size(pr.TILES) + pr.TILE_BYTES,
        "audio_buffer": 256,
    }


class Streamer:
    """Feeds one lane's events to a connected ``Link``."""

    def __init__(
        self,
        link,
        *,
        palette_rgb=None,
        lane: int = 0,
        dither: bool = False,
        text_rows: int = 4,
        commit_rows: bool = True,
        audio_rate: float,  # the source's: a Round's (the model's token rate, or the synthetic pattern's)
        audio_format: str = "u8",
        audio_channel: int = 0,
        audio_total: Optional[int] = None,
        expected_height: Optional[int] = None,
        speaker_filter: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        from pxby_edge.vocab import DEFAULT_PALETTE

        if audio_format not in FORMATS:
            raise CapabilityError(f"audio format must be one of {sorted(FORMATS)}, got {audio_format!r}")
        self.link = link
        self.session = link.session
        self.lane = lane
        self.commit_rows = commit_rows
        self.audio_rate = float(audio_rate)
        self.audio_fmt = FORMATS[audio_format]
        self.audio_channel = audio_channel
        self.audio_total = audio_total
        self.speaker_filter = speaker_filter
        self.clock = clock
        self.model = ScreenModel(palette_rgb if palette_rgb is not None else DEFAULT_PALETTE, dither=dither,
                                 text_rows=text_rows, expected_height=expected_height)
        self.diff = TileDiff(pr.MAP_W * pr.MAP_H)
        attach = getattr(link, "attach_screen", None)
        if attach is not None:  # a link that shows more than shades (a Game Boy Color) reads the model
            attach(self.model)
        self.frame_no = 0
        self._row: list[int] = []
        self._text_since_commit = 0
        self._text_unsent = ""
        self.encoder: Optional[AudioEncoder] = None
        self._audio_t0: Optional[float] = None
        self._events = 0
        self.stats = {"events": 0, "commits": 0, "tiles_sent": 0, "audio_samples": 0, "prebuffer": 0}
        self._handlers = self._event_handlers()
        # scipy.signal takes seconds to import on a small CPU: do it now, not mid-stream
        import scipy.signal  # noqa: F401

        self.session.on_session = self._on_session
        if self.session.state == "ready":
            self._on_session(self.session)

    # -- device state ------------------------------------------------------------------------
    def _on_session(self, session) -> None:
        """After a handshake the device may be fresh from a reset: clear it and redraw everything."""
        session.drop_unacked()
        session.queue(pr.RESET, b"", pr.CH_CONTROL)
        values = {f"{c}{i}": DMG_PALETTE[i][k] for i in range(4) for k, c in enumerate("rgb")}
        session.queue(pr.PALETTE, pr.pack(pr.PALETTE, **values), pr.CH_GRAPHICS)
        self.diff.reset()
        self._queue_tiles(session)
        session.queue(pr.COMMIT, pr.pack(pr.COMMIT, frame=self.frame_no), pr.CH_GRAPHICS)

    def _queue_tiles(self, session) -> int:
        per_msg = max(1, (session.max_payload - pr.fixed_size(pr.TILES)) // pr.TILE_BYTES)
        n = 0
        for first, data in self.diff.changes(encode_tiles(self.model.render()), per_msg):
            session.queue(pr.TILES, pr.pack(pr.TILES, data, first_slot=first), pr.CH_GRAPHICS)
            n += len(data) // pr.TILE_BYTES
        self.stats["tiles_sent"] += n
        return n

    def _send_tiles(self) -> None:
        s = self.session
        per_msg = max(1, (s.max_payload - pr.fixed_size(pr.TILES)) // pr.TILE_BYTES)
        for first, data in self.diff.changes(encode_tiles(self.model.render()), per_msg):
            self.link.send(pr.TILES, pr.pack(pr.TILES, data, first_slot=first), pr.CH_GRAPHICS)
            self.stats["tiles_sent"] += len(data) // pr.TILE_BYTES

    def commit(self) -> None:
        if self._text_unsent:
            # the text also goes as TEXT, for a device that draws it with its own font or logs it
            room = self.session.max_payload - pr.fixed_size(pr.TEXT)
            data = self._text_unsent.encode("ascii", "replace")
            for i in range(0, len(data), room):
                self.link.send(pr.TEXT, pr.pack(pr.TEXT, data[i : i + room], append=1), pr.CH_TEXT)
            self._text_unsent = ""
        self._send_tiles()
        self.link.send(pr.COMMIT, pr.pack(pr.COMMIT, frame=self.frame_no), pr.CH_GRAPHICS)
        self.stats["commits"] += 1
        self._text_since_commit = 0

    # -- events ------------------------------------------------------------------------------
    def feed(self, event) -> None:
        if getattr(event, "stream", 0) != self.lane:
            return
        self.stats["events"] += 1
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
        self._events += 1
        if self._events % 64 == 0:
            self.link.pump(block=False)

    def _event_handlers(self) -> dict:
        """Event type → what it does to the screen, the text or the sound (other events only count)."""
        from pxby_edge import events as ev

        return {ev.TextChar: self._on_text, ev.Pixel: lambda e: self._row.append(e.index), ev.RowEnd: self._on_row,
                ev.FrameEnd: self._on_frame, ev.AudioSample: self._on_sample, ev.ModalityStart: self._on_start,
                ev.ModalityEnd: self._on_end, ev.StreamEnd: self._on_stream_end}

    def _on_text(self, event) -> None:
        self.model.text += event.char
        self._text_unsent += event.char
        self._text_since_commit += 1
        if self._text_since_commit >= 8 or event.char == "\n":
            self.commit()

    def _on_row(self, event) -> None:
        self.model.set_row(event.row, self._row)
        self._row = []
        if self.commit_rows:
            self.commit()

    def _on_frame(self, event) -> None:
        if self.model.expected_height is None:
            self.model.expected_height = event.height
        self.commit()
        self.frame_no += 1

    def _on_sample(self, event) -> None:
        if event.channel == self.audio_channel:
            self._audio(event.level)

    def _on_start(self, event) -> None:
        if event.modality == "audio":
            self._audio_open()

    def _on_end(self, event) -> None:
        if event.modality == "text":
            self.commit()
        elif event.modality == "audio":
            self._audio_close()

    def _on_stream_end(self, event) -> None:
        if self.encoder is not None:
            self._audio_close()

    def _audio_open(self) -> None:
        caps = self.session.caps
        if self.encoder is not None:
            return
        self.encoder = AudioEncoder(self.audio_rate, caps.audio_rate, self.audio_fmt, speaker=self.speaker_filter)
        self._audio_chunk: list[float] = []
        self._audio_t0 = None
        self._audio_closed = False
        # hold everything until the generation rate is measured (see _audio)
        self.session.audio_start(caps.audio_rate, self.audio_fmt, prebuffer=1 << 30,
                                 device_prebuffer=min(caps.audio_buffer // 4, caps.audio_rate // 8))

    def _audio(self, level: float) -> None:
        if self.encoder is None:
            self._audio_open()
        if self._audio_t0 is None:
            self._audio_t0 = self.clock()
        self._audio_chunk.append(level)
        if len(self._audio_chunk) >= 128:
            self._audio_flush_chunk()

    def _audio_flush_chunk(self, end: bool = False) -> None:
        enc = self.encoder
        out = enc.push(self._audio_chunk)
        self._audio_chunk = []
        if end:
            out = np.concatenate([out, enc.flush()])
        self.stats["audio_samples"] += len(out)
        self.session.audio_push(out, end=end)
        s = self.session
        if s.audio_hold >= 1 << 30 and enc.samples_in >= enc.in_rate / 4:
            # a quarter second of sound tells how fast generation runs: size the prebuffer
            elapsed = max(1e-6, self.clock() - self._audio_t0)
            gen_rate = enc.samples_out / elapsed
            total = enc.expected_out(self.audio_total) if self.audio_total else None
            s.audio_hold = prebuffer_samples(gen_rate, enc.out_rate, total)
            self.stats["prebuffer"] = s.audio_hold
            self.stats["gen_rate"] = gen_rate
        self.link.pump(block=False)

    def _audio_close(self) -> None:
        if self.encoder is None or self._audio_closed:
            return
        self._audio_flush_chunk(end=True)
        self._audio_closed = True

    def finish(self, timeout_s: float = 60.0) -> dict:
        """Commit what is left and wait until the device has acknowledged everything."""
        if self._row:
            self.commit()
        if self.model.text and self._text_since_commit:
            self.commit()
        if self.encoder is not None and not self._audio_closed:
            self._audio_close()
        self.link.flush(timeout_s)
        return dict(self.stats, **self.session.counters)


class Round(NamedTuple):
    """One creature to send: its events, the rate of its audio tokens, how many audio samples it plans, and
    the seed that made it (reported with the round's figures)."""

    events: Iterable
    audio_rate: float
    audio_total: Optional[int]
    seed: Optional[int] = None


def stream_round(link, rnd: Round, *, progress: Optional[Callable[[object, dict], None]] = None, **opts) -> dict:
    """Stream every event of ``rnd`` through ``link`` (connected) and wait for delivery; this round's counters
    (the link's own, such as frames and bytes sent, count from the round's start, as the streamer's do).
    ``progress(event, counters)`` is called after each event is fed (for a live line; it must be quick)."""
    session = link.session
    before = dict(session.counters)
    streamer = Streamer(link, audio_rate=rnd.audio_rate, audio_total=rnd.audio_total, **opts)
    for event in rnd.events:
        streamer.feed(event)
        if progress is not None:
            progress(event, dict(streamer.stats, **_since(before, session.counters)))
    return dict(streamer.finish(), **_since(before, session.counters))


def _since(before: dict, now: dict) -> dict:
    """The link's counters counted from ``before`` (the round's start)."""
    return {k: v - before.get(k, 0) for k, v in now.items()}


def stream_rounds(link, make_round: Callable[[int], Round], *, rounds: Optional[int] = 1, pause_s: float = 0.0,
                  sleep: Callable[[float], None] = time.sleep, **opts) -> Iterator[dict]:
    """Send ``make_round(k)`` for k = 0, 1, ... (``rounds`` of them, or forever when None) over one
    connected ``link``, ``pause_s`` apart; yields each round's delivery counters with its number.

    Each round starts from a cleared screen (a new ``Streamer`` resets the device); a device that goes
    away ends the loop with the link's error, which is what a service manager restarts on."""
    k = 0
    while rounds is None or k < rounds:
        rnd = make_round(k)
        yield dict(stream_round(link, rnd, **opts), round=k, seed=rnd.seed)
        k += 1
        if pause_s > 0 and (rounds is None or k < rounds):
            sleep(pause_s)


SYNTHETIC_AUDIO_RATE = 8000  # the test chirp's sample rate: a source rate the encoder resamples, like a model's


def synthetic_events(frames: int = 3, size: int = 16, audio_s: float = 2.0, audio_rate: int = SYNTHETIC_AUDIO_RATE,
                     text: str = "a test sprite", seed: int = 0) -> list:
    """Events as the generator would yield them: a text, an animated sprite, a sound.

    For tests, benchmarks and ``pxby-edge stream --synthetic`` (no model needed). The sprite is
    a ring whose colours turn each frame; the sound a chirp quantized to the 38 action states.
    """
    from pxby_edge import events as ev
    from pxby_edge.vocab import Vocab

    vocab = Vocab()
    rng = np.random.default_rng(seed)
    out: list = [ev.ModalityStart(0, "text")]
    out += [ev.TextChar(0, ch, 0) for ch in text]
    out += [ev.ModalityEnd(0, "text"), ev.ModalityStart(0, "image")]
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    colours = rng.choice(vocab.n_palette, size=4, replace=False)
    for f in range(frames):
        band = ((r / max(1.0, size / 8)).astype(int) + f) % 4
        img = np.where(r < size / 2, colours[band], 1)  # 1: white background
        for y in range(size):
            for x in range(size):
                idx = int(img[y, x])
                out.append(ev.Pixel(0, f, y, x, idx, idx + vocab.palette_offset))
            out.append(ev.RowEnd(0, f, y, size))
        out.append(ev.FrameEnd(0, f, size, size))
    out += [ev.ModalityEnd(0, "image"), ev.ModalityStart(0, "audio")]
    n = int(audio_s * audio_rate)
    t = np.arange(n) / audio_rate
    wave = 0.8 * np.sin(2 * np.pi * (300 + 600 * t) * t)
    states = vocab.action_array()
    levels = states[np.abs(wave[:, None] - states[None, :]).argmin(axis=1)]
    for i, level in enumerate(levels):
        tok = int(np.abs(states - level).argmin()) + vocab.action_offset
        out.append(ev.AudioSample(0, i, 0, float(level), tok))
        out.append(ev.AudioSample(0, i, 1, float(level), tok))
    out += [ev.ModalityEnd(0, "audio"), ev.StreamEnd(0, len(out), "plan")]
    return out
