"""The ``handheld`` and ``stream`` commands (registered lazily by cli.py).

    pxby-edge handheld --pty --capture out/handheld &
    pxby-edge stream --synthetic --port /dev/pts/N

Only click is imported here; everything heavy is imported inside the command that needs it.
"""

from __future__ import annotations

import click

from pxby_edge.generate_command import generation_options, request_from_options


@click.command()
@click.option("--pty", "use_pty", is_flag=True, help="Serve on a new pseudo-terminal (the default).")
@click.option("--port", default=None, metavar="URL",
              help="socket://HOST:PORT to listen on (loopback unless HOST says otherwise), or a serial URL to open.")
@click.option("--baud", default=115200, show_default=True, help="Baud rate when --port is a serial device.")
@click.option("--capture", "capture_dir", default=None, type=click.Path(file_okay=False),
              help="Write screen.png, screen.gif and audio.wav here.")
@click.option("--tty", "live", is_flag=True, help="Draw the screen live in this terminal (half blocks, 24-bit colour).")
@click.option("--seconds", default=None, type=float, help="Exit after this many seconds (default: until Ctrl-C).")
def handheld(use_pty, port, baud, capture_dir, live, seconds):
    """Play the handheld: a device simulator speaking the firmware's protocol.

    The first line of output is `port: <path or URL>` for the host to open.
    """
    import sys

    from firmware_bridge.simulator import Capture, Simulator, open_transport

    if use_pty and port:
        raise click.UsageError("give --pty or --port, not both")
    transport = open_transport(pty=use_pty or port is None, port=port, baud=baud)
    click.echo(f"port: {transport.url}")
    sys.stdout.flush()
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
    click.echo(
        f"frames ok {c['frames_ok']}, crc errors {c['crc_errors']}, bad {c['frames_bad']}, duplicates {c['dup_frames']}, "
        f"out of order {c['out_of_order']}, commits {c['commits']}, samples played {c['samples_played']}, "
        f"gaps {c['gaps']}, underruns {c['underruns']}, boots {c['boots']}, bytes in {c['bytes_in']}"
    )
    for path in written:
        click.echo(f"wrote {path}")


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--port", required=True, metavar="URL", help="The device: /dev/ttyACM0, a pty path, socket://HOST:PORT.")
@click.option("--baud", default=115200, show_default=True, help="Baud rate of the serial line.")
@generation_options
@click.option("--dither", is_flag=True, help="Ordered (Bayer) dithering between the 4 shades.")
@click.option("--audio-format", type=click.Choice(["u8", "u4"]), default="u8", show_default=True, help="Sample format on the wire.")
@click.option("--synthetic", is_flag=True, help="Stream a built-in test sprite and sound instead of generating.")
@click.option("--connect-timeout", default=3.0, show_default=True, type=float, help="Seconds to wait for the device.")
@click.option("--to", "target", type=click.Choice(["serial", "gameboy"]), default=None,
              help="The device kind (default: a Game Boy for pyboy:// and spi:// ports, else serial).")
@click.option("--out", "out_dir", default="pxby-out", show_default=True, type=click.Path(file_okay=False),
              help="With a Game Boy: write gameboy/screen.png, screen.gif and audio.wav here.")
@click.option("--force", is_flag=True, help="Overwrite earlier outputs in --out.")
def stream(model, port, baud, dither, audio_format, synthetic, connect_timeout, target, out_dir, force, backend,
           threads, **options):
    """Generate with MODEL (default: the bundled one) and send it live to a device or `pxby-edge handheld`:
    text as it appears, the sprite row by row, each animation frame, then the cry."""
    from firmware_bridge.link import Link
    from firmware_bridge.stream import Streamer, stream_needs, synthetic_events

    opts = dict(dither=dither, audio_format=audio_format)
    if synthetic:
        events, audio_rate, audio_total = synthetic_events(), 8000, None
    else:
        gen, audio_rate = _generation(model, options, backend, threads)
        events, audio_total = gen.events(), gen.request.audio_samples
    from firmware_bridge.gameboy.run import describe, is_gameboy_url, stream_events

    if target == "gameboy" or (target is None and is_gameboy_url(port)):
        stats = stream_events(events, port, out_dir, audio_rate=audio_rate, audio_total=audio_total, overwrite=force,
                              dither=dither)
        click.echo(describe(stats))
        for path in stats["outputs"]:
            click.echo(f"wrote {path}")
        return
    with Link(port, baud, connect_timeout_s=connect_timeout, need=stream_needs()) as link:
        link.connect()
        streamer = Streamer(link, audio_rate=audio_rate, audio_total=audio_total, **opts)
        for event in events:
            streamer.feed(event)
        stats = streamer.finish()
    click.echo(
        f"sent {stats['commits']} commits, {stats['tiles_sent']} tiles, {stats['audio_samples']} audio samples in "
        f"{stats['frames_sent']} frames ({stats['bytes_sent']} bytes); retransmits {stats['retransmits']}, "
        f"reconnects {stats['reconnects']}"
    )


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
