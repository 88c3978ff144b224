"""One meaning per option (issue 22 item 8): -o/--out is an output path wherever it is shown, bench's format is
--format, --to takes the same choices wherever it appears; old spellings still work, hidden.

    .venv/bin/python -m pytest tests/test_option_names.py
"""

from __future__ import annotations

import click
import pytest

from pxby_edge.cli import command_entry_points, main

pytestmark = pytest.mark.pi


def _commands():
    out = {}
    for name, ep in command_entry_points().items():
        cmd = ep.load()
        if isinstance(cmd, click.Group):
            out.update({f"{name} {sub}": c for sub, c in cmd.commands.items()})
        else:
            out[name] = cmd
    return out


COMMANDS = _commands()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_o_and_out_always_name_an_output_path(name):
    for param in COMMANDS[name].params:
        opts = set(param.opts) | set(param.secondary_opts)
        if getattr(param, "hidden", False) or not opts & {"-o", "--out"}:
            continue
        assert {"-o", "--out"} <= opts, (name, param.opts)  # the short and the long form together
        assert isinstance(param.type, click.Path), (name, param.opts)


def test_to_has_the_same_choices_everywhere():
    choices = {name: tuple(p.type.choices) for name, cmd in COMMANDS.items() for p in cmd.params if p.name == "to"}
    assert set(choices) >= {"stream", "demo"} and len(set(choices.values())) == 1


def test_old_spellings_still_work_hidden(capsys):
    to = next(p for p in COMMANDS["stream"].params if p.name == "to")
    assert to.type.convert("serial", to, None) == "handheld"  # `stream --to serial` from before
    assert "serial" not in to.type.choices
    bench = COMMANDS["bench"]
    old = next(p for p in bench.params if "-o" in p.opts)
    assert old.hidden and "--format" in next(p for p in bench.params if p.name == "fmt").opts
    args = ["bench", "--tokens", "20", "--backend", "numpy", "--kinds", "step", "--inline"]
    assert main([*args, "--format", "csv"]) == 0
    new = capsys.readouterr().out.splitlines()[0]
    assert main([*args, "-o", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == new and new.startswith("configuration,")
    assert main([*args, "-o", "csv", "--format", "md"]) == 2
    assert "give the format once" in capsys.readouterr().err
