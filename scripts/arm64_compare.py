"""Compare what the arm64 and the x86 runs of `scripts/arm64-check` wrote; exit 1 on a difference.

    python scripts/arm64_compare.py X86/tokens.npz ARM64/tokens.npz [X86.json ARM64.json]
    python scripts/arm64_compare.py --files CAPTURE_A CAPTURE_B screen.png [NAME...]

Token files: every array in the two .npz files must be equal; the line printed says how many tokens
and, on a difference, where the streams first part. The optional `generate --json` outputs add the
emulated speed (which says nothing about a Pi's). Folders: the named files (all files when none is
named) with the same bytes; the audio of a live link may differ with timing, so the check names files.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def compare_tokens(a_path: Path, b_path: Path) -> tuple[bool, str]:
    with np.load(a_path) as a, np.load(b_path) as b:
        if sorted(a.files) != sorted(b.files):
            return False, f"different arrays: {sorted(a.files)} vs {sorted(b.files)}"
        ta = tb = None
        if "tokens" in a.files:
            ta, tb = np.asarray(a["tokens"]), np.asarray(b["tokens"])
        for name in a.files:
            x, y = np.asarray(a[name]), np.asarray(b[name])
            if x.shape == y.shape and np.array_equal(x, y):
                continue
            if name == "tokens" and ta is not None:
                fa, fb = ta.reshape(-1), tb.reshape(-1)
                n = min(fa.size, fb.size)
                diff = np.flatnonzero(fa[:n] != fb[:n])
                first = int(diff[0]) if diff.size else n
                return False, f"tokens differ: {fa.size} vs {fb.size} tokens, first difference at index {first}"
            return False, f"{name} differs ({x.shape} vs {y.shape})"
        n = int(ta.size) if ta is not None else 0
        return True, f"identical ({n} tokens)"


def speed(path: Path) -> str:
    try:
        obj = json.loads(Path(path).read_text().strip().splitlines()[-1])
        return f"{obj['tokens_per_s']:,.0f} tok/s"
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return "?"


def digest_tree(root: Path, names=()) -> dict[str, str]:
    paths = [root / n for n in names] if names else sorted(root.rglob("*"))
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def compare_dirs(a: Path, b: Path, names=()) -> tuple[bool, str]:
    da, db = digest_tree(a, names), digest_tree(b, names)
    if names and len(da) < len(names):
        return False, f"missing in {a}: {sorted(set(names) - set(da))}"
    if da == db:
        return True, f"identical ({len(da)} files)"
    only = sorted(set(da) ^ set(db))
    changed = sorted(k for k in set(da) & set(db) if da[k] != db[k])
    return False, f"differ: {len(changed)} changed {changed[:3]}, {len(only)} only on one side {only[:3]}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--files"] and len(argv) >= 3:
        ok, text = compare_dirs(Path(argv[1]), Path(argv[2]), argv[3:])
    elif len(argv) in (2, 4):
        ok, text = compare_tokens(Path(argv[0]), Path(argv[1]))
        if len(argv) == 4:
            text += f", x86 {speed(Path(argv[2]))}, arm64 emulated {speed(Path(argv[3]))}"
    else:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
