"""The pure-Python TFLite reader: what it parses equals what the schema wrote and what LiteRT sees,
and no corrupt file makes it crash or read past the end (every failure is a ModelFileError)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pxby_edge.errors import ModelFileError
from pxby_edge.tflite_file import BUILTIN_OPS, TFLiteFile

ASSETS = Path(__file__).resolve().parent.parent / "pxby_edge" / "assets"
BUNDLED = ASSETS / "demo.tflite"

WEIGHT_Q = np.array([[1, -2, 3, -4], [5, 6, -7, 8], [-128, 0, 127, 1]], dtype=np.int8)
WEIGHT_SCALES = [0.5, 0.25, 0.125]


def _add_fc_op_and_signature(schema, m, sg) -> None:
    """The one FULLY_CONNECTED op (x, w, b → y) and the serving signature x → y."""
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    sg.operators = [op]
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    m.operatorCodes = [code]
    m.subgraphs = [sg]
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = "serving_default", 0
    tm_in, tm_out = schema.TensorMapT(), schema.TensorMapT()
    tm_in.name, tm_in.tensorIndex = "x", 0
    tm_out.name, tm_out.tensorIndex = "y", 3
    sig.inputs, sig.outputs = [tm_in], [tm_out]
    m.signatureDefs = [sig]


def build_model(metadata: dict | None = None, external: bool = False) -> bytes:
    """A small FULLY_CONNECTED model written with the schema's object API (the reference writer).

    ``external`` stores the weights after the flatbuffer, addressed by offset and size, as the
    quantizer does for some models."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    flatbuffers = pytest.importorskip("flatbuffers")

    def tensor(name, shape, ttype, buffer, scale=None, zp=None, qdim=0):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), ttype, buffer
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale, q.zeroPoint, q.quantizedDimension = list(scale), list(zp), qdim
            t.quantization = q
        return t

    def buffer(data=None):
        b = schema.BufferT()
        if data is not None:
            b.data = np.frombuffer(bytes(data), dtype=np.uint8)
        return b

    tt = schema.TensorType
    m = schema.ModelT()
    m.version = 3
    m.description = "test"
    m.buffers = [buffer(), buffer(WEIGHT_Q.tobytes()), buffer(np.array([1.5, -2.0, 0.25], "<f4").tobytes())]
    sg = schema.SubGraphT()
    sg.name = "main"
    sg.tensors = [
        tensor("serving_default_x", (1, 4), tt.INT8, 0, [0.1], [3]),
        tensor("w", (3, 4), tt.INT8, 1, WEIGHT_SCALES, [0, 0, 0], qdim=0),
        tensor("b", (3,), tt.FLOAT32, 2),
        tensor("serving_default_y", (1, 3), tt.FLOAT32, 0),
    ]
    sg.inputs, sg.outputs = [0], [3]
    _add_fc_op_and_signature(schema, m, sg)
    m.metadata = []
    for name, data in (metadata or {}).items():
        m.buffers.append(buffer(data))
        md = schema.MetadataT()
        md.name, md.buffer = name, len(m.buffers) - 1
        m.metadata.append(md)
    def pack():
        builder = flatbuffers.Builder(1024)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    if not external:
        return pack()
    weights = m.buffers[1]
    raw = bytes(weights.data)
    weights.data, weights.offset, weights.size = None, 1 << 40, len(raw)  # placeholder of the final width
    head = len(pack())
    weights.offset = head + (-head % 16)
    data = pack()
    assert len(data) == head
    return data + b"\0" * (weights.offset - head) + raw


@pytest.fixture(scope="module")
def small() -> bytes:
    return build_model({"note": b"hello", "other": b"\x00\x01"})


def test_reads_what_the_schema_wrote(small):
    f = TFLiteFile(small)
    assert f.version == 3 and f.description == "test"
    sub = f.subgraphs[0]
    assert sub.name == "main" and sub.inputs == (0,) and sub.outputs == (3,)
    x, w, b, y = sub.tensors
    assert (x.name, x.shape, x.dtype, x.scale, x.zero_point) == ("serving_default_x", (1, 4), "int8", pytest.approx(0.1), 3)
    assert w.quantization.per_channel and w.quantization.scale == tuple(WEIGHT_SCALES)
    assert y.dtype == "float32" and not y.quantized and y.scale == 0.0
    assert [f.op_name(op) for op in sub.operators] == ["FULLY_CONNECTED"]
    assert sub.operators[0].inputs == (0, 1, 2)
    assert f.op_counts() == {"FULLY_CONNECTED": 1}
    sig = f.signature()
    assert sig.key == "serving_default" and sig.inputs == {"x": 0} and sig.outputs == {"y": 3}
    assert f.metadata == {"note": b"hello", "other": b"\x00\x01"}
    np.testing.assert_array_equal(f.tensor_array(w), WEIGHT_Q)
    assert f.tensor_array(x) is None  # an activation has no data
    expected = WEIGHT_Q.astype(np.float32) * np.array(WEIGHT_SCALES, np.float32)[:, None]
    np.testing.assert_array_equal(f.dequantized(w), expected)
    np.testing.assert_array_equal(f.dequantized(b), [1.5, -2.0, 0.25])
    assert sub.tensor_by_name("b").index == 2


def test_builtin_op_names_follow_the_schema():
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    for name, value in vars(schema.BuiltinOperator).items():
        if not name.startswith("_"):
            assert BUILTIN_OPS[value] == name


def test_refuses_files_that_are_not_tflite(tmp_path):
    with pytest.raises(ModelFileError, match="not a TFLite model file"):
        TFLiteFile(b"PK\x03\x04 this is a zip file")
    with pytest.raises(ModelFileError, match="not a TFLite"):
        TFLiteFile(b"")
    with pytest.raises(ModelFileError, match="no such model file"):
        TFLiteFile.open(tmp_path / "missing.tflite")
    with pytest.raises(ModelFileError, match="folder"):
        TFLiteFile.open(tmp_path)


def test_truncated_file_is_refused(small):
    for n in (8, 12, len(small) // 2, len(small) - 1):
        try:
            TFLiteFile(small[:n])
        except ModelFileError:
            continue
        # A cut that leaves every referenced byte inside is fine; it must then parse the same tables.
        assert TFLiteFile(small[:n]).subgraphs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupt_bytes_never_crash(small, data):
    buf = bytearray(small)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(buf)))
    try:
        f = TFLiteFile(bytes(buf[:cut]))
    except ModelFileError:
        return
    for sub in f.subgraphs:  # whatever parsed must be safe to use
        for t in sub.tensors:
            try:
                f.dequantized(t)
            except ModelFileError:
                pass


def test_bundled_file_matches_the_interpreter():
    interp_mod = pytest.importorskip("ai_edge_litert.interpreter")
    f = TFLiteFile.open(BUNDLED)
    it = interp_mod.Interpreter(model_path=str(BUNDLED))
    details = {d["index"]: d for d in it.get_tensor_details()}
    sub = f.subgraphs[0]
    for t in sub.tensors:
        d = details.get(t.index)
        if d is None:
            continue
        assert d["name"] == t.name
        assert tuple(d["shape"]) == t.shape
        # The interpreter hands int4 weights out as int8 (numpy has no 4-bit type).
        assert np.dtype(d["dtype"]).name == ("int8" if t.dtype == "int4" else t.dtype)
        scales = d["quantization_parameters"]["scales"]
        # Blockwise weights: the interpreter lists the block scales, which the file keeps in their own tensor.
        ours = f.block_scales(t).ravel() if t.quantization.block_size else t.quantization.scale
        assert tuple(float(s) for s in scales) == pytest.approx(tuple(ours))
    ops = [o["op_name"] for o in it._get_ops_details()]
    assert ops == [f.op_name(op) for op in sub.operators]
    assert set(f.signature().inputs) == {"context", "h0", "c0"}


def test_weights_stored_after_the_flatbuffer(small):
    f = TFLiteFile(build_model({"note": b"x"}, external=True))
    np.testing.assert_array_equal(f.tensor_array(f.subgraphs[0].tensors[1]), WEIGHT_Q)
    assert f.metadata == {"note": b"x"}
    pytest.importorskip("flatbuffers")
    from quantize.metadata import with_metadata

    # Adding metadata re-packs the file: the outside weights must come along.
    again = TFLiteFile(with_metadata(build_model(external=True), {"m": b"1"}))
    np.testing.assert_array_equal(again.tensor_array(again.subgraphs[0].tensors[1]), WEIGHT_Q)
    assert again.metadata["m"] == b"1"


def test_operator_options_agree_with_the_schema_reader():
    """The options the numpy backend runs with are what the schema's own object API reads."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    path = Path(__file__).resolve().parent.parent / "pxby_edge" / "assets" / "demo.tflite"
    f = TFLiteFile.open(path)
    ref = schema.ModelT.InitFromPackedBuf(bytearray(f.data), 0).subgraphs[0].operators
    names = {"act": "fusedActivationFunction", "keep_num_dims": "keepNumDims", "axis": "axis"}
    seen = set()
    for op, want in zip(f.subgraphs[0].operators, ref):
        for key, value in op.options.items():
            assert value == getattr(want.builtinOptions, names[key]), (f.op_name(op), key)
            seen.add((f.op_name(op), key))
    assert {("FULLY_CONNECTED", "keep_num_dims"), ("CONCATENATION", "axis"), ("ADD", "act")} <= seen


def _with_block_detail(path, change) -> bytes:
    """The file at ``path`` re-packed after ``change(details, tensor)`` on its first blockwise weight."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    flatbuffers = pytest.importorskip("flatbuffers")
    m = schema.ModelT.InitFromPackedBuf(bytearray(Path(path).read_bytes()), 0)
    t = next(t for t in m.subgraphs[0].tensors
             if t.quantization is not None and t.quantization.detailsType == schema.QuantizationDetails.BlockwiseQuantization)
    change(t.quantization.details, t)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_blockwise_weights_read_back_and_bad_block_details_are_refused():
    f = TFLiteFile.open(BUNDLED)
    blocked = [t for t in f.subgraphs[0].tensors if t.quantization.block_size]
    if not blocked:
        pytest.skip("the bundled file has no blockwise weights")
    t = blocked[0]
    real = f.dequantized(t)
    np.testing.assert_array_equal(real, f.tensor_array(t) * np.repeat(f.block_scales(t), t.quantization.block_size, 1))

    def rebuilt(change):
        g = TFLiteFile(_with_block_detail(BUNDLED, change))
        bad = next(x for x in g.subgraphs[0].tensors if x.quantization.block_size and x.name == t.name)
        return g, bad

    with pytest.raises(ModelFileError, match="block size"):
        TFLiteFile(_with_block_detail(BUNDLED, lambda d, _: setattr(d, "blockSize", 0)))
    for change, message in ((lambda d, _: setattr(d, "scales", 10**6), "does not fit"),
                            (lambda d, _: setattr(d, "blockSize", 7), "does not fit"),
                            (lambda d, _: setattr(d, "zeroPoints", d.scales), "zero points")):
        g, bad = rebuilt(change)
        with pytest.raises(ModelFileError, match=message):
            g.dequantized(bad)
