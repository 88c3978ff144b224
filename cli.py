"""The ``pxby-edge`` command.

    pxby-edge --help

A thin layer: each sub-command lives next to the library it drives (``pxby_edge/commands.py``,
``training/commands.py``, ``quantize/commands.py``, ``firmware_bridge/commands.py``) and is
imported only when named, so ``pxby-edge --help`` never loads torch. Errors raised on purpose
(``PxbyError``) and the usual file-system errors become one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import sys

import click

# name -> "module:attribute"; the order is the order of --help.
COMMANDS = {
    "tokenize": "pxby_edge.commands:tokenize",
    "detokenize": "pxby_edge.commands:detokenize",
    "dataset": "training.commands:dataset",
    "train": "training.commands:train",
    "quantize": "quantize.commands:quantize",
    "inspect": "pxby_edge.model_commands:inspect",
    "generate": "pxby_edge.generate_command:generate",
    "bench": "pxby_edge.runtime_commands:bench",
    "handheld": "firmware_bridge.commands:handheld",
    "stream": "firmware_bridge.commands:stream",
    "ports": "firmware_bridge.commands:ports",
    "demo": "firmware_bridge.demo:demo",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (module bodies must stay light)."""

    def list_commands(self, ctx):
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx, name):
        return self._load(name)

    @staticmethod
    def _load(name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A command whose module is not part of this install (or not written yet) is hidden.
            if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
                return None
            raise
        return getattr(module, attr, None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pxby-edge", prog_name="pxby-edge")
def group():
    """Train, quantize, generate and stream PixelBytes models on edge devices.

    The pipeline: dataset -> train -> quantize -> generate -> stream to a handheld.
    Run `pxby-edge COMMAND --help` for the options of each step.
    """


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def main(argv=None) -> int:
    from pxby_edge.errors import PxbyError

    try:
        rv = group.main(args=argv, prog_name="pxby-edge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except PxbyError as exc:
        click.echo(f"error: {_one_line(exc)}", err=True)
        return 2
    except FileNotFoundError as exc:
        click.echo(f"error: no such file: {exc.filename} (check the path)", err=True)
        return 2
    except IsADirectoryError as exc:
        click.echo(f"error: {exc.filename} is a folder, a file was expected", err=True)
        return 2
    except PermissionError as exc:
        click.echo(f"error: permission denied: {exc.filename}", err=True)
        return 2
    except BrokenPipeError:
        return 0
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
