"""Which test files `scripts/arm64-check` runs under arm64 emulation: those a Pi install can import.

    python scripts/arm64_tests.py .          # prints tests/test_*.py paths, one a line

A file is left out when a module-level import names something the Pi install has no wheel for
(torch and the training/quantize packages, the converters, onnx); tests that need an optional
package inside a test (``pytest.importorskip``) are kept, they skip themselves. ARM64_TESTS (file
names separated by spaces) replaces the selection.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

NOT_ON_PI = frozenset(
    {"torch", "torchvision", "training", "quantize", "litert_torch", "ai_edge_quantizer", "ai_edge_torch",
     "onnx", "onnxruntime", "safetensors", "pyarrow", "soundfile", "matplotlib", "skimage"}
)
NOT_HERE = frozenset({"test_arm64_script.py"})  # checks the script itself, on the host


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


def needs_only_pi(path: Path) -> bool:
    return not (top_level_imports(path.read_text(encoding="utf-8")) & NOT_ON_PI)


def select(root: Path, override: str | None = None) -> list[str]:
    if override:
        return override.split()
    files = sorted((root / "tests").glob("test_*.py"))
    return [str(p.relative_to(root)) for p in files if p.name not in NOT_HERE and needs_only_pi(p)]


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    print("\n".join(select(root, os.environ.get("ARM64_TESTS"))))
