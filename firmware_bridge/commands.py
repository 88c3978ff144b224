"""The ``handheld`` and ``stream`` commands (registered lazily by cli.py).

    pxby-edge handheld --pty --capture out/handheld &
    pxby-edge stream --synthetic --port /dev/pts/N

Only click is imported here; everything heavy is imported inside the command that needs it.
"""

from __future__ import annotations

import click


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
    try:
        sim.serve(seconds)
    except KeyboardInterrupt:
        pass
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
@click.option("--baud", default=115200, show_default=True)
@click.option("--prompt", default=None, help="Text to start from (default: the generator's).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--temperature", default=0.8, show_default=True, type=float)
@click.option("--max-tokens", default=20000, show_default=True, type=int)
@click.option("--frames", default=None, type=int, help="Animation frames to generate.")
@click.option("--audio-samples", default=None, type=int, help="Audio samples to generate.")
@click.option("--backend", default="auto", show_default=True)
@click.option("--dither", is_flag=True, help="Ordered (Bayer) dithering between the 4 shades.")
@click.option("--audio-format", type=click.Choice(["u8", "u4"]), default="u8", show_default=True)
@click.option("--synthetic", is_flag=True, help="Stream a built-in test sprite and sound instead of generating.")
@click.option("--connect-timeout", default=3.0, show_default=True, type=float, help="Seconds to wait for the device.")
def stream(model, port, baud, prompt, seed, temperature, max_tokens, frames, audio_samples, backend, dither,
           audio_format, synthetic, connect_timeout):
    """Generate with MODEL (default: the bundled one) and send it live to a device or `pxby-edge handheld`."""
    from firmware_bridge.link import Link
    from firmware_bridge.stream import Streamer, stream_needs, synthetic_events

    opts = dict(dither=dither, audio_format=audio_format)
    if synthetic:
        events, audio_rate, runner = synthetic_events(), 8000, None
    else:
        events, audio_rate, runner = None, None, _generation(model, prompt, seed, temperature, max_tokens, frames,
                                                              audio_samples, backend)
        audio_rate = runner[1]
    with Link(port, baud, connect_timeout_s=connect_timeout, need=stream_needs()) as link:
        link.connect()
        streamer = Streamer(link, audio_rate=audio_rate, audio_total=audio_samples, **opts)
        for event in events if runner is None else runner[0].events():
            streamer.feed(event)
        stats = streamer.finish()
    click.echo(
        f"sent {stats['commits']} commits, {stats['tiles_sent']} tiles, {stats['audio_samples']} audio samples in "
        f"{stats['frames_sent']} frames ({stats['bytes_sent']} bytes); retransmits {stats['retransmits']}, "
        f"reconnects {stats['reconnects']}"
    )


def _generation(model, prompt, seed, temperature, max_tokens, frames, audio_samples, backend):
    """(Generator, audio rate) for the model, or a one-line error when the runtime is not installed."""
    from firmware_bridge.errors import RuntimeUnavailable

    try:
        from pxby_edge.backends import open_backend
        from pxby_edge.generate import GenerationRequest, Generator, audio_rate_of, default_model_path
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"generation runtime not available in this install ({exc}); use --synthetic to test the link"
        ) from exc
    request = GenerationRequest(seed=seed, temperature=temperature, max_tokens=max_tokens, frames=frames,
                                audio_samples=audio_samples)
    if prompt is not None:
        request.prompt = prompt
    be = open_backend(model or default_model_path(), backend=backend, threads=1)
    return Generator(be, request), audio_rate_of(be.manifest)
