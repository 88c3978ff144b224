"""``pxby-edge demo``: the whole edge path in one command, offline, on the bundled model.

    pxby-edge demo --prompt "a small red fire creature" --out pxby-out

Generates a text, an animated sprite and a cry, streams them live to a simulated handheld that it
starts itself on a pty (or to a real device with --port), and leaves in the output folder: the
handheld's screen (handheld/screen.gif, every commit, and handheld/screen.png, the last one) and
what the handheld played (handheld/audio.wav), the sprite at full palette (sprite.png, sprite.gif),
the generated sound (audio.wav: original and Game Boy-filtered), the text and summary.json.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import click

from pxby_edge.cli import echo_outputs, info, show_progress
from pxby_edge.options import generation_options, request_from_options

DEMO_OUTPUTS = ("summary.json", "handheld/screen.png", "handheld/screen.gif", "handheld/audio.wav")


class _StreamSink:
    """``run_generation``'s event sink: each event to the device through a ``Streamer``, and the
    text and segment names kept for the summary. The streamer is made at the first event, when
    the generator has fixed the request's audio length (the prebuffer is sized by it)."""

    def __init__(self, link, request, audio_rate: int):
        self.link, self.request, self.audio_rate = link, request, audio_rate
        self.streamer = None
        self.text: list[str] = []
        self.segments: list[str] = []

    def __call__(self, event) -> None:
        from firmware_bridge.stream import Streamer
        from pxby_edge import events as ev

        if self.streamer is None:
            self.streamer = Streamer(self.link, audio_rate=self.audio_rate, audio_total=self.request.audio_samples)
        self.streamer.feed(event)
        if event.stream == 0:
            if isinstance(event, ev.TextChar):
                self.text.append(event.char)
            elif isinstance(event, ev.ModalityStart):
                self.segments.append(event.modality)

    def finish(self) -> dict:
        stats = self.streamer.finish() if self.streamer is not None else {}
        return {k: v for k, v in stats.items() if isinstance(v, (int, float, str))}


@contextmanager
def _device(port: Optional[str], to: Optional[str], folder: Path, connect_timeout_s: float, baud: int):
    """(port URL, connected link, simulator or None, Game Boy run or None) for the demo to stream to.

    A Game Boy (``to``, or a pyboy:// / spi:// port) is the link ROM, in PyBoy unless the port is spi://; its
    reference device (the simulator's core) writes handheld/ beside gameboy/. Otherwise ``port`` itself, or a
    simulated handheld on a new pty."""
    from firmware_bridge.gameboy.run import GameBoyRun, is_gameboy_url
    from firmware_bridge.link import Link
    from firmware_bridge.simulator import Capture, Simulator, open_transport
    from firmware_bridge.stream import stream_needs

    if to == "gameboy" or (to is None and is_gameboy_url(port)):
        url = port or "pyboy://"
        with GameBoyRun(url, folder, reference_dir=folder / "handheld") as run:
            yield url, run.link, None, run
        return
    sim = None
    if port is None:
        sim = Simulator(open_transport(pty=True), capture=Capture(folder / "handheld")).start()
        port = sim.transport.url
    try:
        with Link(port, baud, connect_timeout_s=connect_timeout_s, need=stream_needs()) as link:
            link.connect()
            yield port, link, sim, None
    finally:
        if sim is not None:
            sim.stop()
            sim.transport.close()


def _outputs(request, to: Optional[str], port: Optional[str]) -> list:
    from firmware_bridge.gameboy.run import OUTPUTS as GAMEBOY_OUTPUTS
    from firmware_bridge.gameboy.run import is_gameboy_url
    from pxby_edge.generate_files import output_names

    gameboy = to == "gameboy" or (to is None and is_gameboy_url(port))
    return output_names(request.batch) + list(DEMO_OUTPUTS) + (list(GAMEBOY_OUTPUTS) if gameboy else [])


def run_demo(
    request,
    out_dir: Path,
    *,
    model=None,
    port: Optional[str] = None,
    baud: int = 115200,
    backend: str = "auto",
    threads: int = 1,
    overwrite: bool = False,
    progress: bool = False,
    connect_timeout_s: float = 3.0,
    to: Optional[str] = None,
) -> dict:
    """``run_generation`` with a device (a simulated handheld on a pty unless ``port`` or ``to``) as its
    event sink; the outputs of both land in ``out_dir`` together, or none of them."""
    from pxby_edge import media
    from pxby_edge.generate import audio_rate_of, default_model_path, run_generation
    from pxby_edge.generate_files import generation_sink
    from pxby_edge.manifest import read_manifest

    model = Path(model) if model is not None else default_model_path()
    with media.OutputSet(out_dir, _outputs(request, to, port), overwrite) as out:
        with _device(port, to, out.folder, connect_timeout_s, baud) as (url, link, sim, run):
            sink = _StreamSink(link, request, audio_rate_of(read_manifest(model)))
            on_event, close = generation_sink(request, model, progress=progress, desc="demo", on_event=sink)
            try:
                summary = run_generation(request, model, backend=backend, threads=threads, out_dir=out.folder,
                                         on_event=on_event)
            finally:
                close()
            link_stats = sink.finish()
            if sim is not None:  # acknowledged is not yet played: let the speaker finish the cry
                sim.wait_played(link_stats.get("audio_samples_sent", 0))
            device_files = run.save() if run is not None else []
            gameboy = run.summary() if run is not None else None
        device_files += sim.capture.save() if sim is not None else []
        summary.update(prompt=request.prompt, text="".join(sink.text), streamed=sink.segments, port=url,
                       link=link_stats, handheld=sim.counters if sim is not None else None, gameboy=gameboy)
        summary["outputs"] = [out.final(p) for p in summary["outputs"] + device_files]
        media.atomic_write(out.folder / "summary.json", json.dumps(summary, indent=1).encode())
        out.commit()
    summary["outputs"].append(str(out.out_dir / "summary.json"))
    return summary


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@generation_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("pxby-out"), show_default=True, help="Folder for everything the demo makes.")
@click.option("--port", default=None, metavar="URL", help="Stream to this device instead of a simulated handheld on a pty.")
@click.option("--baud", default=115200, show_default=True, help="Baud rate of --port.")
@click.option("--force", is_flag=True, help="Overwrite the outputs of an earlier demo in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON summary instead of text.")
@click.option("--to", "to", type=click.Choice(["handheld", "gameboy"]), default=None,
              help="gameboy: stream to the link ROM (in PyBoy unless --port spi://...); also picked by a pyboy:// or spi:// --port.")
def demo(model, out_dir, port, baud, force, as_json, to, backend, threads, **options):
    """Generate a creature (text, animated sprite, cry) with the bundled model and stream it live
    to a simulated Game Boy-style handheld; everything lands in --out.

    Works offline. MODEL defaults to the bundled model; --port streams to a real device (or to
    `pxby-edge handheld`) instead of the built-in simulator.
    """
    if options.get("prompt") is None and options.get("prompt_file") is None:
        options["prompt"] = DEFAULT_DEMO_PROMPT
        options["complete_text"] = False  # the default prompt is a whole description already
    if options.get("frames") is None:
        options["frames"] = 3
    for side in ("width", "height"):
        if options.get(side) is None:
            options[side] = DEMO_SPRITE_PX
    if options.get("audio_seconds") is None:
        options["audio_seconds"] = DEFAULT_DEMO_AUDIO_S
    request = request_from_options(**options)
    summary = run_demo(
        request, out_dir, port=port, baud=baud, backend=backend, threads=threads, overwrite=force,
        progress=show_progress(), model=model, to=to,
    )
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    info(f"prompt: {summary['prompt']}")
    info(f"text:   {summary['text']}")
    info(
        f"{summary['tokens']} tokens, {summary['tokens_per_s']:,.0f} tok/s generated and streamed with {summary['backend']} "
        f"to {summary['port']} in {summary['seconds']:.1f} s"
    )
    echo_outputs(summary)


DEFAULT_DEMO_PROMPT = "a small blue water creature with horns and a tail. it is blue."
DEMO_SPRITE_PX = 24  # the bundled model was trained on 24x24 creatures and does not yet count rows reliably
DEFAULT_DEMO_AUDIO_S = 0.5  # the synthetic cries last 0.2-0.3 s; a cap keeps a rambling model short
