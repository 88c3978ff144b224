"""Mutated model files end in the project's typed errors, never a raw exception.

    python -m pytest -p no:cacheprovider tests/test_model_fuzz.py            # a seeded slice (300 mutants)
    make fuzz-model                                                          # the full run (10,000 mutants)

Each mutant of the bundled file (byte flips, truncations, hostile manifest values, corrupted
flatbuffer offsets and lengths) goes through ``pxby-edge inspect`` in-process and through the numpy
backend (open, then a few steps on in-vocabulary contexts). Anything but a ``PxbyError`` fails the
test with the mutation that caused it, so a finding is reproducible from its seed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random

import numpy as np
import pytest

from pxby_edge import cli
from pxby_edge.backends.numpy_backend import NumpyBackend
from pxby_edge.errors import PxbyError
from pxby_edge.generate import default_model_path
from pxby_edge.manifest import MANIFEST_METADATA_NAME
from pxby_edge.tflite_file import TFLiteFile

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

FAST_MUTANTS = 300
# Mutants that once raised raw exceptions (overflowing dequantization, an op missing an input, an op
# reading a tensor no op produced): kept in the fast slice.
FOUND = (1264, 2843, 8912)
FULL_MUTANTS = int(os.environ.get("PXBY_FUZZ_MODELS", "10000"))

HOSTILE_VALUES = (float("nan"), float("inf"), -float("inf"), 1e300, -1, 0, 999, 2**63, -(2**40), "x", "", None,
                  True, [], {}, [1, 2], [-1], [0, 0], {"a": 1}, 0.5)


DEEP = "nested 3000 deep"  # stands for a value too deep to build as a Python object


class Model:
    """The bundled file, with where its manifest and its flatbuffer tables (not weights) lie."""

    def __init__(self):
        self.data = default_model_path().read_bytes()
        f = TFLiteFile(self.data)
        raw = f.metadata[MANIFEST_METADATA_NAME]
        self.manifest_at = self.data.index(raw)
        self.manifest = json.loads(raw)
        self.manifest_len = len(raw)
        weights = sorted((b.offset, b.offset + b.size) for b in f.buffers if b.size > 64)
        self.structure = [p for p in range(0, len(self.data) - 4, 4) if not any(lo <= p < hi for lo, hi in weights)]


def _paths(node, path=()):
    """Every (path, value) in a JSON tree, the tree itself first."""
    yield path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, (*path, k))


def _set(tree, path, value):
    if not path:
        return value
    node = tree
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return tree


def _manifest_mutant(model: Model, rng: random.Random) -> bytes:
    tree = json.loads(json.dumps(model.manifest))
    paths = [p for p, _ in _paths(tree)]
    path = rng.choice(paths)
    kind = rng.random()
    if kind < 0.1:
        value = DEEP if rng.random() < 0.5 else [[[[[[]]]]]] * 3
    elif kind < 0.2 and path:
        parent = _set(tree, (), tree)
        for k in path[:-1]:
            parent = parent[k]
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
        value = tree
        path = ()
    else:
        value = rng.choice(HOSTILE_VALUES)
    tree = _set(tree, path, value)
    text = json.dumps(tree, separators=(",", ":"))  # NaN/Infinity as JSON's non-standard literals
    text = text.replace(json.dumps(DEEP), "[" * 3000 + "]" * 3000).encode()
    if len(text) > model.manifest_len:
        text = text[: model.manifest_len]  # a manifest cut short is hostile too
    text = text.ljust(model.manifest_len, b" ")  # trailing spaces are valid JSON: the file keeps its layout
    data = bytearray(model.data)
    data[model.manifest_at: model.manifest_at + model.manifest_len] = text
    return bytes(data)


def mutant(model: Model, seed: int) -> tuple[str, bytes]:
    """(what was done, the mutated file) for one seed."""
    rng = random.Random(seed)
    data = bytearray(model.data)
    kind = rng.choice(("flip", "truncate", "manifest", "offset", "offset", "manifest"))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            pos = rng.choice(model.structure) + rng.randrange(4) if rng.random() < 0.7 else rng.randrange(len(data))
            data[pos] = rng.randrange(256)
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "manifest":
        return f"seed {seed}: manifest", _manifest_mutant(model, rng)
    else:
        pos = rng.choice(model.structure)
        value = rng.choice((0, 1, 2, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, len(data), len(data) - 1, len(data) + 4,
                            rng.randrange(1 << 32), rng.randrange(len(data))))
        data[pos: pos + 4] = value.to_bytes(4, "little")
    return f"seed {seed}: {kind}", bytes(data)


def check(path, data: bytes) -> str:
    """Run one file through inspect and the numpy backend; returns how it ended (raises on a raw exception)."""
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["inspect", str(path)])
    if rc not in (0, 2) or (rc == 2 and len(err.getvalue().strip().splitlines()) != 1):
        raise AssertionError(f"inspect exit {rc}: {err.getvalue()[-500:]}")
    try:
        backend = NumpyBackend(path, data=data)
    except PxbyError:
        return "refused"
    rng = np.random.default_rng(0)
    for _ in range(3):
        backend.step(rng.integers(0, backend.vocab_size, size=backend.context_shape))
    return "ran"


def _run(tmp_path, seeds) -> dict:
    model = Model()
    outcomes: dict = {}
    for seed in seeds:
        what, data = mutant(model, seed)
        try:
            outcome = check(tmp_path / "m.tflite", data)
        except PxbyError:
            outcome = "refused"
        except Exception as exc:  # the finding: report which mutant, reproducibly
            raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def test_mutants_end_in_typed_errors(tmp_path):
    outcomes = _run(tmp_path, [*range(FAST_MUTANTS), *FOUND])
    assert sum(outcomes.values()) == FAST_MUTANTS + len(FOUND)
    assert outcomes.get("refused", 0) > FAST_MUTANTS // 4  # the mutations do reach the checks


@pytest.mark.slow
def test_full_model_fuzz(tmp_path):
    outcomes = _run(tmp_path, range(FAST_MUTANTS, FAST_MUTANTS + FULL_MUTANTS))
    print(f"\n{FULL_MUTANTS} mutants: {outcomes}")
    assert sum(outcomes.values()) == FULL_MUTANTS


def test_the_unmutated_file_runs(tmp_path):
    assert check(tmp_path / "m.tflite", Model().data) == "ran"
