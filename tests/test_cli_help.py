"""What a bare `pxby-edge` (or group) and a mistyped command answer (issue 22 item 6).

    .venv/bin/python -m pytest tests/test_cli_help.py
"""

from __future__ import annotations

import pytest

from pxby_edge.cli import main, no_such_command

pytestmark = pytest.mark.pi


@pytest.mark.parametrize("argv", [[], ["dataset"]])
def test_bare_group_prints_its_help_laid_out(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2  # click's status for a command line that names nothing to run
    assert "error:" not in err
    lines = err.splitlines()
    assert lines[0].startswith(f"Usage: pxby-edge {' '.join(argv)}".replace("  ", " "))
    assert "Commands:" in lines  # a heading on its own line: the help is laid out, not squashed
    assert max(len(line) for line in lines) <= 100


@pytest.mark.parametrize(("typed", "offered"), [
    (["genrate"], "Did you mean 'generate'?"),
    (["gen"], "Did you mean 'generate'?"),
    (["stram"], "'stream'"),
    (["dataset", "snth"], "Did you mean 'synth'?"),
])
def test_mistyped_command_offers_the_close_ones(typed, offered, capsys):
    rc = main(typed)
    _, err = capsys.readouterr()
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: No such command")
    assert offered in err


def test_unlike_command_offers_nothing():
    assert no_such_command("xyzzy", ["generate", "stream"]) == "No such command 'xyzzy'."
    assert "one of: 'stream', 'stats'" in no_such_command("st", ["generate", "stream", "stats"])
