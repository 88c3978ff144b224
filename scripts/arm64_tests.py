"""Which tests `scripts/arm64-check` runs under arm64 emulation: those marked ``pi`` (the torch-free tier).

    python scripts/arm64_tests.py .          # pytest arguments, one a line: the selection, then --deselect=...

A test says itself that a Pi install runs it (``@pytest.mark.pi``, declared in pyproject.toml), so
nothing here guesses from imports. DESELECT names single tests that cannot pass under emulation, each with
its reason (printed to stderr). ARM64_TESTS (words separated by spaces) replaces the selection.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MARKER = "pi and not slow"  # the arm64 check runs the default suite of the Pi tier
DESELECT = {
    "tests/test_bridge_pty.py::test_stream_through_faults_and_a_device_restart":
        "asserts a wall-clock bound (re-handshake under 1 s); emulation runs 10-50x slower than a Pi",
    "tests/test_bridge_errors.py::test_cli_handheld_and_stream_leave_a_capture":
        "runs handheld and stream as two emulated processes under a 60 s wall-clock timeout; "
        "the check's link step runs the same pair across arm64 and x86 instead",
    "tests/test_output_sets.py::test_killed_generate_leaves_a_whole_set_or_none":
        "starts and kills eight generate processes, whose start-up emulation makes 10-50x longer; "
        "what it checks (a set lands by rename or not at all) does not depend on the CPU",
}


def select(root: Path, override: str | None = None) -> list[str]:
    """pytest arguments: the ``pi`` tests under tests/, then a --deselect for each DESELECT entry there."""
    if override:
        return override.split()
    present = [node for node in DESELECT if (root / node.split("::")[0]).is_file()]
    return ["-m", MARKER, "tests"] + [f"--deselect={node}" for node in present]


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    args = select(root, os.environ.get("ARM64_TESTS"))
    for a in args:
        if a.startswith("--deselect="):
            print(f"deselected {a[len('--deselect='):]}: {DESELECT.get(a[len('--deselect='):], 'ARM64_TESTS')}", file=sys.stderr)
    print("\n".join(args))
