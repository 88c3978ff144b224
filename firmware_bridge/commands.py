"""The ``handheld``, ``stream``, ``demo`` and ``ports`` commands (registered lazily by cli.py).

    pxby-edge handheld --pty --capture out/handheld &
    pxby-edge ports
    pxby-edge stream --synthetic            # --port auto: the one handheld found
    pxby-edge demo --prompt "a small red fire creature" --out pxby-out

``stream`` and ``demo`` are one path (``firmware_bridge.live``): the device is chosen by
``transports.choose_device`` from the same ``--to`` and ``--port``.

Only click is imported here; everything heavy is imported inside the command that needs it.
"""

from __future__ import annotations

from pathlib import Path

import click

from pxby_edge.cli import echo_outputs, info, show_progress
from pxby_edge.options import generation_options, read_prompt, request_from_options


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
    import signal

    from firmware_bridge.simulator import Capture, Simulator

    view = _terminal_view() if live else None
    sim = Simulator(transport, capture=Capture(capture_dir), view=view)
    # Ctrl-C and systemd's SIGTERM end the loop between steps, so the capture is always saved whole.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sim.stop())
    if view is not None:
        signal.signal(signal.SIGWINCH, lambda *_: view.resized())
    try:
        sim.serve(seconds)
    finally:
        written = sim.capture.save()
        transport.close()
        if view is not None:
            from firmware_bridge.terminal_view import SHOW_CURSOR

            # the terminal as it was: colours reset, the cursor back, and the lines below start on their own
            _write(f"\x1b[0m{SHOW_CURSOR}\n")
    c = sim.counters
    info(
        f"frames ok {c['frames_ok']}, crc errors {c['crc_errors']}, bad {c['frames_bad']}, duplicates {c['dup_frames']}, "
        f"out of order {c['out_of_order']}, commits {c['commits']}, samples played {c['samples_played']}, "
        f"gaps {c['gaps']}, underruns {c['underruns']}, boots {c['boots']}, bytes in {c['bytes_in']}"
    )
    for path in written:
        info(f"wrote {path}")


def _write(text: str) -> None:
    import sys

    sys.stdout.write(text)
    sys.stdout.flush()


def _terminal_view():
    """The live view of `handheld --tty`: sized to this terminal at every draw, the cursor hidden while it runs."""
    import shutil
    import sys

    from firmware_bridge.terminal_view import HIDE_CURSOR, LiveView

    _write(HIDE_CURSOR)
    if not sys.stdout.isatty():  # a file or a pipe has no size to fit: the screen at scale 1, as recorded
        return LiveView(_write)
    return LiveView(_write, size=lambda: tuple(shutil.get_terminal_size()))


TO_HELP = ("The device kind: handheld (the serial protocol: a device, a pty, socket://...) or gameboy (the link ROM: "
           "pyboy://, pyboy://window, spi:///dev/spidevB.D); a Game Boy --port picks gameboy; --to gameboy alone runs "
           "the ROM in PyBoy.")


OLD_DEVICE_NAMES = {"serial": "handheld"}  # `stream --to serial` before the kinds were one list: accepted, not shown


class _DeviceKind(click.Choice):
    """``transports.DEVICES``, with the old spellings taken as the kinds they were."""

    def convert(self, value, param, ctx):
        return super().convert(OLD_DEVICE_NAMES.get(value, value), param, ctx)


def _to_option(f):
    from firmware_bridge.transports import DEVICES

    return click.option("--to", "to", type=_DeviceKind(DEVICES), default=None, help=TO_HELP)(f)


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--port", default="auto", show_default=True, metavar="URL",
              help="The device: auto (the one handheld `pxby-edge ports` finds), /dev/ttyACM0, a pty path, "
                   "socket://HOST:PORT, or a Game Boy (pyboy://, spi:///dev/spidev0.0).")
@click.option("--baud", default=115200, show_default=True, help="Baud rate of the serial line.")
@generation_options
@click.option("--dither", is_flag=True, help="Ordered (Bayer) dithering between the 4 shades.")
@click.option("--audio-format", type=click.Choice(["u8", "u4"]), default="u8", show_default=True, help="Sample format on the wire.")
@click.option("--synthetic", is_flag=True, help="Stream a built-in test sprite and sound instead of generating (takes no generation option but --seed).")
@click.option("--connect-timeout", default=3.0, show_default=True, type=float, help="Seconds to wait for the device.")
@click.option("--loop", is_flag=True,
              help="Send creature after creature until stopped: a new random seed each round, or --seed, +1, +2, ... "
                   "To a Game Boy: an interactive session (A new creature, B cry again, Up/Down prompt, Start pause).")
@click.option("--pause", type=click.FloatRange(0), default=5.0, show_default=True, help="Seconds between rounds of --loop.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per round on stdout instead of a sentence.")
@_to_option
@click.option("-o", "--out", "out_dir", default="pxby-out", show_default=True, type=click.Path(file_okay=False),
              help="With a Game Boy: write gameboy/screen.png, screen.gif and audio.wav here.")
@click.option("--force", is_flag=True, help="Overwrite earlier outputs in --out.")
@click.pass_context
def stream(ctx, model, port, baud, dither, audio_format, synthetic, connect_timeout, loop, pause, as_json, to,
           out_dir, force, backend, threads, **options):
    """Generate with MODEL (default: the bundled one) and send it live to a device or `pxby-edge handheld`:
    text as it appears, the sprite row by row, each animation frame, then the cry."""
    from firmware_bridge.live import rounds_for, seeds_from, stream_live
    from firmware_bridge.transports import choose_device
    from pxby_edge.options import given_generation_options

    given = given_generation_options(ctx, allowed=("seed",)) + ([model] if model else [])
    if synthetic and given:
        raise click.UsageError(f"--synthetic streams the built-in test pattern, it generates nothing: drop {', '.join(given)}")
    device = choose_device(port, to)  # a wrong --to/--port pair is refused before the model is opened
    if loop and device.kind == "gameboy":
        _gameboy_session(device.url, seeds_from(options["seed"], options["seed"] is not None), synthetic, model,
                         options, backend, threads, out_dir, force, pause, as_json, dither=dither)
        return
    if device.kind == "handheld" and device.url == "auto":
        from firmware_bridge.ports import resolve_port

        device = device._replace(url=resolve_port(device.url))  # now, so the live line can name it
    # --seed S: S, S+1, ... per round; none: a random one each round (printed with it), as `generate` draws one
    rounds = rounds_for(lambda seed: request_from_options(**dict(options, seed=seed)), model, synthetic=synthetic,
                        seed=options["seed"], fixed_seed=options["seed"] is not None, backend=backend, threads=threads)
    live = _LiveLine(device.url or device.kind, draw=show_progress() and not as_json)
    try:
        for stats in stream_live(rounds, device, out_dir=out_dir, overwrite=force, rounds=None if loop else 1,
                                 pause_s=pause, baud=baud, connect_timeout_s=connect_timeout, dither=dither,
                                 audio_format=audio_format, progress=live):
            live.clear()
            _echo_round(dict(stats, text=live.take_text()), as_json, loop)
    finally:
        live.clear()


def _gameboy_session(url, seeds, synthetic, model, options, backend, threads, out_dir, force, pause, as_json,
                     **streamer_opts) -> None:
    """--loop to a Game Boy: the interactive session of ``gameboy.controller`` (A a new creature, B the cry again,
    Up/Down a prompt, Start pause) until stopped; one line (or JSON object) per creature. SIGTERM (systemd's
    stop) ends it as Ctrl-C does, at the next poll (or once the creature on its way is shown): gameboy/ is
    saved, exit 0."""
    import signal

    from firmware_bridge.gameboy.controller import PROMPTS, play
    from firmware_bridge.live import prompted_rounds

    own = read_prompt(options["prompt"], options["prompt_file"])
    prompts = ([own] if own else []) + list(PROMPTS)

    def request_for(seed: int, prompt: str):
        # the list's prompts are whole descriptions, as the default one is: the text ends where they end
        complete = options["complete_text"] if prompt == own else False
        return request_from_options(**dict(options, seed=seed, prompt=prompt, prompt_file=None, complete_text=complete))

    stopping: list = []  # set by SIGTERM (systemd's stop) or Ctrl-C; the session ends at its next poll
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    make_round = prompted_rounds(request_for, seeds, model, synthetic=synthetic, backend=backend, threads=threads)
    for stats in play(url, make_round, prompts, out_dir, overwrite=force, pause_s=pause, stop=lambda: bool(stopping),
                      **streamer_opts):
        _echo_round(stats, as_json, True)



class _LiveLine:
    """`stream`'s one line on a terminal (stderr, as progress bars are), redrawn at most 10 times a second:
    the port, the text so far, tiles and audio sent, retransmits. It also keeps the round's text for the summary."""

    def __init__(self, port: str, draw: bool):
        self.port, self.draw = port, draw
        self.text: list[str] = []
        self._drawn_at = None

    def __call__(self, event, counters: dict) -> None:
        import time

        if getattr(event, "stream", 0) == 0 and hasattr(event, "char"):
            self.text.append(event.char)
        now = time.monotonic()
        if self.draw and (self._drawn_at is None or now - self._drawn_at >= 0.1):
            self._drawn_at = now
            self._write("\r" + _fit(self.line(counters)) + "\x1b[K")

    def line(self, c: dict) -> str:
        # the counters first: on a narrow terminal the text is what gets cut
        return (f"{self.port}  tiles {c.get('tiles_sent', 0):,}  audio {c.get('audio_samples', 0):,}  "
                f"retransmits {c.get('retransmits', 0)}  \"{''.join(self.text)}\"")

    def take_text(self) -> str:
        text, self.text = "".join(self.text), []
        return text

    def clear(self) -> None:
        if self._drawn_at is not None:
            self._write("\r\x1b[K")
            self._drawn_at = None

    @staticmethod
    def _write(text: str) -> None:
        import sys

        sys.stderr.write(text)
        sys.stderr.flush()


def _fit(line: str) -> str:
    import shutil

    width = shutil.get_terminal_size().columns
    return line if len(line) < width else line[: max(1, width - 2)] + "…"


def round_words(stats: dict, loop: bool) -> str:
    """A round's summary in plain words (what `stream` prints without --json)."""
    def count(n, one, many):
        return f"{n:,} {one if n == 1 else many}"

    head = f"round {stats['round'] + 1} (seed {stats['seed']})" if loop else f"seed {stats['seed']}"
    trouble = [count(stats[k], one, many) for k, one, many in (("retransmits", "retransmit", "retransmits"),
                                                                ("reconnects", "reconnect", "reconnects")) if stats.get(k)]
    return (f"{head}: sent \"{stats['text']}\" to {stats.get('port', 'the device')}: "
            f"{count(stats['tiles_sent'], 'tile', 'tiles')} in {count(stats['commits'], 'screen update', 'screen updates')}, "
            f"{count(stats['audio_samples'], 'audio sample', 'audio samples')}; "
            f"{count(stats['bytes_sent'], 'byte', 'bytes')} in {count(stats['frames_sent'], 'frame', 'frames')}, "
            + (", ".join(trouble) if trouble else "nothing resent"))


def _echo_round(stats: dict, as_json: bool, loop: bool = False) -> None:
    import json

    from firmware_bridge.gameboy.run import gameboy_line

    if as_json:
        click.echo(json.dumps(stats))
        return
    info(round_words(stats, loop))
    if "gb_flips" in stats:
        click.echo(gameboy_line(stats))
    if "outputs" in stats:
        echo_outputs(stats)


# The demo's creature, where the user leaves it open: the bundled model was trained on 24x24 creatures and does
# not yet count rows reliably; the synthetic cries last 0.2-0.3 s, so a cap keeps a rambling model short.
DEMO_DEFAULTS = {"frames": 3, "width": 24, "height": 24, "audio_seconds": 0.5}


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@generation_options
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("pxby-out"), show_default=True, help="Folder for everything the demo makes.")
@click.option("--port", default=None, metavar="URL", help="Stream to this device instead of a simulated handheld on a pty.")
@click.option("--baud", default=115200, show_default=True, help="Baud rate of --port.")
@click.option("--force", is_flag=True, help="Overwrite the outputs of an earlier demo in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON summary instead of text.")
@_to_option
def demo(model, out_dir, port, baud, force, as_json, to, backend, threads, **options):
    """Generate a creature (text, animated sprite, cry) with the bundled model and stream it live
    to a simulated Game Boy-style handheld; everything lands in --out.

    Works offline. MODEL defaults to the bundled model; --port streams to a real device (or to
    `pxby-edge handheld`) instead of the built-in simulator; --to gameboy to the link ROM.

    Leaves the handheld's screen (handheld/screen.gif, every commit, and handheld/screen.png, the last
    one) and what it played (handheld/audio.wav), the sprite at full palette (sprite.png, sprite.gif),
    the generated sound (audio.wav: original and Game Boy-filtered), the text and summary.json.
    """
    import json

    from firmware_bridge.live import run_demo
    from firmware_bridge.transports import choose_device

    options.update({k: v for k, v in DEMO_DEFAULTS.items() if options.get(k) is None})
    summary = run_demo(request_from_options(**options), out_dir, model=model, device=choose_device(port, to), baud=baud,
                       backend=backend, threads=threads, overwrite=force, progress=show_progress())
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    info(f"prompt: {summary['prompt']}")
    info(f"text:   {summary['text']}")
    info(f"seed:   {summary['seed']} (--seed {summary['seed']} makes it again)")
    info(f"{summary['tokens']} tokens, {summary['tokens_per_s']:,.0f} tok/s generated and streamed with "
         f"{summary['backend']} to {summary['port']} in {summary['seconds']:.1f} s")
    echo_outputs(summary)


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
        return
    row = "{:<28} {:<10} {:<9} {}"
    click.echo(row.format("PORT", "USB ID", "HANDHELD", "DESCRIPTION"))
    for p in found:
        click.echo(row.format(p.device, p.hwid or "-", "yes" if p.handheld else "-", p.description))
