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
import sys
import time
from pathlib import Path
from typing import Optional

import click

from pxby_edge.generate_command import generation_options, request_from_options

DEMO_OUTPUTS = ("summary.json", "handheld/screen.png", "handheld/screen.gif", "handheld/audio.wav")


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
    """Generate, stream to a handheld (a simulator on a pty unless ``port``), write the outputs."""
    from firmware_bridge.link import Link
    from firmware_bridge.stream import Streamer, stream_needs
    from pxby_edge import media
    from pxby_edge.backends import open_backend
    from pxby_edge.generate import (
        Generator,
        _check_outputs_free,
        audio_rate_of,
        default_model_path,
        peak_rss_mb,
        step_stats,
        write_lanes,
    )

    out_dir = Path(out_dir)
    _check_outputs_free(out_dir, 1, overwrite)
    for name in DEMO_OUTPUTS:
        if not overwrite and (out_dir / name).exists():
            media.check_writable(out_dir / name)
    t_start = time.perf_counter()
    model = Path(model) if model is not None else default_model_path()
    be = open_backend(model, backend=backend, threads=threads)
    gen = Generator(be, request)
    audio_rate = audio_rate_of(be.manifest)
    sim, run, port = _start_device(port, to, out_dir, overwrite)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="tok", desc="demo", leave=False, mininterval=0.25)
    try:
        with run if run is not None else Link(port, baud, connect_timeout_s=connect_timeout_s, need=stream_needs()) as link:
            link = link.link if run is not None else link.connect()
            streamer = Streamer(link, audio_rate=audio_rate, audio_total=request.audio_samples)
            t_gen = time.perf_counter()
            shown = 0
            for event in gen.events():
                streamer.feed(event)
                if bar is not None and len(gen.step_ns) - shown >= 64:
                    bar.update(len(gen.step_ns) - shown)
                    shown = len(gen.step_ns)
            t_generated = time.perf_counter()
            link_stats = streamer.finish()
            handheld_files = run.save() if run is not None else []
    finally:
        if bar is not None:
            bar.close()
        if sim is not None:
            sim.stop()
            sim.transport.close()
    handheld_files += sim.capture.save() if sim is not None else []
    lane = gen.lanes[0]
    outputs = write_lanes(gen, out_dir, audio_rate, overwrite)
    gen_seconds = t_generated - t_gen
    summary = {
        "model": str(model),
        "backend": be.name,
        "prompt": request.prompt,
        "text": gen.tok.decode(lane.tokens)["text"],
        "tokens": lane.generated,
        "prompt_tokens": gen.prompt_tokens,
        "segments": lane.builder.segments,
        "seconds": time.perf_counter() - t_start,
        "generate_and_stream_seconds": gen_seconds,
        "tokens_per_s": lane.generated / gen_seconds if gen_seconds > 0 else 0.0,
        **step_stats(gen.step_ns),
        "peak_rss_mb": peak_rss_mb(),
        "port": port,
        "link": {k: v for k, v in link_stats.items() if isinstance(v, (int, float, str))},
        "handheld": sim.counters if sim is not None else None,
        "gameboy": run.summary() if run is not None else None,
        "outputs": outputs + handheld_files,
    }
    summary_path = media.atomic_write(out_dir / "summary.json", json.dumps(summary, indent=1).encode(), overwrite)
    summary["outputs"].append(str(summary_path))
    return summary


def _start_device(port: Optional[str], to: Optional[str], out_dir: Path, overwrite: bool):
    """(simulator, Game Boy run, port): a simulator on a pty when no port is given; for a Game Boy
    (``to``, or a pyboy:// / spi:// port) its reference device writes handheld/, the Game Boy gameboy/."""
    from firmware_bridge.gameboy.run import GameBoyRun, is_gameboy_url
    from firmware_bridge.simulator import Capture, Simulator, open_transport

    if to == "gameboy" or (to is None and is_gameboy_url(port)):
        port = port or "pyboy://"
        return None, GameBoyRun(port, out_dir, overwrite=overwrite, reference_dir=out_dir / "handheld"), port
    if port is None:
        sim = Simulator(open_transport(pty=True), capture=Capture(out_dir / "handheld")).start()
        return sim, None, sim.transport.url
    return None, None, port


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
    if options.get("prompt") is None:
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
        progress=sys.stderr.isatty(), model=model, to=to,
    )
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    click.echo(f"prompt: {summary['prompt']}")
    click.echo(f"text:   {summary['text']}")
    click.echo(
        f"{summary['tokens']} tokens, {summary['tokens_per_s']:,.0f} tok/s generated and streamed with {summary['backend']} "
        f"to {summary['port']}; {summary['seconds']:.1f} s in all"
    )
    for path in summary["outputs"]:
        click.echo(f"wrote {path}")


DEFAULT_DEMO_PROMPT = "a small blue water creature with horns and a tail. it is blue."
DEMO_SPRITE_PX = 24  # the bundled model was trained on 24x24 creatures and does not yet count rows reliably
DEFAULT_DEMO_AUDIO_S = 0.5  # the synthetic cries last 0.2-0.3 s; a cap keeps a rambling model short
