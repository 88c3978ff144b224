"""Read a TFLite model file with nothing but Python and numpy: tensors, weights, ops, signatures, metadata.

    python -m pxby_edge.tflite_file pxby_edge/assets/demo.tflite

A TFLite file is a FlatBuffer (schema ``tflite/schema.fbs``, identifier ``TFL3``). This reader walks
the few tables pxby-edge needs without the ``flatbuffers`` package or an interpreter, so ``inspect``,
the manifest and the pure-numpy backend work on a device that has neither. Every offset and length is
checked against the file size before it is followed; anything that does not fit raises
``ModelFileError`` rather than reading garbage or crashing.

    f = TFLiteFile.open("model.tflite")
    f.metadata["pxby_edge_manifest"]          # bytes
    sub = f.subgraphs[0]
    t = sub.tensors[sub.inputs[0]]; t.name, t.shape, t.dtype, t.scale, t.zero_point
    f.tensor_array(t)                       # raw numpy view of a constant tensor (None for activations)
    f.dequantized(t)                        # float32 with scale/zero point applied (per channel too)
    [f.op_name(op) for op in sub.operators]
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from pxby_edge.errors import ModelFileError

FILE_IDENTIFIER = b"TFL3"
MAX_MODEL_BYTES = (1 << 31) - 1  # a flatbuffer addresses at most 2 GiB; larger is not a model file

# TensorType enum of the schema, index = value: (name, numpy dtype or None when numpy has no equivalent).
TENSOR_TYPES: tuple[tuple[str, Optional[str]], ...] = (
    ("float32", "<f4"), ("float16", "<f2"), ("int32", "<i4"), ("uint8", "u1"), ("int64", "<i8"),
    ("string", None), ("bool", "?"), ("int16", "<i2"), ("complex64", "<c8"), ("int8", "i1"),
    ("float64", "<f8"), ("complex128", "<c16"), ("uint64", "<u8"), ("resource", None), ("variant", None),
    ("uint32", "<u4"), ("uint16", "<u2"), ("int4", None), ("bfloat16", None), ("int2", None),
    ("uint4", None), ("float8_e4m3fn", None), ("float8_e5m2", None),
)

# BuiltinOperator enum of the schema, index = value (generated from the schema, LiteRT 2.3).
BUILTIN_OPS: tuple[str, ...] = tuple("""
    ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
    EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D
    LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6
    RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM
    EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND
    TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN
    EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX
    MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV
    SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT
    REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV
    REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU
    SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU
    REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE
    NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL
    PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS
    HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE
    READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM
    MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX
    UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT
    STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM
    STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM
    STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS
    STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM
    STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT STABLEHLO_SELECT
    STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT
    STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA
    STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE STABLEHLO_GATHER
    STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW STABLEHLO_COMPOSITE
    STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE
""".split())

# Field slots (vtable order) of the tables read here, from schema.fbs.
_MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "description": 3, "buffers": 4,
          "metadata": 6, "signature_defs": 7}
_SUBGRAPH = {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3, "name": 4}
_TENSOR = {"shape": 0, "type": 1, "buffer": 2, "name": 3, "quantization": 4, "is_variable": 5,
           "shape_signature": 7}
_QUANT = {"min": 0, "max": 1, "scale": 2, "zero_point": 3, "details_type": 4, "details": 5, "quantized_dimension": 6}
_BLOCKWISE = {"scales": 0, "zero_points": 1, "block_size": 2}
DETAILS_BLOCKWISE = 2  # QuantizationDetails union: NONE, CustomQuantization, BlockwiseQuantization
_OPERATOR = {"opcode_index": 0, "inputs": 1, "outputs": 2, "builtin_options_type": 3, "builtin_options": 4,
             "intermediates": 8}

# The scalars of each op's builtin options this package reads (schema.fbs), per op name:
# {option: (field slot, struct format, default)}. An op not listed here gets empty options.
OPTION_FIELDS: dict[str, dict[str, tuple[int, str, object]]] = {
    "FULLY_CONNECTED": {"act": (0, "b", 0), "keep_num_dims": (2, "?", False)},
    "ADD": {"act": (0, "b", 0)},
    "SUB": {"act": (0, "b", 0)},
    "MUL": {"act": (0, "b", 0)},
    "DIV": {"act": (0, "b", 0)},
    "CONCATENATION": {"axis": (0, "i", 0), "act": (1, "b", 0)},
    "GATHER": {"axis": (0, "i", 0), "batch_dims": (1, "i", 0)},
    "SPLIT": {"num_splits": (0, "i", 0)},
    "SPLIT_V": {"num_splits": (0, "i", 0)},
    "STRIDED_SLICE": {"begin_mask": (0, "i", 0), "end_mask": (1, "i", 0), "ellipsis_mask": (2, "i", 0),
                      "new_axis_mask": (3, "i", 0), "shrink_axis_mask": (4, "i", 0), "offset": (5, "?", False)},
    "SOFTMAX": {"beta": (0, "f", 1.0)},
    "LEAKY_RELU": {"alpha": (0, "f", 0.0)},
}
_OPCODE = {"deprecated_builtin_code": 0, "custom_code": 1, "version": 2, "builtin_code": 3}
_BUFFER = {"data": 0, "offset": 1, "size": 2}
_METADATA = {"name": 0, "buffer": 1}
_SIGNATURE = {"inputs": 0, "outputs": 1, "signature_key": 2, "subgraph_index": 4}
_TENSORMAP = {"name": 0, "tensor_index": 1}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point), per tensor or per channel; or
    blockwise: real = q * scales[row, col // block_size], the scales in another constant tensor."""

    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0
    min: tuple[float, ...] = ()
    max: tuple[float, ...] = ()
    block_size: int = 0  # > 0: blockwise, along the last dimension
    block_scales: int = -1  # tensor index of the (rows, cols // block_size) scales
    block_zero_points: int = -1

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type: int  # TensorType enum value
    buffer: int
    quantization: Quantization = field(default_factory=Quantization)
    is_variable: bool = False
    shape_signature: tuple[int, ...] = ()

    @property
    def dtype(self) -> str:
        """Lower-case type name, e.g. ``float32``, ``int8``."""
        return TENSOR_TYPES[self.type][0] if 0 <= self.type < len(TENSOR_TYPES) else f"type{self.type}"

    @property
    def quantized(self) -> bool:
        return bool(self.quantization.scale) or self.quantization.block_size > 0

    @property
    def scale(self) -> float:
        """The (first) scale; 0.0 for a tensor that is not quantized (the interpreter's convention)."""
        return float(self.quantization.scale[0]) if self.quantization.scale else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.quantization.zero_point[0]) if self.quantization.zero_point else 0


@dataclass(frozen=True)
class Operator:
    opcode_index: int
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    builtin_options_type: int = 0
    options: dict = field(default_factory=dict)  # the OPTION_FIELDS scalars of this op (defaults filled in)


@dataclass(frozen=True)
class OperatorCode:
    builtin_code: int
    custom_code: Optional[str]
    version: int

    @property
    def name(self) -> str:
        if self.custom_code is not None:
            return self.custom_code
        if 0 <= self.builtin_code < len(BUILTIN_OPS):
            return BUILTIN_OPS[self.builtin_code]
        return f"BUILTIN_{self.builtin_code}"


@dataclass(frozen=True)
class Subgraph:
    name: str
    tensors: tuple[Tensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: tuple[Operator, ...]

    def tensor_by_name(self, name: str) -> Tensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class Signature:
    key: str
    subgraph_index: int
    inputs: dict[str, int]  # signature name -> tensor index, in file order
    outputs: dict[str, int]


@dataclass(frozen=True)
class Buffer:
    offset: int  # absolute position of the bytes in the file
    size: int


class _Reader:
    """Bounds-checked FlatBuffer primitives over one bytes object."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def fail(self, what: str, pos: int):
        raise ModelFileError(f"corrupt TFLite file: {what} at byte {pos} is outside the {self.size}-byte file")

    def check(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            self.fail(what, pos)

    def u16(self, pos):
        self.check(pos, 2, "uint16")
        return struct.unpack_from("<H", self.data, pos)[0]

    def i32(self, pos):
        self.check(pos, 4, "int32")
        return struct.unpack_from("<i", self.data, pos)[0]

    def u32(self, pos):
        self.check(pos, 4, "uint32")
        return struct.unpack_from("<I", self.data, pos)[0]

    def table(self, pos: int) -> tuple[int, int, int]:
        """(table position, vtable position, vtable size) of the table at ``pos``."""
        vt = pos - self.i32(pos)
        vt_size = self.u16(vt)
        if vt_size < 4 or vt_size % 2:
            self.fail("vtable", vt)
        self.check(vt, vt_size, "vtable")
        return pos, vt, vt_size

    def field(self, tbl, slot: int) -> int:
        """Absolute position of a field, or 0 when absent."""
        pos, vt, vt_size = tbl
        entry = 4 + 2 * slot
        if entry + 2 > vt_size:
            return 0
        off = self.u16(vt + entry)
        return pos + off if off else 0

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def scalar(self, tbl, slot, fmt: str, default=0):
        pos = self.field(tbl, slot)
        if not pos:
            return default
        n = struct.calcsize(fmt)
        self.check(pos, n, "field")
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def vector(self, tbl, slot) -> tuple[int, int]:
        """(first element position, length) of a vector field; (0, 0) when absent."""
        pos = self.field(tbl, slot)
        if not pos:
            return 0, 0
        vec = self.deref(pos)
        n = self.u32(vec)
        return vec + 4, n

    def numeric_vector(self, tbl, slot, dtype: str) -> np.ndarray:
        start, n = self.vector(tbl, slot)
        item = np.dtype(dtype).itemsize
        if not n:
            return np.zeros(0, dtype=dtype)
        self.check(start, n * item, "vector")
        return np.frombuffer(self.data, dtype=dtype, count=n, offset=start)

    def table_vector(self, tbl, slot) -> list:
        start, n = self.vector(tbl, slot)
        self.check(start, 4 * n, "vector of tables")
        return [self.table(self.deref(start + 4 * i)) for i in range(n)]

    def string_at(self, pos: int) -> str:
        n = self.u32(pos)
        self.check(pos + 4, n, "string")
        try:
            return self.data[pos + 4: pos + 4 + n].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelFileError(f"corrupt TFLite file: string at byte {pos} is not UTF-8") from exc

    def string(self, tbl, slot, default=None):
        pos = self.field(tbl, slot)
        return self.string_at(self.deref(pos)) if pos else default

    def sub_table(self, tbl, slot):
        pos = self.field(tbl, slot)
        return self.table(self.deref(pos)) if pos else None


class TFLiteFile:
    """A parsed TFLite model. Use ``TFLiteFile.open(path)`` or ``TFLiteFile(data)``."""

    def __init__(self, data: Union[bytes, bytearray, memoryview], source: str = "<bytes>"):
        self.data = bytes(data)
        self.source = source
        try:
            self._parse()
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
        except (struct.error, ValueError, IndexError, RecursionError) as exc:  # defensive: never crash raw
            raise ModelFileError(f"{source}: corrupt TFLite file ({exc})") from exc

    @classmethod
    def open(cls, path: Union[str, Path]) -> TFLiteFile:
        from pxby_edge.errors import MediaError
        from pxby_edge.readers import read_regular_file

        path = Path(path)
        if path.is_dir():
            raise ModelFileError(f"{path} is a folder; give a .tflite file")
        try:
            # Bounded and regular: `inspect /dev/full` or a FIFO must not read until memory runs out.
            data = read_regular_file(path, MAX_MODEL_BYTES, ".tflite model file")
        except FileNotFoundError:
            raise ModelFileError(f"no such model file: {path}") from None
        except MediaError as exc:
            raise ModelFileError(str(exc)) from None
        return cls(data, source=str(path))

    # -- parsing -------------------------------------------------------------------------------

    def _parse(self) -> None:
        r = _Reader(self.data)
        if r.size < 8 or self.data[4:8] != FILE_IDENTIFIER:
            raise ModelFileError(
                "not a TFLite model file (no 'TFL3' identifier); give a .tflite file made by `pxby-edge quantize`"
            )
        model = r.table(r.u32(0))
        self.version = r.scalar(model, _MODEL["version"], "I")
        self.description = r.string(model, _MODEL["description"], "")
        self.buffers: list[Buffer] = [self._buffer(r, b) for b in r.table_vector(model, _MODEL["buffers"])]
        self.operator_codes: list[OperatorCode] = [
            OperatorCode(max(int(r.scalar(oc, _OPCODE["deprecated_builtin_code"], "b")),
                             int(r.scalar(oc, _OPCODE["builtin_code"], "i"))),
                         r.string(oc, _OPCODE["custom_code"]), r.scalar(oc, _OPCODE["version"], "i", 1))
            for oc in r.table_vector(model, _MODEL["operator_codes"])
        ]
        self.subgraphs: list[Subgraph] = [self._subgraph(r, sg) for sg in r.table_vector(model, _MODEL["subgraphs"])]
        self.metadata: dict[str, bytes] = self._metadata(r, model)
        self.signatures: list[Signature] = [self._signature(r, sd) for sd in r.table_vector(model, _MODEL["signature_defs"])]

    @staticmethod
    def _buffer(r: _Reader, b) -> Buffer:
        start, n = r.vector(b, _BUFFER["data"])
        if n:
            r.check(start, n, "buffer data")
            return Buffer(start, n)
        # Files over 2 GB keep weights after the flatbuffer, addressed from the file start.
        offset, size = r.scalar(b, _BUFFER["offset"], "Q"), r.scalar(b, _BUFFER["size"], "Q")
        if offset > 1:
            r.check(offset, size, "buffer data")
            return Buffer(offset, size)
        return Buffer(0, 0)

    def _metadata(self, r: _Reader, model) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for md in r.table_vector(model, _MODEL["metadata"]):
            name = r.string(md, _METADATA["name"], "")
            index = r.scalar(md, _METADATA["buffer"], "I")
            if index >= len(self.buffers):
                raise ModelFileError(f"metadata {name!r} points at buffer {index} of {len(self.buffers)}")
            if name in out:
                raise ModelFileError(f"metadata {name!r} appears twice")
            out[name] = self.buffer_bytes(index)
        return out

    def _signature(self, r: _Reader, sd) -> Signature:
        index = r.scalar(sd, _SIGNATURE["subgraph_index"], "I")
        if index >= len(self.subgraphs):
            raise ModelFileError(f"signature points at subgraph {index} of {len(self.subgraphs)}")
        maps = []
        for slot in (_SIGNATURE["inputs"], _SIGNATURE["outputs"]):
            names = {}
            for tm in r.table_vector(sd, slot):
                t = r.scalar(tm, _TENSORMAP["tensor_index"], "I")
                if t >= len(self.subgraphs[index].tensors):
                    raise ModelFileError(f"signature tensor index {t} out of range")
                names[r.string(tm, _TENSORMAP["name"], "")] = int(t)
            maps.append(names)
        return Signature(r.string(sd, _SIGNATURE["signature_key"], ""), int(index), *maps)

    def _operator(self, r: _Reader, op, indices) -> Operator:
        opcode = int(r.scalar(op, _OPERATOR["opcode_index"], "I"))
        if opcode >= len(self.operator_codes):
            raise ModelFileError(f"operator code {opcode} out of range ({len(self.operator_codes)} codes)")
        fields = OPTION_FIELDS.get(self.operator_codes[opcode].name, {})
        table = r.sub_table(op, _OPERATOR["builtin_options"]) if fields else None
        options = {key: r.scalar(table, slot, fmt, default) if table is not None else default
                   for key, (slot, fmt, default) in fields.items()}
        return Operator(opcode, indices(op, _OPERATOR["inputs"], True), indices(op, _OPERATOR["outputs"], True),
                        int(r.scalar(op, _OPERATOR["builtin_options_type"], "B")), options)

    def _tensor(self, r: _Reader, i: int, t) -> Tensor:
        q = r.sub_table(t, _TENSOR["quantization"])
        quant = Quantization()
        if q is not None:
            block = {}
            details = r.sub_table(q, _QUANT["details"])
            if details is not None and int(r.scalar(q, _QUANT["details_type"], "B")) == DETAILS_BLOCKWISE:
                block = {"block_size": int(r.scalar(details, _BLOCKWISE["block_size"], "i")),
                         "block_scales": int(r.scalar(details, _BLOCKWISE["scales"], "i", -1)),
                         "block_zero_points": int(r.scalar(details, _BLOCKWISE["zero_points"], "i", -1))}
                if block["block_size"] <= 0:
                    raise ModelFileError(f"tensor {i} has blockwise quantization with block size {block['block_size']}")
            quant = Quantization(
                scale=tuple(float(x) for x in r.numeric_vector(q, _QUANT["scale"], "<f4")),
                zero_point=tuple(int(x) for x in r.numeric_vector(q, _QUANT["zero_point"], "<i8")),
                quantized_dimension=int(r.scalar(q, _QUANT["quantized_dimension"], "i")),
                min=tuple(float(x) for x in r.numeric_vector(q, _QUANT["min"], "<f4")),
                max=tuple(float(x) for x in r.numeric_vector(q, _QUANT["max"], "<f4")),
                **block,
            )
        buffer = int(r.scalar(t, _TENSOR["buffer"], "I"))
        if buffer >= len(self.buffers):
            raise ModelFileError(f"tensor {i} points at buffer {buffer} of {len(self.buffers)}")
        shape = tuple(int(x) for x in r.numeric_vector(t, _TENSOR["shape"], "<i4"))
        if any(d < 0 for d in shape):
            raise ModelFileError(f"tensor {i} has a negative dimension in its shape {list(shape)}")
        return Tensor(
            index=i,
            name=r.string(t, _TENSOR["name"], ""),
            shape=shape,
            type=int(r.scalar(t, _TENSOR["type"], "b")),
            buffer=buffer,
            quantization=quant,
            is_variable=bool(r.scalar(t, _TENSOR["is_variable"], "?")),
            shape_signature=tuple(int(x) for x in r.numeric_vector(t, _TENSOR["shape_signature"], "<i4")),
        )

    def _subgraph(self, r: _Reader, sg) -> Subgraph:
        tensors = [self._tensor(r, i, t) for i, t in enumerate(r.table_vector(sg, _SUBGRAPH["tensors"]))]
        n = len(tensors)

        def indices(tbl, slot, allow_missing=False):
            idx = tuple(int(x) for x in r.numeric_vector(tbl, slot, "<i4"))
            low = -1 if allow_missing else 0
            if any(not low <= x < n for x in idx):
                raise ModelFileError(f"tensor index out of range (subgraph has {n} tensors)")
            return idx

        operators = [self._operator(r, op, indices) for op in r.table_vector(sg, _SUBGRAPH["operators"])]
        return Subgraph(
            name=r.string(sg, _SUBGRAPH["name"], ""),
            tensors=tuple(tensors),
            inputs=indices(sg, _SUBGRAPH["inputs"]),
            outputs=indices(sg, _SUBGRAPH["outputs"]),
            operators=tuple(operators),
        )

    # -- access --------------------------------------------------------------------------------

    def buffer_bytes(self, index: int) -> bytes:
        b = self.buffers[index]
        return self.data[b.offset: b.offset + b.size]

    def op_name(self, op: Operator) -> str:
        return self.operator_codes[op.opcode_index].name

    def signature(self, key: Optional[str] = None) -> Signature:
        """The signature named ``key``, or the only one when ``key`` is None."""
        if key is None:
            if len(self.signatures) != 1:
                raise ModelFileError(f"{self.source}: expected one signature, found {len(self.signatures)}")
            return self.signatures[0]
        for s in self.signatures:
            if s.key == key:
                return s
        raise ModelFileError(f"{self.source}: no signature {key!r} (has {[s.key for s in self.signatures]})")

    def tensor_array(self, tensor: Tensor) -> Optional[np.ndarray]:
        """A read-only numpy view of a constant tensor's data, shaped; None for activations."""
        raw = self.buffer_bytes(tensor.buffer) if tensor.buffer else b""
        if not raw:
            return None
        name, dtype = TENSOR_TYPES[tensor.type] if 0 <= tensor.type < len(TENSOR_TYPES) else (None, None)
        if name == "int4":
            return _unpack_int4(raw, tensor)
        if dtype is None:
            raise ModelFileError(f"tensor {tensor.name!r} has type {name or tensor.type}, which numpy cannot hold")
        count = int(np.prod(tensor.shape)) if tensor.shape else 1
        dt = np.dtype(dtype)
        if count * dt.itemsize != len(raw):
            raise ModelFileError(
                f"tensor {tensor.name!r}: {len(raw)} bytes of data for shape {tensor.shape} {name}"
            )
        return np.frombuffer(raw, dtype=dt).reshape(tensor.shape)

    def block_scales(self, tensor: Tensor, subgraph: int = 0) -> np.ndarray:
        """The (rows, cols // block_size) float32 scales of a blockwise-quantized 2-D constant, checked."""
        q = tensor.quantization
        tensors = self.subgraphs[subgraph].tensors
        bad = f"tensor {tensor.name!r} has blockwise quantization that does not fit its shape"
        if q.block_zero_points >= 0:
            raise ModelFileError(f"tensor {tensor.name!r} has blockwise zero points, which no recipe of ours writes")
        if len(tensor.shape) != 2 or tensor.shape[1] % q.block_size or not 0 <= q.block_scales < len(tensors):
            raise ModelFileError(bad)
        holder = tensors[q.block_scales]
        scales = self.tensor_array(holder)
        if scales is None or holder.dtype not in ("float16", "float32") \
                or scales.shape != (tensor.shape[0], tensor.shape[1] // q.block_size):
            raise ModelFileError(bad)
        scales = scales.astype(np.float32)
        if not np.isfinite(scales).all():
            raise ModelFileError(f"tensor {tensor.name!r} has block scales that are not finite")
        return scales

    def dequantized(self, tensor: Tensor, subgraph: int = 0) -> Optional[np.ndarray]:
        """Constant tensor as float32: per-tensor or per-channel ``scale * (q - zero_point)``, or blockwise."""
        arr = self.tensor_array(tensor)
        if arr is None or not tensor.quantized:
            return None if arr is None else arr.astype(np.float32)
        q = tensor.quantization
        if q.block_size:
            scales = self.block_scales(tensor, subgraph)
            return (arr.astype(np.float32) * np.repeat(scales, q.block_size, axis=1)).astype(np.float32)
        scale = np.asarray(q.scale, dtype=np.float32)
        zero = np.asarray(q.zero_point or (0,) * len(q.scale), dtype=np.float32)
        per_channel = len(scale) > 1
        if (not np.isfinite(scale).all() or len(zero) != len(scale)
                or (per_channel and not (0 <= q.quantized_dimension < arr.ndim
                                         and arr.shape[q.quantized_dimension] == len(scale)))):
            raise ModelFileError(f"tensor {tensor.name!r} has quantization parameters that do not fit its shape")
        if per_channel:
            shape = [1] * arr.ndim
            shape[q.quantized_dimension] = len(scale)
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        with np.errstate(over="ignore"):
            real = ((arr.astype(np.float32) - zero) * scale).astype(np.float32)
        if not np.isfinite(real).all():
            raise ModelFileError(f"tensor {tensor.name!r} dequantizes to values that are not finite")
        return real

    def op_counts(self, subgraph: int = 0) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.subgraphs[subgraph].operators:
            name = self.op_name(op)
            counts[name] = counts.get(name, 0) + 1
        return counts

    def constant_bytes(self) -> int:
        """Bytes held by constant tensors (weights), the bulk of a model file."""
        return sum(b.size for b in self.buffers)


def _unpack_int4(raw: bytes, tensor: Tensor) -> np.ndarray:
    """An int4 constant as int8 values: TFLite packs two per byte, the first element in the low nibble."""
    count = int(np.prod(tensor.shape)) if tensor.shape else 1
    if len(raw) != (count + 1) // 2:
        raise ModelFileError(f"tensor {tensor.name!r}: {len(raw)} bytes of data for shape {tensor.shape} int4")
    packed = np.frombuffer(raw, dtype=np.uint8)
    # Shift each nibble to the top of a byte, then an arithmetic shift back sign-extends it.
    nibbles = np.stack([(packed << 4).view(np.int8) >> 4, packed.view(np.int8) >> 4], axis=1).reshape(-1)
    out = nibbles[:count].reshape(tensor.shape)
    out.flags.writeable = False
    return out


def _main(argv) -> int:
    f = TFLiteFile.open(argv[1])
    sub = f.subgraphs[0]
    print(f"{f.source}: {len(f.data)} bytes, {len(sub.tensors)} tensors, {len(sub.operators)} ops")
    for s in f.signatures:
        for kind, names in (("in", s.inputs), ("out", s.outputs)):
            for name, i in names.items():
                t = f.subgraphs[s.subgraph_index].tensors[i]
                print(f"  {kind:3} {name:10} {t.dtype:8} {list(t.shape)} scale={t.scale:.6g} zp={t.zero_point}")
    print("  ops:", ", ".join(f"{k}×{v}" for k, v in sorted(f.op_counts().items())))
    print("  metadata:", ", ".join(f"{k} ({len(v)} B)" for k, v in f.metadata.items()))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
