"""Hostile model files at the CLI edge: one `error:` line, exit 2, the output folder unchanged.

    python -m pytest -p no:cacheprovider tests/test_hostile_models.py

Each row is the bundled file with one thing made hostile (its manifest rewritten with the project's
own metadata writer, or a tensor of its graph changed through the schema's object API), run through
``pxby-edge generate --backend numpy`` and ``pxby-edge inspect``.
"""

from __future__ import annotations

import json
import re

import pytest

from pxby_edge import cli
from pxby_edge.generate import default_model_path
from pxby_edge.manifest import MANIFEST_METADATA_NAME, read_manifest

schema = pytest.importorskip("ai_edge_litert.schema_py_generated", reason="rewriting a model file needs ai-edge-litert")
flatbuffers = pytest.importorskip("flatbuffers")


def _with_manifest(change) -> bytes:
    from quantize.metadata import with_metadata

    data = default_model_path().read_bytes()
    d = read_manifest(data).to_dict()
    change(d)
    text = json.dumps(d).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000)
    return with_metadata(data, {MANIFEST_METADATA_NAME: text.encode()})


def _set(path, value):
    def change(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return change


DEEP = "nested 5000 deep"  # a value too deep to build as a Python object: spliced in as JSON text


def _negative_constant_shape() -> bytes:
    m = schema.ModelT.InitFromPackedBuf(bytearray(default_model_path().read_bytes()), 0)
    sub = m.subgraphs[0]
    const = next(t for t in sub.tensors if len(m.buffers[t.buffer].data if m.buffers[t.buffer].data is not None else ()) > 64)
    const.shape = [-int(const.shape[0]), *list(const.shape[1:])]
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


ROWS = {
    "audio_rate NaN": (lambda: _with_manifest(_set(("audio_rate",), float("nan"))), "audio_rate nan"),
    "audio_rate inf": (lambda: _with_manifest(_set(("audio_rate",), float("inf"))), "audio_rate inf"),
    "audio_rate -inf": (lambda: _with_manifest(_set(("audio_rate",), -float("inf"))), "audio_rate -inf"),
    "audio_rate 1e300": (lambda: _with_manifest(_set(("audio_rate",), 1e300)), "audio_rate 1e"),
    "audio_rate negative": (lambda: _with_manifest(_set(("audio_rate",), -2048.0)), "audio_rate -2048"),
    "palette entry 999": (lambda: _with_manifest(_set(("vocab", "palette", 5), [999, 0, 0])), "palette entry"),
    "slicing 0": (lambda: _with_manifest(_set(("slicing", "audio"), 0)), "slicing"),
    "nested JSON": (lambda: _with_manifest(_set(("calibration",), DEEP)), "nested too deeply"),
    "negative constant shape": (_negative_constant_shape, "negative dimension"),
}


@pytest.fixture(scope="module", params=sorted(ROWS))
def hostile(request, tmp_path_factory):
    make, match = ROWS[request.param]
    path = tmp_path_factory.mktemp("hostile") / "model.tflite"
    path.write_bytes(make())
    return path, match


def _run(args, capsys) -> tuple[int, str]:
    rc = cli.main(args)
    return rc, capsys.readouterr().err


def test_generate_refuses_in_one_line_and_writes_nothing(hostile, tmp_path, capsys):
    path, match = hostile
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, err = _run(["generate", str(path), "--backend", "numpy", "--out", str(out), "--seed", "1"], capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(match, lines[0]), lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_inspect_refuses_in_one_line(hostile, capsys):
    path, match = hostile
    rc, err = _run(["inspect", str(path)], capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
