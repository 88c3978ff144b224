"""What the packages above this one declare for it to find: entry points of this distribution.

    python -c "from pxby_edge.plugins import entry_points; print(sorted(entry_points('pxby_edge.commands')))"

The runtime sits at the bottom of the layers (docs/ARCHITECTURE.md) and never imports ``training``,
``quantize`` or ``firmware_bridge``; what they add to it (commands, the PyTorch bench rows) is declared in
pyproject.toml under an entry-point group and looked up here by name, then imported only when used.
"""

from __future__ import annotations

import functools
from importlib import metadata


@functools.cache
def entry_points(group: str) -> dict:
    """name -> entry point of every one declared in ``group``, read once per process."""
    found = metadata.entry_points()
    if hasattr(found, "select"):
        selected = found.select(group=group)
    else:  # Python 3.9: a dict of group -> entry points
        selected = found.get(group, ())
    named = {}
    for ep in selected:
        named.setdefault(ep.name, ep)  # the first distribution on sys.path wins, as for imports
    return named
