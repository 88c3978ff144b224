"""The manifest: exact JSON round trip, through a model file too; files without one, or from a newer
major format, are refused with a message that says what to re-run; ``inspect`` needs no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pxby_edge.errors import ManifestError
from pxby_edge.manifest import (
    FORMAT_VERSION,
    GEOMETRY_AUDIO_SAMPLES,
    GEOMETRY_IMAGE_WIDTH,
    KEY_FORMAT_VERSION,
    KEY_GEOMETRY,
    MANIFEST_METADATA_NAME,
    Manifest,
    TensorSpec,
    read_manifest,
)
from pxby_edge.vocab import Vocab

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "pxby_edge" / "assets" / "demo.tflite"


def make_manifest(**changes) -> Manifest:
    state = (2, 1, 32)
    base = dict(
        vocab=Vocab(),
        slicing={"image": 1, "audio": 4},
        model={"vocab_size": 151, "embed_size": 24, "hidden_size": 32, "num_layers": 2, "pxby_dim": 6,
               "objective": "autoregressive", "bidirection": False},
        objective="autoregressive",
        batch=1,
        recipe="int8",
        inputs=(TensorSpec("context", "serving_default_context", 0, (1, 6), "int32"),
                TensorSpec("h0", "serving_default_h0", 1, state, "int8", 0.0054791676, 3),
                TensorSpec("c0", "serving_default_c0", 2, state, "int8", 0.0092432443, 1)),
        outputs=(TensorSpec("logits", "serving_default_logits_output", 76, (1, 6, 151), "int8", 0.0116799, -3),
                 TensorSpec("h1", "serving_default_h1_output", 72, state, "int8", 0.0045595, -2),
                 TensorSpec("c1", "serving_default_c1_output", 74, state, "int8", 0.0086752, 3)),
        audio_rate=2048.0,
        calibration={"source": "synthetic", "calib_steps": 256},
        fidelity={"recipe": "int8", "mean_kl": 0.0069, "state_cosine_4096": 0.92},
        checkpoint_sha256="ab" * 32,
        pxby_edge_version="0.1.0",
    )
    base.update(changes)
    return Manifest(**base)


def test_json_round_trip_is_exact():
    m = make_manifest()
    text = m.to_json()
    back = Manifest.from_json(text)
    assert back == m
    assert back.to_json() == text
    assert back.input("h0").quantized and not back.input("context").quantized
    assert back.num_layers == 2 and back.hidden_size == 32 and back.vocab_size == 151


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 64),
    recipe=st.sampled_from(["float", "int8", "dynamic", "int4", "a16w8", "mixed"]),
    scale=st.floats(min_value=1e-9, max_value=10.0, allow_nan=False),
    zero=st.integers(-128, 127),
    slicing=st.fixed_dictionaries({"image": st.integers(1, 8), "audio": st.integers(1, 16)}),
    fidelity=st.dictionaries(st.text(min_size=1, max_size=12), st.floats(allow_nan=False, allow_infinity=False),
                             max_size=5),
    rate=st.none() | st.floats(min_value=1.0, max_value=48000.0),
)
def test_round_trip_property(batch, recipe, scale, zero, slicing, fidelity, rate):
    m = make_manifest(batch=batch, recipe=recipe, slicing=slicing, fidelity=fidelity, audio_rate=rate,
                      inputs=(TensorSpec("h0", "t", 1, (2, batch, 32), "int8", scale, zero),))
    back = Manifest.from_json(m.to_bytes())
    assert back == m and back.to_json() == m.to_json()


def _with_version(version: str, **extra) -> str:
    d = make_manifest().to_dict()
    d[KEY_FORMAT_VERSION] = version
    d.update(extra)
    return json.dumps(d)


def test_newer_major_version_is_refused_with_what_to_do():
    major = int(FORMAT_VERSION.split(".")[0])
    with pytest.raises(ManifestError, match=r"newer than this pxby-edge.*pxby-edge quantize"):
        Manifest.from_json(_with_version(f"{major + 1}.0"))
    with pytest.raises(ManifestError, match="older"):
        Manifest.from_json(_with_version(f"{major - 1}.9"))
    with pytest.raises(ManifestError, match="major.minor"):
        Manifest.from_json(_with_version("one"))


def test_newer_minor_keeps_unknown_keys_and_same_minor_refuses_them():
    major, minor = (int(x) for x in FORMAT_VERSION.split("."))
    m = Manifest.from_json(_with_version(f"{major}.{minor + 1}", future_key={"a": 1}))
    assert m.extra == {"future_key": {"a": 1}}
    assert Manifest.from_json(m.to_json()) == m
    with pytest.raises(ManifestError, match="unknown manifest keys"):
        Manifest.from_json(_with_version(FORMAT_VERSION, future_key=1))


def test_bad_documents_give_manifest_errors():
    for text in ("not json", "[1, 2]", json.dumps({KEY_FORMAT_VERSION: FORMAT_VERSION})):
        with pytest.raises(ManifestError):
            Manifest.from_json(text)
    d = make_manifest().to_dict()
    d["objective"] = "diffusion"
    with pytest.raises(ManifestError, match="cannot stream"):
        Manifest.from_dict(d)
    with pytest.raises(ManifestError, match="no input named"):
        make_manifest().input("x")


def _mutated(path: tuple, value) -> dict:
    d = json.loads(make_manifest().to_json())
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return d


HOSTILE_FIELDS = [
    (("audio_rate",), float("nan"), "audio_rate nan"),
    (("audio_rate",), float("inf"), "audio_rate inf"),
    (("audio_rate",), -float("inf"), "audio_rate -inf"),
    (("audio_rate",), 1e300, "audio_rate 1e"),
    (("audio_rate",), -8000, "audio_rate -8000"),
    (("audio_rate",), "fast", "audio_rate must be a number"),
    (("vocab", "palette", 3), [999, 0, 0], "palette entry"),
    (("vocab", "palette", 3), 7, "vocabulary"),
    (("vocab", "action_states", 0), float("nan"), "action state"),
    (("vocab", "bytes", 5), "ab", "not one byte"),
    (("slicing", "audio"), 0, r"slicing\[audio\] 0"),
    (("slicing", "image"), 2.5, "slicing.*integer"),
    (("slicing", "video"), 1, "slicing has keys"),
    (("batch",), 0, "batch 0"),
    (("batch",), True, "batch must be an integer"),
    (("batch",), 10**9, "batch"),
    (("slots",), 3, "slots 3"),
    (("recipe",), "int3", "recipe"),
    (("model", "hidden_size"), -32, "hidden_size"),
    (("model", "num_layers"), None, "num_layers"),
    (("model", "vocab_size"), 152, "vocab_size 152"),
    (("inputs", 1, "shape"), [2, -1, 32], "dimension -1"),
    (("inputs", 1, "shape"), [2**20, 2**20], "elements"),
    (("inputs", 1, "dtype"), "int4", "dtype"),
    (("inputs", 1, "scale"), float("nan"), "scale nan"),
    (("inputs", 1, "zero_point"), 300, "zero point 300"),
    (("inputs", 1, "index"), -2, "index -2"),
    (("inputs",), [{}] * 40, "at most 16"),
    (("outputs", 0), "logits", "tensor entry"),
    (("calibration",), [1], "calibration must be a JSON object"),
    (("geometry",), {GEOMETRY_IMAGE_WIDTH: [30, 20]}, "min 30 above max 20"),
    (("geometry",), {GEOMETRY_IMAGE_WIDTH: [-1, 20]}, "geometry image_width -1"),
    (("geometry",), {"image_depth": [1, 2]}, "geometry key"),
]


@pytest.mark.parametrize("path,value,match", HOSTILE_FIELDS, ids=[f"{'.'.join(map(str, p))}={v!r:.20}" for p, v, _ in HOSTILE_FIELDS])
def test_hostile_fields_are_refused_in_one_line(path, value, match):
    with pytest.raises(ManifestError, match=match) as info:
        Manifest.from_json(json.dumps(_mutated(path, value)))
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_deep_or_huge_json_is_refused():
    with pytest.raises(ManifestError, match="nested too deeply"):
        Manifest.from_json("[" * 100_000 + "]" * 100_000)
    d = make_manifest().to_dict()
    d["fidelity"] = {"a": json.loads("[" * 100 + "]" * 100)}
    with pytest.raises(ManifestError, match="nested more than"):
        Manifest.from_dict(d)
    with pytest.raises(ManifestError, match="more than the"):
        Manifest.from_json(" " * (2 << 20))


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(sorted(make_manifest().to_dict())), value=_json)
def test_any_value_in_any_field_is_a_manifest_or_a_manifest_error(key, value):
    try:
        m = Manifest.from_json(json.dumps(_mutated((key,), value)))
    except ManifestError:
        return
    assert Manifest.from_json(m.to_json()) == m


def test_geometry_round_trips_and_old_files_load_without_it():
    m = make_manifest(geometry={GEOMETRY_IMAGE_WIDTH: (24, 24), GEOMETRY_AUDIO_SAMPLES: (410, 614)})
    back = Manifest.from_json(m.to_json())
    assert back == m and back.bound(GEOMETRY_IMAGE_WIDTH) == 24 and back.bound("text_tokens") is None
    old = make_manifest(format_version="1.0").to_dict()
    assert KEY_GEOMETRY not in old
    assert Manifest.from_dict(old).geometry == {}


def test_through_a_model_file(tmp_path):
    from test_tflite_file import build_model

    m = make_manifest()
    data = build_model({MANIFEST_METADATA_NAME: m.to_bytes()})
    assert read_manifest(data) == m
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert read_manifest(path) == m
    pytest.importorskip("flatbuffers")
    from quantize.metadata import with_metadata

    # Re-writing replaces the entry rather than adding a second one.
    m2 = make_manifest(recipe="mixed")
    again = with_metadata(data, {MANIFEST_METADATA_NAME: m2.to_bytes()})
    assert read_manifest(again) == m2


def test_file_without_manifest_is_refused(tmp_path):
    from test_tflite_file import build_model

    path = tmp_path / "plain.tflite"
    path.write_bytes(build_model({"other": b"x"}))
    with pytest.raises(ManifestError, match=r"no pxby-edge manifest.*pxby-edge quantize"):
        read_manifest(path)


BLOCK_TORCH = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'litert_torch', 'ai_edge_quantizer', 'ai_edge_litert', 'onnx'):\n"
    "            raise ImportError(f'blocked: {name}')\n"
    "sys.meta_path.insert(0, Block())\n"
    "from pxby_edge import cli\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


def test_inspect_bundled_model_without_torch():
    run = [sys.executable, "-c", BLOCK_TORCH]
    proc = subprocess.run(run + ["inspect", str(BUNDLED), "--json"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = Manifest.from_json(proc.stdout)
    assert m == read_manifest(BUNDLED)
    proc = subprocess.run(run + ["inspect", str(BUNDLED)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for word in ("recipe", "h0", "c1", "FULLY_CONNECTED", m.recipe):
        assert word in proc.stdout


def test_inspect_refuses_a_file_without_manifest_in_one_line(tmp_path):
    from test_tflite_file import build_model

    path = tmp_path / "plain.tflite"
    path.write_bytes(build_model())
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "inspect", str(path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no pxby-edge manifest" in proc.stderr
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage" * 10)
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "inspect", str(bad)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "not a TFLite model file" in proc.stderr
