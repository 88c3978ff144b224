"""The ``handheld``, ``stream`` and ``ports`` commands (registered lazily by cli.py).

    pxby-edge handheld --pty --capture out/handheld &
    pxby-edge ports
    pxby-edge stream --synthetic            # --port auto: the one handheld found

Only click is imported here; everything heavy is imported inside the command that needs it.
"""

from __future__ import annotations

import click

from pxby_edge.cli import info
from pxby_edge.options import generation_options, request_from_options


@click.command()
@click.option("--pty", "use_pty", is_flag=True, help="Serve on a new pseudo-terminal (the default).")
@click.option("--port", default=None, metavar="URL",
              help="socket://HOST:PORT to listen on (loopback unless HOST says otherwise), or a serial URL to open.")
@click.option("--baud", default=115200, show_default=True, help="Baud rate when --port is a serial device.")
@click.option("--capture", "capture_dir", default=None, type=click.Path(file_okay=False),
              help="Write screen.png, screen.gif and audio.wav here.")
@click.option("--tty", "live", is_flag=True, help="Draw the screen live in this terminal (half blocks, 24-bit colour; NO_COLOR does not apply to what you ask for).")
@click.option("--seconds", default=None, type=float, help="Exit after this many seconds (default: until Ctrl-C).")
def handheld(use_pty, port, baud, capture_dir, live, seconds):
    """Play the handheld: a device simulator speaking the firmware's protocol.

    The first line of output is `port: <path or URL>` for the host to open.
    """
    import sys

    from firmware_bridge.ports import announce
    from firmware_bridge.simulator import open_transport

    if use_pty and port:
        raise click.UsageError("give --pty or --port, not both")
    transport = open_transport(pty=use_pty or port is None, port=port, baud=baud)
    with announce(transport.url):  # before the port line: a host that read it finds the handheld with auto
        click.echo(f"port: {transport.url}")
        sys.stdout.flush()
        _serve(transport, capture_dir, live, seconds)


def _serve(transport, capture_dir, live, seconds):
    """Run the simulator on ``transport`` until ``seconds`` pass or a signal stops it; print its counters."""
    import sys

    from firmware_bridge.simulator import Capture, Simulator

    writer = None
    if live:
        click.echo("\x1b[2J", nl=False)

        def writer(text):
            sys.stdout.write(text)
            sys.stdout.flush()

    sim = Simulator(transport, capture=Capture(capture_dir), live=writer)
    import signal

    # Ctrl-C and systemd's SIGTERM end the loop between steps, so the capture is always saved whole.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sim.stop())
    try:
        sim.serve(seconds)
    finally:
        written = sim.capture.save()
        transport.close()
    c = sim.counters
    info(
        f"frames ok {c['frames_ok']}, crc errors {c['crc_errors']}, bad {c['frames_bad']}, duplicates {c['dup_frames']}, "
        f"out of order {c['out_of_order']}, commits {c['commits']}, samples played {c['samples_played']}, "
        f"gaps {c['gaps']}, underruns {c['underruns']}, boots {c['boots']}, bytes in {c['bytes_in']}"
    )
    for path in written:
        info(f"wrote {path}")


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--port", default="auto", show_default=True, metavar="URL",
              help="The device: auto (the one handheld `pxby-edge ports` finds), /dev/ttyACM0, a pty path, "
                   "socket://HOST:PORT.")
@click.option("--baud", default=115200, show_default=True, help="Baud rate of the serial line.")
@generation_options
@click.option("--dither", is_flag=True, help="Ordered (Bayer) dithering between the 4 shades.")
@click.option("--audio-format", type=click.Choice(["u8", "u4"]), default="u8", show_default=True, help="Sample format on the wire.")
@click.option("--synthetic", is_flag=True, help="Stream a built-in test sprite and sound instead of generating.")
@click.option("--connect-timeout", default=3.0, show_default=True, type=float, help="Seconds to wait for the device.")
@click.option("--loop", is_flag=True,
              help="Send creature after creature until stopped: a new random seed each round, or --seed, +1, +2, ... "
                   "To a Game Boy: an interactive session (A new creature, B cry again, Up/Down prompt, Start pause).")
@click.option("--pause", type=click.FloatRange(0), default=5.0, show_default=True, help="Seconds between rounds of --loop.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per round on stdout instead of a sentence.")
@click.option("--to", "target", type=click.Choice(["serial", "gameboy"]), default=None,
              help="The device kind (default: a Game Boy for pyboy:// and spi:// ports, else serial); "
                   "--to gameboy with --port auto runs the link ROM in PyBoy.")
@click.option("--out", "out_dir", default="pxby-out", show_default=True, type=click.Path(file_okay=False),
              help="With a Game Boy: write gameboy/screen.png, screen.gif and audio.wav here.")
@click.option("--force", is_flag=True, help="Overwrite earlier outputs in --out.")
@click.pass_context
def stream(ctx, model, port, baud, dither, audio_format, synthetic, connect_timeout, loop, pause, as_json, target,
           out_dir, force, backend,
           threads, **options):
    """Generate with MODEL (default: the bundled one) and send it live to a device or `pxby-edge handheld`:
    text as it appears, the sprite row by row, each animation frame, then the cry."""
    import json

    from firmware_bridge.gameboy.run import is_gameboy_url
    from firmware_bridge.link import Link
    from firmware_bridge.ports import resolve_port
    from firmware_bridge.stream import stream_needs, stream_rounds

    fixed_seed = ctx.get_parameter_source("seed") is not click.core.ParameterSource.DEFAULT or not loop
    seeds = _seeds(options["seed"], fixed_seed)
    make_round = _synthetic_round(seeds) if synthetic else _generated_round(model, options, seeds, backend, threads)
    if target == "gameboy" or (target is None and is_gameboy_url(port)):
        url = "pyboy://" if port == "auto" else port
        if loop:
            _gameboy_session(model, options, seeds, synthetic, backend, threads, url, out_dir, force, pause,
                             dither, as_json)
            return
        _to_gameboy(make_round(0), url, out_dir, force, dither, as_json)
        return
    url = resolve_port(port)
    with Link(url, baud, connect_timeout_s=connect_timeout, need=stream_needs()) as link:
        link.connect()
        for stats in stream_rounds(link, make_round, rounds=None if loop else 1, pause_s=pause, dither=dither,
                                   audio_format=audio_format):
            stats["seed"] = seeds(stats["round"])
            if as_json:
                click.echo(json.dumps(stats))
            else:
                info(_summary(stats))


def _to_gameboy(round_, url: str, out_dir, force: bool, dither: bool, as_json: bool) -> None:
    """One creature to the link ROM at ``url``; what the Game Boy showed and played lands in ``out_dir``/gameboy."""
    import json

    from firmware_bridge.gameboy.run import describe, stream_events

    stats = stream_events(round_.events, url, out_dir, audio_rate=round_.audio_rate, audio_total=round_.audio_total,
                          overwrite=force, dither=dither)
    if as_json:
        click.echo(json.dumps(stats))
        return
    click.echo(describe(stats))
    for path in stats["outputs"]:
        click.echo(f"wrote {path}")


def _gameboy_session(model, options, seeds, synthetic, backend, threads, url, out_dir, force, pause, dither,
                     as_json) -> None:
    """--loop to a Game Boy: the interactive session of ``gameboy.controller`` (A new creature, B the cry
    again, Up/Down a prompt, Start pause) until stopped; one line (or JSON object) per creature."""
    import json
    import signal

    from firmware_bridge.gameboy.controller import PROMPTS, play
    from firmware_bridge.gameboy.run import describe
    from firmware_bridge.stream import Round, synthetic_events

    own = options.get("prompt") if options.get("prompt") not in (None, "-") else None
    prompts = ([own] if own else []) + list(PROMPTS)

    def make_round(k: int, prompt: str) -> Round:
        if synthetic:
            return Round(synthetic_events(seed=seeds(k), text=prompt), 8000, None)
        opts = dict(options, seed=seeds(k), prompt=prompt, prompt_file=None)
        if prompt != own:
            opts["complete_text"] = False  # the list's prompts are whole descriptions
        gen, rate = _generation(model, opts, backend, threads)
        return Round(gen.events(), rate, gen.request.audio_samples)

    def on_round(stats: dict) -> None:
        stats["seed"] = seeds(stats["round"])
        if as_json:
            click.echo(json.dumps(stats))
        else:
            info(f"creature {stats['round'] + 1} (seed {stats['seed']}): {describe(stats)}")

    def stop(*_):
        raise KeyboardInterrupt  # the session saves gameboy/ and ends; systemd's SIGTERM, like Ctrl-C

    signal.signal(signal.SIGTERM, stop)
    play(url, make_round, prompts, out_dir, overwrite=force, pause_s=pause, on_round=on_round, dither=dither)


def _seeds(base: int, fixed: bool):
    """Round k's seed: ``base + k`` when the seed was given (or one round is sent), else a fresh random one."""
    import secrets

    drawn: dict = {}
    return lambda k: base + k if fixed else drawn.setdefault(k, secrets.randbelow(2**31))


def _summary(stats: dict) -> str:
    return (
        f"sent {stats['commits']} commits, {stats['tiles_sent']} tiles, {stats['audio_samples']} audio samples in "
        f"{stats['frames_sent']} frames ({stats['bytes_sent']} bytes); retransmits {stats['retransmits']}, "
        f"reconnects {stats['reconnects']}"
    )


def _synthetic_round(seeds):
    from firmware_bridge.stream import Round, synthetic_events

    return lambda k: Round(synthetic_events(seed=seeds(k)), 8000, None)


def _generated_round(model, options, seeds, backend, threads):
    """Round k: a generation with seed ``seeds(k)``; the first is set up now, so a wrong model or a missing
    runtime is reported before the device is waited for."""
    from firmware_bridge.stream import Round

    first = _generation(model, dict(options, seed=seeds(0)), backend, threads)

    def make(k: int) -> Round:
        gen, rate = first if k == 0 else _generation(model, dict(options, seed=seeds(k)), backend, threads)
        return Round(gen.events(), rate, gen.request.audio_samples)

    return make


def _generation(model, options, backend, threads):
    """(Generator, audio rate) for the model, or a one-line error when the runtime is not installed."""
    from firmware_bridge.errors import RuntimeUnavailable

    try:
        from pxby_edge.backends import open_backend
        from pxby_edge.generate import Generator, audio_rate_of, default_model_path
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"generation runtime not available in this install ({exc}); use --synthetic to test the link"
        ) from exc
    request = request_from_options(**options)
    be = open_backend(model or default_model_path(), backend=backend, threads=threads)
    return Generator(be, request), audio_rate_of(be.manifest)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the ports as a JSON list.")
def ports(as_json):
    """Serial ports of this machine and running simulated handhelds; `handheld` marks what --port auto takes."""
    import json

    from firmware_bridge.ports import list_handheld_ports

    found = list_handheld_ports()
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in found], indent=2))
        return
    if not found:
        click.echo("no serial ports found (plug the handheld in, or start `pxby-edge handheld`)")
    for p in found:
        click.echo(f"{p.device:<28} {p.hwid or '-':<10} {'handheld' if p.handheld else '-':<9} {p.description}")
