"""The on-device package never imports torch (a Pi install has none)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import pxby_edge

pytestmark = pytest.mark.pi


def test_importing_every_pxby_edge_module_leaves_torch_out():
    names = [m.name for m in pkgutil.walk_packages(pxby_edge.__path__, "pxby_edge.")]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = [m for m in ('torch', 'litert_torch', 'ai_edge_quantizer') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
