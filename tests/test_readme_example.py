"""The README's generate example runs without a warning, and its text ends as the prompt did (issue 22 item 7).

    .venv/bin/python -m pytest tests/test_readme_example.py
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pxby_edge.cli import main

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.pi


def _readme_generate() -> list[str]:
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith("pxby-edge generate "))
    return shlex.split(line.split("#", 1)[0])[1:]


def test_the_readme_example_prints_no_warning(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ai_edge_litert")
    monkeypatch.chdir(tmp_path)
    args = _readme_generate()
    assert "--seed" in args and "--prompt" in args
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "warning" not in out
    prompt = args[args.index("--prompt") + 1]
    folder = Path(args[args.index("--out") + 1]) if "--out" in args else None
    text = (folder / "text.txt").read_text() if folder else out
    assert text.startswith(prompt) and not text.endswith("..")  # a whole sentence is not finished twice
