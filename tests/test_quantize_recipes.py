"""The int4 and full-integer int8 recipes: what their graphs hold, their manifests, the numpy backend on them,
int4 weights read back from the file, GPTQ at 4 bits, and the calibrated ranges covering what the state reaches.

The files come from the session's ``models`` fixture (tests/conftest.py): ``int8`` (full integer) and ``int4``.
"""

from __future__ import annotations

import numpy as np
import pytest

from pxby_edge.backends import open_backend
from pxby_edge.manifest import INPUT_C, read_manifest
from pxby_edge.model_info import describe_model, float_compute_ops, op_dtypes
from pxby_edge.tflite_file import TFLiteFile
from tests.test_backends import run_contexts

# -- the graphs --------------------------------------------------------------------------------------------


def test_int8_graph_is_full_integer(models):
    """No op reads or writes a float tensor: no QUANTIZE/DEQUANTIZE at all (state goes in and out as int16),
    and the embedding is an integer GATHER, not the float EMBEDDING_LOOKUP the quantizer leaves."""
    f = TFLiteFile.open(models.int8)
    assert float_compute_ops(f) == []
    ops = op_dtypes(f)
    names = [name for name, _, _ in ops]
    assert "EMBEDDING_LOOKUP" not in names and names.count("GATHER") == 1
    for name, ins, outs in ops:
        assert not any(d.startswith("float") for d in ins + outs), (name, ins, outs)
        if name == "FULLY_CONNECTED":
            assert ins[:2] == ("int16", "int8") and outs == ("int16",)
    m = read_manifest(f)
    assert m.recipe == "int8" and m.input(INPUT_C).dtype == "int16"
    shown = describe_model(models.int8)
    assert "full integer" in shown and "minmax ranges capped at ±200" in shown


def test_float_ops_are_found_in_the_float_and_dynamic_graphs(models):
    assert set(float_compute_ops(TFLiteFile.open(models.float))) >= {"FULLY_CONNECTED", "EMBEDDING_LOOKUP"}
    f = TFLiteFile.open(models.int4)
    assert "FULLY_CONNECTED" in float_compute_ops(f)  # int4 weights, float activations
    assert "float ops: " in describe_model(models.int4)


def test_int4_file_holds_int4_weights_and_says_so(models):
    f = TFLiteFile.open(models.int4)
    m = read_manifest(f)
    assert m.recipe == "int4" and m.input(INPUT_C).dtype == "float32"
    rounding = m.calibration["rounding"]
    assert rounding["method"] == "gptq" and rounding["bits"] == 4
    fcs = [(name, ins) for name, ins, _ in op_dtypes(f) if name == "FULLY_CONNECTED"]
    assert fcs and all(ins[1] == "int4" for _, ins in fcs)
    weights = [t for t in f.subgraphs[0].tensors if t.dtype == "int4"]
    for t in weights:
        q = f.tensor_array(t)
        assert q.dtype == np.int8 and q.shape == t.shape and -7 <= q.min() and q.max() <= 7
        # Every row keeps one weight on ±7 (the pinned largest), so the row's scale is what GPTQ chose.
        assert (np.abs(q).max(axis=1) == 7).all()
    # Rows as wide as one of the quantizer's blocks are stored as one block (float16 scale, no zero point),
    # the others per channel; the test model has both (24-wide layer-0 rows, 32-wide elsewhere).
    from quantize.recipes import ROW_BLOCK_WIDTHS

    kinds = set()
    for t in weights:
        q = t.quantization
        if t.shape[1] in ROW_BLOCK_WIDTHS:
            scales = f.block_scales(t)
            assert q.block_size == t.shape[1] and not q.scale and not q.zero_point and scales.shape == (t.shape[0], 1)
            assert f.subgraphs[0].tensors[q.block_scales].dtype == "float16"
            kinds.add("block")
        else:
            assert q.block_size == 0 and len(q.scale) == len(q.zero_point) == t.shape[0]
            kinds.add("channel")
    assert kinds == {"block", "channel"}
    shown = describe_model(models.int4)
    assert "recipe     int4" in shown and "rounded gptq to 4 bits" in shown
    assert "int4 in row blocks (float16 scale)" in shown and "int4 per channel" in shown


# -- the numpy backend runs both ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["int8", "int4"])
def test_numpy_backend_tracks_litert_on_both_recipes(models, key):
    ids = np.load(models.io)["input_ids"].reshape(-1, 6)
    path = getattr(models, key)
    ref = run_contexts(open_backend(path, "litert"), ids)
    got = run_contexts(open_backend(path, "numpy"), ids)
    assert (got.argmax(-1) == ref.argmax(-1)).mean() > 0.95
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


# -- pieces -------------------------------------------------------------------------------------------------


def test_int4_constants_unpack_low_nibble_first(tmp_path):
    """TFLite packs int4 two per byte, the first element in the low nibble; an odd count pads the last byte."""
    from pxby_edge.tflite_file import Tensor, _unpack_int4

    values = np.array([-8, 7, 0, -1, 3, -5, 1], dtype=np.int8)
    nibbles = np.append(values, 0).astype(np.uint8) & 0xF
    packed = (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()
    t = Tensor(index=0, name="w", shape=(7,), type=17, buffer=1)
    np.testing.assert_array_equal(_unpack_int4(packed, t), values)
    from pxby_edge.errors import ModelFileError

    with pytest.raises(ModelFileError):
        _unpack_int4(packed[:-1], t)


def test_gptq_at_4_bits_stays_on_the_grid_and_beats_nearest():
    from quantize.rounding import clipped_scales, gptq_round, max_pins, nearest_round, qmax_for, row_scales

    rng = np.random.default_rng(0)
    # Correlated inputs, as a layer's really are (GPTQ's gain comes from the off-diagonal of H).
    x = rng.normal(size=(2000, 12)) @ rng.normal(size=(12, 48)) + 0.1 * rng.normal(size=(2000, 48))
    w = rng.normal(size=(32, 48))
    w[:, 0] *= 6  # one outlier column: a clipped scale pays at 4 bits
    h = x.T @ x
    qmax = qmax_for(4)
    assert qmax == 7 and qmax_for(8) == 127
    with pytest.raises(ValueError):
        qmax_for(3)
    s_max = row_scales(w, qmax)
    s = clipped_scales(w, np.diag(h), qmax)
    assert (s <= s_max * (1 + 1e-6)).all() and (s >= 0.6 * s_max * (1 - 1e-6)).all() and (s < s_max).any()

    def diag_err(ss):  # what clipped_scales minimises: the H-diagonal-weighted error of nearest rounding
        return float(np.sum((w - nearest_round(w, ss, qmax) * ss[:, None]) ** 2 * np.diag(h)))

    assert diag_err(s) < diag_err(s_max)
    q = gptq_round(w, h, s, pinned=max_pins(w), qmax=qmax)
    assert q.min() >= -qmax and q.max() <= qmax and (np.abs(q).max(axis=1) == qmax).all()

    def out_err(qq, ss):  # what GPTQ minimises: the error of the layer's outputs
        return float(np.sum((x @ (w - qq * ss[:, None]).T) ** 2))

    assert out_err(q, s) < 0.2 * out_err(nearest_round(w, s, qmax), s)


def test_calibrated_state_range_covers_the_cell_state_seen(models):
    """The ranges are the whole min/max over the samples: the c0 grid holds every |c| the calibration
    walked (the quantizer's own moving average kept about the last 20 samples' extremes and clipped c)."""
    from quantize.calibrate import calibration_samples, load_streams
    from quantize.source import load_source
    from quantize.step import StepModule

    source = load_source(models.ckpt)
    samples, _ = calibration_samples(StepModule(source.model).eval(), load_streams(None, source.slicing), 16)
    c_max = max(float(np.abs(s["c0"]).max()) for s in samples)
    from quantize.recipes import RANGE_CAP

    spec = read_manifest(models.int8).input(INPUT_C)
    assert spec.scale * 32767 >= min(c_max, RANGE_CAP) * (1 - 1e-4)


def test_ranges_are_capped_only_where_they_pass_the_bound():
    from quantize.recipes import cap_ranges

    cal = {"c": {"min": np.array([[-900.0]]), "max": np.array([[850.0]])},
           "gate": {"min": np.array([[-12.0]]), "max": np.array([[9.0]])},
           "ids": {"shape": (1, 6)}}
    assert cap_ranges(cal, 200.0) == 1
    assert float(cal["c"]["min"][0, 0]) == -200.0 and float(cal["c"]["max"][0, 0]) == 200.0
    assert cal["c"]["min"].shape == (1, 1) and cal["c"]["min"].dtype == np.float32
    assert float(cal["gate"]["min"][0, 0]) == -12.0 and float(cal["gate"]["max"][0, 0]) == 9.0


def test_percentile_ranges_lie_inside_the_minmax_ranges(models):
    pytest.importorskip("ai_edge_quantizer")
    from ai_edge_quantizer import quantizer, recipe

    from quantize.calibrate import calibration_samples, load_streams
    from quantize.recipes import calibrate_ranges
    from quantize.source import load_source
    from quantize.step import StepModule

    source = load_source(models.ckpt)
    samples, _ = calibration_samples(StepModule(source.model).eval(), load_streams(None, source.slicing), 12)
    q = quantizer.Quantizer(bytearray(models.float.read_bytes()))
    q.load_quantization_recipe(recipe.static_wi8_ai16())
    data = {"serving_default": samples}
    full, pct = calibrate_ranges(q, data, "minmax"), calibrate_ranges(q, data, "percentile")
    assert set(full) == set(pct) and len(full) > 20
    c_name = read_manifest(models.float).input(INPUT_C).tensor
    c_max = max(float(np.abs(s["c0"]).max()) for s in samples)
    assert float(np.max(full[c_name]["max"])) == pytest.approx(max(float(s["c0"].max()) for s in samples))
    assert max(abs(float(np.min(full[c_name]["min"]))), float(np.max(full[c_name]["max"]))) == pytest.approx(c_max)
    for name, r in full.items():
        assert "_seen" not in r and "_seen" not in pct[name]
        assert np.all(pct[name]["max"] <= r["max"] + 1e-6) and np.all(pct[name]["min"] >= r["min"] - 1e-6)
    with pytest.raises(ValueError):
        calibrate_ranges(q, data, "moving-average")


def test_qat_keeps_the_grid_scales_and_pins_and_starts_from_gptq(models):
    """Fine-tuning moves integers but never a row's scale or its pinned ±7, and with nothing to learn
    (lr 0) it gives GPTQ's integers back. Whether it helps is measured on trained models (BENCHMARKS.md):
    on this random tiny model the float-to-rounded KL is ~1e-6, below what a few noisy steps resolve."""
    from quantize.calibrate import load_streams
    from quantize.qat import qat_round
    from quantize.rounding import gptq_weights
    from quantize.source import load_source

    source = load_source(models.ckpt)
    streams = load_streams(None, source.slicing).streams
    gptq = gptq_weights(source.model, streams, bits=4)
    still = qat_round(source.model, streams, gptq, 3, lr=0.0)
    for name in gptq.ints:
        np.testing.assert_array_equal(still.ints[name], gptq.ints[name])
    tuned = qat_round(source.model, streams, gptq, 40, lr=1e-3)
    assert tuned.bits == 4 and tuned.summary["qat"]["steps"] == 40 and tuned.summary["method"] == "gptq"
    for name in gptq.ints:
        np.testing.assert_array_equal(tuned.scales[name], gptq.scales[name])
        q = tuned.ints[name]
        assert q.min() >= -7 and q.max() <= 7 and (np.abs(q).max(axis=1) == 7).all()
    assert any((tuned.ints[n] != gptq.ints[n]).any() for n in gptq.ints)


def test_the_integer_embedding_table_is_the_float_table_on_its_grid(models):
    """quantize.graph.integer_embedding: the GATHER's table is the checkpoint's embedding rounded onto the
    grid of the QUANTIZE it replaced (within half a step), and the GATHER writes on that same grid."""
    from quantize.source import load_source

    f = TFLiteFile.open(models.int8)
    sub = f.subgraphs[0]
    gather = next(op for op in sub.operators if f.op_name(op) == "GATHER")
    table, ids = (sub.tensors[i] for i in gather.inputs)
    out = sub.tensors[gather.outputs[0]]
    assert ids.dtype == "int32" and table.dtype == out.dtype == "int16"
    assert (table.scale, table.zero_point) == (out.scale, out.zero_point)
    weight = load_source(models.ckpt).model.embedding.weight.detach().numpy()
    real = f.dequantized(table)
    assert real.shape == weight.shape
    assert np.abs(real - weight).max() <= table.scale / 2 * (1 + 1e-5)
