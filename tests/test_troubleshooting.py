"""docs/TROUBLESHOOTING.md quotes messages the code prints today, in tables that render (issue 22 item 12).

    .venv/bin/python -m pytest tests/test_troubleshooting.py

Every `error: ...` / `warning: ...` code span in a table's first column is checked against the string
literals of the four packages (read with ``ast``; an f-string's or ``str.format``'s fields are holes that
any value fills): it must be what one literal prints, with at most a caller's ``PATH: `` before it and
``...`` standing for an elided piece. A usage error comes from click, not from a literal: it is checked by
running the command it names. Values are not checked (a hole takes any), the words around them are.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pxby_edge.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "TROUBLESHOOTING.md"
PACKAGES = ("pxby_edge", "firmware_bridge", "training", "quantize")
FORMAT_FIELD = re.compile(r"\{[A-Za-z_0-9.!:<>,]*\}")
USAGE = re.compile(r"Invalid value for '(--[\w-]+)': (\S+) .*\(see pxby-edge (\w+) --help\)")

def _parts_of(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        out, pos = [], 0
        for m in FORMAT_FIELD.finditer(node.value):  # str.format fields are holes too
            out += [node.value[pos:m.start()], None]
            pos = m.end()
        return out + [node.value[pos:]]
    if isinstance(node, ast.JoinedStr):
        return [v.value if isinstance(v, ast.Constant) else None for v in node.values]
    return None

def literals():
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                parts = _parts_of(node)
                if parts and sum(len(p) for p in parts if p) >= 6:
                    found.append(tuple(p for p in parts if p != ""))
    return found

def _rx(parts):
    return re.compile("".join("(.*?)" if p is None else re.escape(p) for p in parts), re.S)

def _tail(parts, seg, cut_end):
    """``seg`` is what ``parts`` print, or (cut_end) what they print up to some point."""
    if _rx(parts).fullmatch(seg):
        return True
    if not cut_end:
        return False
    for b in range(len(parts)):
        p = parts[b]
        if p is None:
            if b and _rx(parts[:b] + (None,)).fullmatch(seg):
                return True
            continue
        for j in range(1, len(p) + 1):
            if seg.endswith(p[:j]) and (_rx(parts[:b]).fullmatch(seg[: len(seg) - j]) if b else len(seg) == j):
                return True
    return False

def printed_by(parts, seg, cut_start, cut_end):
    """Whether ``seg`` is what the literal ``parts`` prints with its holes filled; ``cut_start``/``cut_end``: the
    doc elides (``...``) the literal's beginning/end, so ``seg`` may start/stop inside it."""
    if not cut_start:
        return _tail(parts, seg, cut_end)
    for a, p in enumerate(parts):
        if p is None:
            if _tail(parts[a:], seg, cut_end):
                return True
            continue
        for i in range(len(p)):
            if seg.startswith(p[i:]) and _tail(parts[a + 1:], seg[len(p) - i:], cut_end) if parts[a + 1:] else seg == p[i:]:
                return True
    return False

def found_in_code(seg, lits, cut_start=False, cut_end=False):
    found = re.findall(r"[A-Za-z]{4,}", seg)
    words = set(found)
    path_prefix = re.match(r"[^\s:]+: ", seg)  # a caller's `{path}: {error}` before the library's message
    for parts in lits:
        static = " ".join(p for p in parts if p)
        if words and not any(w in static for w in words):
            continue
        if cut_start and found and found[0] not in static:
            # a fragment must start in the literal's own words: else any literal ending in a placeholder
            # ("... or more, got {n}") would swallow it whole
            continue
        if printed_by(parts, seg, cut_start, cut_end):
            return True
        if path_prefix and printed_by(parts, seg[path_prefix.end():], cut_start, cut_end):
            return True
    return False

def code_spans(cell):
    spans, i = [], 0
    while i < len(cell):
        if cell[i] != "`":
            i += 1
            continue
        j = i
        while j < len(cell) and cell[j] == "`":
            j += 1
        ticks = cell[i:j]
        k = j
        while True:
            k = cell.find(ticks, k)
            if k == -1 or (cell[k + len(ticks):k + len(ticks) + 1] != "`" and cell[k - 1] != "`"):
                break
            k += 1
        if k == -1:
            break
        body = cell[j:k]
        if body.startswith(" ") and body.endswith(" ") and body.strip():
            body = body[1:-1]
        spans.append(body)
        i = k + len(ticks)
    return spans


def _tables() -> list[list[str]]:
    """The doc's tables as lists of their lines (a table is a run of lines starting with `|`)."""
    tables, current = [], []
    for line in DOC.read_text().splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def _cells(row: str) -> list[str]:
    """The cells of a table row, split at the pipes outside code spans."""
    out, cell, i = [], "", 0
    while i < len(row):
        if row[i] == "`":
            j = i
            while j < len(row) and row[j] == "`":
                j += 1
            end = row.find(row[i:j], j)
            while end != -1 and (row[end + (j - i):end + (j - i) + 1] == "`" or row[end - 1] == "`"):
                end = row.find(row[i:j], end + 1)
            stop = len(row) if end == -1 else end + (j - i)
            cell += row[i:stop]
            i = stop
        elif row[i] == "|":
            out.append(cell.strip())
            cell, i = "", i + 1
        else:
            cell += row[i]
            i += 1
    return out[1:]  # the text before the first pipe


def _quoted_messages() -> list[str]:
    found = []
    for table in _tables():
        for row in table[2:]:
            for span in code_spans((_cells(row) or [""])[0]):  # a broken row fails the table test instead
                if re.match(r"(error|warning): ", span):
                    found.append(span)
    return found


LITERALS = literals()


def test_every_table_has_a_header_and_rows_of_its_width():
    tables = _tables()
    assert len(tables) >= 6
    for table in tables:
        header, rule, *rows = table
        width = len(_cells(header))
        assert re.fullmatch(r"\|(---\|)+", rule) and len(_cells(rule)) == width, table[:2]
        for row in rows:
            assert len(_cells(row)) == width, row  # a stray pipe or backtick would split or swallow a cell
    text = DOC.read_text()
    # no row stranded below a blank line, outside any table
    assert not re.search(r"\n\n\|(?!\s*you see)", text)


@pytest.mark.parametrize("message", _quoted_messages())
def test_a_quoted_message_is_what_the_code_prints(message):
    body = message.split(": ", 1)[1]
    usage = USAGE.fullmatch(body)
    if usage:
        return  # checked by running it, below
    pieces = re.split(r"(\(\.\.\.\)|\.\.\.)", body)
    for k in range(0, len(pieces), 2):
        piece = pieces[k].strip()
        if piece:
            assert found_in_code(piece, LITERALS, cut_start=k > 0, cut_end=k < len(pieces) - 1), piece


@pytest.mark.parametrize("message", [m for m in _quoted_messages() if USAGE.fullmatch(m.split(": ", 1)[1])])
def test_a_quoted_usage_error_is_what_click_says(message, capsys):
    option, value, command = USAGE.fullmatch(message.split(": ", 1)[1]).groups()
    assert main([command, option, value]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_the_checker_catches_a_stale_message():
    assert found_in_code("no such port: /dev/ttyNOPE (is the device plugged in? `pxby-edge ports` lists what is there)",
                         LITERALS)
    assert not found_in_code("pxby-out/text.txt already exists; pass --force to overwrite or pick another --out",
                             LITERALS)
    assert not found_in_code("no such port: /dev/ttyNOPE (is the device plugged in? `ls /dev/tty*`)", LITERALS)
    assert found_in_code("is nested more than 32 deep", LITERALS, cut_start=True, cut_end=True)
    assert not found_in_code("is nested more than 32 deep", LITERALS, cut_start=True)
