"""Generate and stream: the one path of ``pxby-edge stream`` and ``pxby-edge demo``.

    pxby-edge stream --port auto --loop        # creature after creature to the handheld found
    pxby-edge demo --to gameboy                # one creature to the link ROM in PyBoy, every output kept

A *round* is one creature: its events, the rate of its audio tokens and how many audio samples it
plans (``Round``), from the generator (``generated_rounds``) or the built-in test pattern
(``synthetic_rounds``). ``transports.choose_device`` picks the device from ``--to`` and ``--port``;
``open_device`` connects it (a handheld on a serial URL, a simulated one started here, or a Game Boy);
``stream.stream_rounds`` sends rounds through its link. ``stream_live`` is ``stream``;
``run_demo`` is one round plus the generation's own outputs and a summary, in one output set.
"""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Optional

from firmware_bridge.errors import BridgeError
from firmware_bridge.stream import Round, stream_round, stream_rounds
from firmware_bridge.transports import GAMEBOY, HANDHELD, DeviceChoice

SIMULATED_HANDHELD = DeviceChoice(HANDHELD, None)  # the demo's device unless told otherwise: started on a pty
HANDHELD_OUTPUTS = ("handheld/screen.png", "handheld/screen.gif", "handheld/audio.wav")


# -- rounds ---------------------------------------------------------------------------------------


def seeds_from(base: int, fixed: bool) -> Callable[[int], int]:
    """Round k's seed: ``base + k`` when the seed is fixed (given, or one round), else a fresh random one."""
    import secrets

    drawn: dict = {}
    return lambda k: base + k if fixed else drawn.setdefault(k, secrets.randbelow(2**31))


def synthetic_rounds(seeds: Callable[[int], int]) -> Callable[[int], Round]:
    """Round k: the built-in test sprite and chirp (``stream.synthetic_events``) with seed ``seeds(k)``."""
    from firmware_bridge.stream import SYNTHETIC_AUDIO_RATE, synthetic_events

    return lambda k: Round(synthetic_events(seed=seeds(k)), SYNTHETIC_AUDIO_RATE, None, seeds(k))


def generated_round(run, *, progress: bool = False) -> Round:
    """A ``pxby_edge.generate.GenerationRun`` as a round: its events, at the rate and length its generator resolved."""
    gen = run.generator
    return Round(run.events(progress), gen.audio_rate, gen.audio_samples, gen.request.seed)


def generated_rounds(request_for: Callable[[int], object], seeds: Callable[[int], int], model=None, *,
                     backend: str = "auto", threads: int = 1) -> Callable[[int], Round]:
    """Round k: a generation of ``request_for(seeds(k))``. The first run is opened now, so a wrong model, a missing
    interpreter or an impossible request is reported before the device is waited for."""
    from pxby_edge.generate import run_generation

    def open_run(k: int):
        return run_generation(request_for(seeds(k)), model, backend=backend, threads=threads)

    first = open_run(0)
    return lambda k: generated_round(first if k == 0 else open_run(k))


def rounds_for(request_for: Callable[[int], object], model=None, *, synthetic: bool, seed: int, fixed_seed: bool,
               backend: str = "auto", threads: int = 1) -> Callable[[int], Round]:
    """What ``stream`` sends: the test pattern (``synthetic``) or generations of ``request_for(seed)``; round k
    is seeded ``seed + k``, or at random when the seed is not ``fixed_seed``."""
    seeds = seeds_from(seed, fixed_seed)
    if synthetic:
        return synthetic_rounds(seeds)
    return generated_rounds(request_for, seeds, model, backend=backend, threads=threads)


def prompted_rounds(request_for: Callable[[int, str], object], seeds: Callable[[int], int], model=None, *,
                    synthetic: bool = False, backend: str = "auto", threads: int = 1) -> Callable[[int, str], Round]:
    """Round k with a prompt chosen as the rounds go (a Game Boy session's Up/Down, ``gameboy.controller``): a
    generation of ``request_for(seeds(k), prompt)``, or (``synthetic``) the test pattern with the prompt as its text."""
    if synthetic:
        from firmware_bridge.stream import SYNTHETIC_AUDIO_RATE, synthetic_events

        return lambda k, prompt: Round(synthetic_events(seed=seeds(k), text=prompt), SYNTHETIC_AUDIO_RATE, None, seeds(k))
    from pxby_edge.generate import run_generation

    return lambda k, prompt: generated_round(run_generation(request_for(seeds(k), prompt), model, backend=backend,
                                                            threads=threads))


# -- devices --------------------------------------------------------------------------------------


class Handheld:
    """A serial handheld at ``url`` (resolved from ``auto``), or with ``url`` None a simulated one started here on
    a pty, capturing into ``capture_dir``. ``link`` is connected inside ``with``."""

    def __init__(self, url: Optional[str], *, baud: int = 115200, connect_timeout_s: float = 3.0,
                 capture_dir: Optional[Path] = None):
        self.url, self.baud, self.connect_timeout_s, self.capture_dir = url, baud, connect_timeout_s, capture_dir
        self.sim = None
        self.link = None

    def __enter__(self) -> Handheld:
        from firmware_bridge.link import Link
        from firmware_bridge.ports import resolve_port
        from firmware_bridge.simulator import Capture, Simulator, open_transport
        from firmware_bridge.stream import stream_needs

        if self.url is None:
            self.sim = Simulator(open_transport(pty=True), capture=Capture(self.capture_dir)).start()
            self.url = self.sim.transport.url
        else:
            self.url = resolve_port(self.url)
        try:
            self.link = Link(self.url, self.baud, connect_timeout_s=self.connect_timeout_s, need=stream_needs()).connect()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.link is not None:
            self.link.close()
        if self.sim is not None:
            self.sim.stop()
            self.sim.transport.close()

    def save(self) -> list[str]:
        """The simulated handheld's capture, once its speaker has played every sample sent (acknowledged is not
        yet played: it plays in real time), so handheld/audio.wav holds the whole cry."""
        if self.sim is None:
            return []
        self.sim.wait_played(self.link.session.counters.get("audio_samples_sent", 0) if self.link is not None else 0)
        return self.sim.capture.save()

    def counters(self) -> dict:
        """The simulated handheld's counters (what it received and played), empty for a real one."""
        return {"handheld": dict(self.sim.counters)} if self.sim is not None else {}


def device_outputs(device: DeviceChoice, *, reference: bool) -> tuple[str, ...]:
    """The files ``open_device`` leaves for ``device``: a Game Boy's screen and sound (and with ``reference``
    the reference device's, under handheld/), a simulated handheld's capture; nothing for a real handheld."""
    from firmware_bridge.gameboy.run import OUTPUTS as GAMEBOY_OUTPUTS

    if device.kind == GAMEBOY:
        return GAMEBOY_OUTPUTS + (HANDHELD_OUTPUTS if reference else ())
    return HANDHELD_OUTPUTS if device.url is None else ()


def open_device(device: DeviceChoice, folder: Optional[Path], *, reference: bool = False, baud: int = 115200,
                connect_timeout_s: float = 3.0):
    """The connected device ``device`` names (a context manager with ``link``, ``url``, ``save()``,
    ``counters()``); its files go under ``folder`` (``device_outputs``)."""
    from firmware_bridge.gameboy.run import GameBoyRun

    if device.kind == GAMEBOY:
        return GameBoyRun(device.url, folder, reference_dir=folder / "handheld" if reference and folder else None)
    capture = folder / "handheld" if folder is not None and device.url is None else None
    return Handheld(device.url, baud=baud, connect_timeout_s=connect_timeout_s, capture_dir=capture)


@contextmanager
def _output_set(out_dir, names, overwrite: bool):
    """An ``atomic.OutputSet`` for ``names`` in ``out_dir``, or None when there is nothing to write."""
    if not names:
        yield None
        return
    from pxby_edge.atomic import OutputSet

    with OutputSet(out_dir, names, overwrite) as out:
        yield out


# -- the two commands -------------------------------------------------------------------------------


def stream_live(make_round: Callable[[int], Round], device: DeviceChoice, *, out_dir=None, overwrite: bool = False,
                rounds: Optional[int] = 1, pause_s: float = 0.0, baud: int = 115200, connect_timeout_s: float = 3.0,
                **streamer_opts):
    """Send ``make_round(k)`` to ``device`` for k = 0, 1, ... (``rounds`` of them, None: until stopped); yields
    each round's figures. A device that records (a Game Boy) takes one round, and its files land in ``out_dir``
    (the last round's ``outputs``), all or none."""
    names = device_outputs(device, reference=False)
    if names and rounds != 1:
        raise BridgeError(f"a {device.kind} run takes one creature (drop --loop)")
    with ExitStack() as stack:
        out = stack.enter_context(_output_set(out_dir, names, overwrite))
        dev = stack.enter_context(open_device(device, out.folder if out else None, baud=baud,
                                              connect_timeout_s=connect_timeout_s))
        for stats in stream_rounds(dev.link, make_round, rounds=rounds, pause_s=pause_s, **streamer_opts):
            stats.update(dev.counters(), port=dev.url)
            if out is not None:
                stats["outputs"] = [out.final(p) for p in dev.save()]
                out.commit()
            yield stats


class _Transcript:
    """Passes a lane-0 stream of events on, keeping its text and the names of its segments for the summary."""

    def __init__(self):
        self.text: list[str] = []
        self.segments: list[str] = []

    def watch(self, events):
        from pxby_edge import events as ev

        for event in events:
            if event.stream == 0:
                if isinstance(event, ev.TextChar):
                    self.text.append(event.char)
                elif isinstance(event, ev.ModalityStart):
                    self.segments.append(event.modality)
            yield event


def run_demo(request, out_dir: Path, *, model=None, device: DeviceChoice = SIMULATED_HANDHELD,
             baud: int = 115200, backend: str = "auto", threads: int = 1, overwrite: bool = False,
             progress: bool = False, connect_timeout_s: float = 3.0) -> dict:
    """One generated creature streamed live to ``device`` (by default a simulated handheld on a pty); the
    generation's outputs, the device's and summary.json land in ``out_dir`` together, or none of them."""
    from pxby_edge import atomic
    from pxby_edge.generate import run_generation
    from pxby_edge.outputs import output_names, write_generation

    names = output_names(request.batch) + ["summary.json"] + list(device_outputs(device, reference=True))
    with atomic.OutputSet(out_dir, names, overwrite) as out:
        run = run_generation(request, model, backend=backend, threads=threads)
        transcript = _Transcript()
        with open_device(device, out.folder, reference=True, baud=baud, connect_timeout_s=connect_timeout_s) as dev:
            rnd = generated_round(run, progress=progress)
            link_stats = stream_round(dev.link, rnd._replace(events=transcript.watch(rnd.events)))
            written = write_generation(run.generator, out.folder, overwrite) + dev.save()
            counters = dev.counters()
        summary = run.summary()
        summary.update(prompt=request.prompt, seed=request.seed, text="".join(transcript.text), streamed=transcript.segments, port=dev.url,
                       link={k: v for k, v in link_stats.items() if isinstance(v, (int, float, str))},
                       handheld=counters.get("handheld"), gameboy=counters if device.kind == GAMEBOY else None)
        summary["outputs"] = [out.final(p) for p in written]
        atomic.atomic_write(out.folder / "summary.json", json.dumps(summary, indent=1).encode())
        out.commit()
    summary["outputs"].append(str(out.out_dir / "summary.json"))
    return summary
