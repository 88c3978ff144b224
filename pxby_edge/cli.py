"""The ``pxby-edge`` command.

    pxby-edge --help
    python -m pxby_edge.cli --help

A thin layer: each sub-command lives next to the library it drives (``pxby_edge/commands.py``,
``training/commands.py``, ``quantize/commands.py``, ``firmware_bridge/commands.py``) and is declared
in pyproject.toml under ``[project.entry-points."pxby_edge.commands"]``, so this module, at the bottom
layer, never names the packages above it. A command is imported only when named, so
``pxby-edge --help`` never loads torch. Errors raised on purpose (``PxbyError``) and the usual
file-system errors become one line on stderr and exit status 2; a command that needs an optional
dependency this install lacks says which extra to install.

The group's own options reach every command: ``--quiet`` (no progress bars, no info lines; errors
still print), ``-v`` (an error also prints its traceback; libraries' info log lines show). ``NO_COLOR`` set to anything
but the empty string turns off every ANSI colour click would print (the red ``error:``); ``handheld --tty``
is a per-run request for a picture in colour, which no-color.org lets override it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from importlib import metadata

import click

from pxby_edge.plugins import entry_points

DISTRIBUTION = "pxby-edge"
COMMAND_GROUP = "pxby_edge.commands"
# Names only (never imports): the order `pxby-edge --help` lists the steps in, dataset to handheld.
PIPELINE_ORDER = ("tokenize", "detokenize", "dataset", "train", "quantize", "inspect", "generate", "bench",
                  "handheld", "ports", "stream", "demo")
QUIET_HELP = "No progress bars and no info lines; errors still print."
VERBOSE_HELP = "An error also prints its traceback; libraries' info log lines show."
VERBOSITY = "pxby_edge.verbosity"  # key in click's ctx.meta (shared by the group and every command): -1 quiet


def verbosity() -> int:
    """-1 with --quiet, 0 by default, N with -v repeated N times (0 outside a command)."""
    ctx = click.get_current_context(silent=True)
    return 0 if ctx is None else ctx.meta.get(VERBOSITY, 0)


def quiet() -> bool:
    return verbosity() < 0


def show_progress() -> bool:
    """Whether a command draws a progress bar: stderr is a terminal and --quiet was not given."""
    return not quiet() and sys.stderr.isatty()


def info(message: str, err: bool = False) -> None:
    """A line that is not the command's result (what it wrote, how fast): dropped by --quiet."""
    if not quiet():
        click.echo(message, err=err)


def echo_outputs(summary: dict) -> None:
    """The files a run wrote, then its warnings (a bound or the token cap ended a segment), as info lines
    on stdout: stderr carries only the progress bar and errors."""
    for path in summary["outputs"]:
        info(f"wrote {path}")
    for line in summary.get("warnings", ()):
        info(f"warning: {line}")


def no_color() -> bool:
    """NO_COLOR is set to a non-empty value (https://no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


def command_entry_points() -> dict:
    """name -> entry point of every declared command (--help lists them by name)."""
    return entry_points(COMMAND_GROUP)


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (module bodies must stay light)."""

    def list_commands(self, ctx):
        # --help reads as the pipeline runs; a command this list does not know (a plug-in) comes after, by name
        known = {name: k for k, name in enumerate(PIPELINE_ORDER)}
        return sorted(command_entry_points(), key=lambda name: (known.get(name, len(known)), name))

    def get_command(self, ctx, name):
        commands = command_entry_points()
        if not commands:
            raise click.ClickException(
                f"no {DISTRIBUTION} commands are registered; install the project "
                "(`pip install -e .` in a checkout) so its entry points exist")
        ep = commands.get(name)
        return None if ep is None else _with_output_options(ep.load())

    def resolve_command(self, ctx, args):
        # click suggests close names from ``self.commands``, which a lazy group leaves empty: hand it the
        # declared names, so `pxby-edge genrate` answers "Did you mean 'generate'?" as a mistyped option does
        name = args[0]
        if self.get_command(ctx, name) is None and not ctx.resilient_parsing and not name.startswith("-"):
            raise click.UsageError(no_such_command(name, self.list_commands(ctx)), ctx=ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):
        from pxby_edge.errors import PxbyError

        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            line = missing_dependency(exc, ctx.invoked_subcommand)
            if line is None:
                raise  # one of our own modules is missing: a broken install, worth its traceback
            raise PxbyError(line) from exc
        except Exception as exc:
            # a usage error or a Ctrl-C is the user's, not a bug: its one line says it all
            if ctx.meta.get(VERBOSITY, 0) > 0 and not isinstance(exc, (click.ClickException, click.exceptions.Exit,
                                                                        click.exceptions.Abort)):
                import traceback

                traceback.print_exc()  # -v: the whole story above the one error line main() prints
            raise


def no_such_command(name: str, names) -> str:
    """click's words for an unknown command, with the commands ``name`` begins (`gen`) or is a typo of
    (`genrate`, `stram`) offered, as click offers options."""
    import difflib

    offered = [n for n in names if n.startswith(name)] or difflib.get_close_matches(name, list(names))
    if not offered:
        return f"No such command {name!r}."
    if len(offered) == 1:
        return f"No such command {name!r}. Did you mean {offered[0]!r}?"
    return f"No such command {name!r}. (Did you mean one of: {', '.join(repr(n) for n in offered)}?)"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.version_option(package_name="pxby-edge", prog_name="pxby-edge")
@click.pass_context
def group(ctx, quiet, verbose):
    """Train, quantize, generate and stream PixelBytes models on edge devices.

    The pipeline: dataset -> train -> quantize -> generate -> stream to a handheld.
    Run `pxby-edge COMMAND --help` for the options of each step. NO_COLOR=1 turns colour off.

    Shell completion (bash; zsh and fish likewise): eval "$(_PXBY_EDGE_COMPLETE=bash_source pxby-edge)"
    """
    _set_verbosity(ctx, quiet, verbose)
    if no_color():
        ctx.color = False  # inherited by every command's context: click.echo strips styles


def _set_verbosity(ctx, quiet: bool, verbose: int) -> None:
    if quiet and verbose:
        raise click.UsageError("give --quiet or -v, not both")
    ctx.meta[VERBOSITY] = -1 if quiet else verbose  # meta is one dict for the group and its command
    # libraries that log (onnxruntime's quantizer warns through the root logger) follow the same choice
    level = logging.ERROR if quiet else (logging.WARNING if not verbose else logging.INFO)
    logging.basicConfig(format="%(levelname)s: %(message)s")
    logging.getLogger().setLevel(level)


def _with_output_options(command: click.Command) -> click.Command:
    """``command`` taking -q/--quiet and -v too, so they work after the command's name as well as before it."""
    if getattr(command, "_pxby_output_options", False):
        return command
    taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}

    def chosen(ctx, param, value):
        quiet = value if param.name == "pxby_quiet" else ctx.meta.get(VERBOSITY, 0) < 0
        verbose = value if param.name == "pxby_verbose" else max(ctx.meta.get(VERBOSITY, 0), 0)
        if value:
            _set_verbosity(ctx, bool(quiet), int(verbose))

    for name, opts, kind in (("pxby_quiet", ("-q", "--quiet"), {"is_flag": True, "help": QUIET_HELP}),
                             ("pxby_verbose", ("-v", "--verbose"), {"count": True, "help": VERBOSE_HELP})):
        free = [o for o in opts if o not in taken]
        if free:
            command.params.append(click.Option([*free, name], expose_value=False, callback=chosen, **kind))
    command._pxby_output_options = True
    return command


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def optional_modules() -> dict:
    """extra -> the import names it installs, read from this distribution's metadata.

    ``Requires-Dist: torch>=2.4; extra == "train"`` lines, with an extra that names another of ours
    (``pxby-edge[train]; extra == "quantize"``) expanded, so pyproject.toml stays the one place that says
    which extra brings which package. A normalised distribution name (``litert-torch`` -> ``litert_torch``)
    is the import name of every optional dependency we declare.
    """
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return {}
    core, direct, included = set(), {}, {}
    for req in requires:
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
        if name is None:
            continue
        dist = _normalise(name.group(0))
        if extra is None:
            core.add(dist)
        elif dist == _normalise(DISTRIBUTION):
            inner = re.search(r"\[([^\]]*)\]", req)
            included.setdefault(extra.group(1), []).extend(x.strip() for x in (inner.group(1) if inner else "").split(","))
        else:
            direct.setdefault(extra.group(1), set()).add(dist)

    def expand(extra, seen=()):
        mods = set(direct.get(extra, ()))
        for other in included.get(extra, ()):
            if other not in seen:
                mods |= expand(other, (*seen, extra))
        return mods

    # An extra that only pins a core dependency (tflite: numpy<2) does not "bring" it.
    return {extra: expand(extra) - core for extra in (*direct, *included)}


def extra_providing(module: str, prefer: str | None = None):
    """The extra to install for ``module``: ``prefer`` (the command's own name) when it brings it, else the
    first extra that does; None when no extra does."""
    extras = [extra for extra, mods in optional_modules().items() if _normalise(module.split(".")[0]) in mods]
    if prefer in extras:
        return prefer
    return extras[0] if extras else None


def missing_dependency(exc: ModuleNotFoundError, command: str | None) -> str | None:
    """What to say when ``command`` needs an optional dependency this install lacks (None: not an optional one)."""
    extra = extra_providing(exc.name or "", prefer=command)
    if extra is None:
        return None
    what = f"pxby-edge {command}" if command else "this"
    return f"{what} needs {exc.name}, which this install lacks: pip install '{DISTRIBUTION}[{extra}]'"


def _error_line(message: str) -> None:
    """``error: MESSAGE`` on stderr, the prefix in red on a terminal unless NO_COLOR is set."""
    click.echo(f"{click.style('error:', fg='red', bold=True)} {message}", err=True, color=False if no_color() else None)


def main(argv=None) -> int:
    from pxby_edge.errors import error_message

    try:
        rv = group.main(args=argv, prog_name="pxby-edge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as exc:
        # a bare `pxby-edge` (or group) asks what there is: the help as --help lays it out, with click's
        # status for a command line that named nothing to run (2), never squashed into an error line
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as exc:
        _error_line(error_message(exc))
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except Exception as exc:
        message = error_message(exc)
        if message is None:
            raise
        _error_line(message)
        return 2
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
