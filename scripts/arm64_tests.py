"""Which test files `scripts/arm64-check` runs under arm64 emulation: those a Pi install can import.

    python scripts/arm64_tests.py .          # pytest arguments, one a line: files, then --deselect=...

A file is left out when it imports, anywhere, what makes models (torch, the training and quantize
packages, the converters), or imports at module level something else the Pi install lacks (onnx,
soundfile, ...); tests that ask for an optional package inside a test (``pytest.importorskip``) are
kept, they skip themselves. DESELECT names single tests that cannot pass under emulation, each with
its reason (printed to stderr). ARM64_TESTS (words separated by spaces) replaces the selection.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

# Model makers: a test that imports one anywhere (or importorskips it) builds its models with them.
MAKERS = frozenset({"torch", "torchvision", "training", "quantize", "litert_torch", "ai_edge_quantizer", "ai_edge_torch"})
# Not in the Pi install: fine inside a test (it skips), not at module level (the file would not import).
NOT_ON_PI = MAKERS | {"onnx", "onnxruntime", "safetensors", "pyarrow", "soundfile", "matplotlib", "skimage"}
NOT_HERE = frozenset({"test_arm64_script.py"})  # checks the script itself, on the host
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


def top_level_imports(source: str) -> set[str]:
    """First components of the modules imported at module level (also inside top-level try/if)."""
    names: set[str] = set()
    tree = ast.parse(source)
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, (ast.Try, ast.If)):
            todo.extend(node.body)
            todo.extend(node.orelse)
            todo.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                todo.extend(handler.body)
    return names


def all_imports(source: str) -> set[str]:
    """First components of every module imported anywhere, and of every pytest.importorskip("name")."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value.split(".")[0])
    return names


def needs_only_pi(source: str) -> bool:
    return not (all_imports(source) & MAKERS) and not (top_level_imports(source) & NOT_ON_PI)


def select(root: Path, override: str | None = None) -> list[str]:
    """pytest arguments: the test files a Pi install can run, then a --deselect for each DESELECT entry."""
    if override:
        return override.split()
    files = [str(p.relative_to(root)) for p in sorted((root / "tests").glob("test_*.py"))
             if p.name not in NOT_HERE and needs_only_pi(p.read_text(encoding="utf-8"))]
    return files + [f"--deselect={node}" for node in DESELECT if node.split("::")[0] in files]


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    args = select(root, os.environ.get("ARM64_TESTS"))
    for a in args:
        if a.startswith("--deselect="):
            print(f"deselected {a[len('--deselect='):]}: {DESELECT.get(a[len('--deselect='):], 'ARM64_TESTS')}", file=sys.stderr)
    print("\n".join(args))
