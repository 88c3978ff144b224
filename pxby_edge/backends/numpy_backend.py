"""Pure-numpy backend: runs the step graph straight out of the .tflite file, no interpreter wheel needed.

    python -c "from pxby_edge.backends.numpy_backend import NumpyBackend; b = NumpyBackend('pxby_edge/assets/demo.tflite'); print(b.step([[0]*6])[0, 5].argmax())"

For a device with no interpreter wheel (32-bit Pi OS, a Pi Zero). It is a generic interpreter over the
operators in the file rather than a recogniser of "an LSTM step": the exporter and quantizer decide
how a step is spelled (SLICE or SPLIT for the gates, where QUANTIZE ops go, whether a FULLY_CONNECTED
keeps dims), and a recogniser breaks each time they change their mind, while an op table that misses
an op fails with that op's name. The graph is compiled once into a list of closures over a list of
tensor values, so a step is one Python loop over ~50 small numpy calls.

Numbers: every tensor is held as float32 real values (int32 for ids and shapes). Constant weights are
dequantized once at load (per channel where the file says so). A quantized activation is
"fake-quantized" where it is produced (rounded onto its int8/int16 grid and clipped, then mapped
back), which reproduces the integer kernels up to their internal rounding; for a float file every op is
plain float32 arithmetic, equal to the interpreter up to float summation order.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from pxby_edge.backends.base import STATE_NAMES, Backend, check_specs, lane_index
from pxby_edge.errors import BackendError, ModelFileError
from pxby_edge.manifest import INPUT_CONTEXT, INT_LIMITS, MAX_ELEMENTS, OUTPUT_LOGITS, Manifest, read_manifest
from pxby_edge.tflite_file import TFLiteFile

# Fused activation functions (schema ActivationFunctionType).
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6, _ACT_TANH = 0, 1, 2, 3, 4
# Numpy raises these on a graph whose shapes or indices do not fit; the load-time check turns them
# into ModelFileError naming the op.
# (AttributeError: an op reading a tensor no earlier op produced finds None there.)
_GRAPH_ERRORS = (ValueError, IndexError, TypeError, AttributeError, ZeroDivisionError, FloatingPointError,
                 MemoryError, OverflowError)


class NumpyBackend(Backend):
    """The .tflite step graph interpreted with numpy; see the module docstring."""

    name = "numpy"

    @classmethod
    def available(cls) -> bool:
        return True

    def __init__(self, path, *, threads: int = 1, manifest: Optional[Manifest] = None, data: Optional[bytes] = None):
        f = TFLiteFile(data, source=str(path)) if data is not None else TFLiteFile.open(path)
        if manifest is None:
            manifest = read_manifest(f)
        check_specs(manifest, path)
        self._init_common(manifest, path)
        self.threads = int(threads)  # numpy's BLAS decides; kept for a uniform interface
        sig = f.signature(manifest.signature) if len(f.signatures) != 1 else f.signatures[0]
        self.subgraph_index = sig.subgraph_index
        self.subgraph = f.subgraphs[sig.subgraph_index]
        tensors = self.subgraph.tensors
        self.specs = {s.name: s for s in manifest.inputs + manifest.outputs}
        for spec in self.specs.values():
            if not 0 <= spec.index < len(tensors) or tuple(tensors[spec.index].shape) != tuple(spec.shape):
                raise ModelFileError(
                    f"{path}: manifest tensor {spec.name} (index {spec.index}) does not match the graph; "
                    "re-run `pxby-edge quantize` to remake the file"
                )
        self.values = self._constants(f)
        self.plan = self._compile(f)
        self._ctx = self.specs[INPUT_CONTEXT].index
        self._logits = self.specs[OUTPUT_LOGITS].index
        self._logits_shape = (self.batch, self.slots, self.vocab_size)
        # The state lives as float reals on the input side; a quantized input keeps them on its grid.
        self._state_in = [self.specs[i].index for _, i in STATE_NAMES]
        self._state_out = [self.specs[o].index for o, _ in STATE_NAMES]
        self._state_fq = [self._fake_quant_fn(tensors[self.specs[i].index]) for _, i in STATE_NAMES]
        self.reset()
        self._check_graph()
        self.reset()

    # -- loading --------------------------------------------------------------------------------

    def _constants(self, f: TFLiteFile) -> list:
        """Every tensor's value slot, constants filled in as real numbers (checked: bounded, finite)."""
        tensors = self.subgraph.tensors
        too_big = next((t for t in tensors if int(np.prod(t.shape, dtype=np.float64)) > MAX_ELEMENTS), None)
        if too_big is not None:
            raise ModelFileError(f"{self.path}: tensor {too_big.name!r} of shape {list(too_big.shape)} is too large")
        values: list = [None] * len(tensors)
        for t in tensors:
            arr = f.tensor_array(t)
            if arr is not None:
                values[t.index] = self._real(f, t, arr, self.subgraph_index)
                if values[t.index].dtype.kind == "f" and not np.isfinite(values[t.index]).all():
                    raise ModelFileError(f"{self.path}: constant tensor {t.name!r} holds values that are not finite")
        return values

    @staticmethod
    def _real(f: TFLiteFile, t, arr: np.ndarray, subgraph: int) -> np.ndarray:
        if t.quantized and t.dtype in ("int4", "int8", "int16", "uint8", "int32", "int64"):
            return f.dequantized(t, subgraph)
        if t.dtype in ("float32", "float16"):
            return np.ascontiguousarray(arr, dtype=np.float32)
        return np.array(arr)  # ids, shapes, begins: exact integers

    @staticmethod
    def _fake_quant_fn(t):
        """x → x rounded onto tensor t's integer grid (in place), or None for a float tensor."""
        if not t.quantized or t.dtype not in INT_LIMITS:
            return None
        if not (np.isfinite(t.scale) and t.scale > 0 and np.isfinite(1.0 / t.scale)):
            raise ModelFileError(f"activation {t.name!r} has quantization scale {t.scale}, not a finite number > 0")
        scale = np.float32(t.scale)
        inv = np.float32(1.0 / t.scale)
        zero = np.float32(t.zero_point)
        lo, hi = (np.float32(x) for x in INT_LIMITS[t.dtype])
        if t.quantization.per_channel:
            raise ModelFileError(f"activation {t.name!r} is quantized per channel, which the numpy backend does not run")

        def fq(x: np.ndarray) -> np.ndarray:
            x *= inv
            np.rint(x, out=x)
            x += zero
            np.clip(x, lo, hi, out=x)
            x -= zero
            x *= scale
            return x

        return fq

    def _compile(self, f: TFLiteFile) -> list:
        sub = self.subgraph
        plan = []
        for op in sub.operators:
            name = f.op_name(op)
            build = _OPS.get(name)
            if build is None:
                raise BackendError(
                    f"the numpy backend cannot run op {name} in {self.path}; use another backend "
                    "(pip install 'pxby-edge[pi]') or report the op"
                )
            ins = [sub.tensors[i] if i >= 0 else None for i in op.inputs]
            outs = [sub.tensors[i] for i in op.outputs]
            optional = 2 if name == "FULLY_CONNECTED" else None  # only a bias may be left out
            if not outs or any(t is None for k, t in enumerate(ins) if k != optional):
                raise ModelFileError(f"{self.path}: op {name} lacks an input or output tensor")
            try:
                fn = build(self.values, ins, outs, op.options)
            except _GRAPH_ERRORS as exc:
                raise ModelFileError(f"{self.path}: op {name} does not fit its tensors ({exc})") from None
            fqs = [self._fake_quant_fn(t) for t in outs]
            if name in _LAYOUT_OPS and ins[0] is not None and all(_same_grid(ins[0], t) for t in outs):
                # Moving int8 values around on the same grid changes none of them: nothing to round.
                fqs = [None] * len(outs)
            plan.append((fn, [(t.index, q) for t, q in zip(outs, fqs) if q is not None], name, outs))
        return plan

    def _check_graph(self) -> None:
        """Run the graph once on the lowest and once on the highest context ids and compare every op's
        result with the shape the file declares: a graph that does not fit its tensors fails here, at
        load, as a ModelFileError, and not in the middle of a generation."""
        for fill in (0, self.vocab_size - 1):
            self.values[self._ctx] = np.full(self.context_shape, fill, dtype=np.int32)
            for fn, _, name, outs in self.plan:
                try:
                    with np.errstate(all="ignore"):
                        fn()
                except _GRAPH_ERRORS as exc:
                    raise ModelFileError(f"{self.path}: op {name} fails on this graph ({exc})") from None
                for t in outs:
                    got = np.shape(self.values[t.index])
                    if got != _shape(t):
                        raise ModelFileError(f"{self.path}: op {name} makes shape {list(got)} where the file "
                                             f"declares {list(t.shape)} for {t.name!r}")

    # -- stepping -------------------------------------------------------------------------------

    def step(self, contexts) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # a saturating gate overflows exp() to 0 or 1: fine
            return self._step(contexts)

    def _step(self, contexts) -> np.ndarray:
        v = self.values
        v[self._ctx] = self._check_contexts(contexts)
        for fn, quantized_outputs, _, _ in self.plan:
            fn()
            for index, fq in quantized_outputs:
                v[index] = fq(np.array(v[index], dtype=np.float32))
        for i_in, i_out, fq in zip(self._state_in, self._state_out, self._state_fq):
            h = np.array(v[i_out], dtype=np.float32)
            v[i_in] = fq(h) if fq is not None else h
        return np.array(v[self._logits], dtype=np.float32).reshape(self._logits_shape)

    def reset(self, lanes=None) -> None:
        idx = lane_index(lanes, self.batch)
        for i in self._state_in:
            if self.values[i] is None or lanes is None:
                self.values[i] = np.zeros(self.subgraph.tensors[i].shape, dtype=np.float32)
            else:
                self.values[i] = np.array(self.values[i], dtype=np.float32)
                self.values[i][:, idx] = 0.0

    def get_state(self):
        return tuple(np.array(self.values[i], dtype=np.float32) for i in self._state_in)

    def set_state(self, state) -> None:
        if len(state) != len(self._state_in):
            raise BackendError(f"a state of {len(self._state_in)} arrays was expected, got {len(state)}")
        for i, value in zip(self._state_in, state):
            value = np.array(value, dtype=np.float32)
            if value.shape != tuple(self.subgraph.tensors[i].shape):
                raise BackendError(f"state array of shape {self.subgraph.tensors[i].shape} expected, got {value.shape}")
            self.values[i] = value

    def state_real(self) -> tuple:
        return self.get_state()


_LAYOUT_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SLICE", "STRIDED_SLICE", "SPLIT", "SPLIT_V",
                         "TRANSPOSE", "GATHER", "EMBEDDING_LOOKUP"})


def _same_grid(a, b) -> bool:
    return a.dtype == b.dtype and a.quantization.scale == b.quantization.scale and \
        a.quantization.zero_point == b.quantization.zero_point


# -- the op table: each builder returns a closure that reads and writes the shared value list ----------


def _activation(code: int):
    if code == _ACT_NONE:
        return None
    if code == _ACT_RELU:
        return lambda x: np.maximum(x, 0, out=x)
    if code == _ACT_RELU6:
        return lambda x: np.clip(x, 0, 6, out=x)
    if code == _ACT_RELU_N1_TO_1:
        return lambda x: np.clip(x, -1, 1, out=x)
    if code == _ACT_TANH:
        return lambda x: np.tanh(x, out=x)
    raise BackendError(f"fused activation {code} is not supported by the numpy backend")


def _shape(t) -> tuple:
    return tuple(int(s) for s in t.shape)


def _fully_connected(v, ins, outs, opts):
    x_i, w, b, o = ins[0].index, ins[1], ins[2] if len(ins) > 2 else None, outs[0]
    weight = v[w.index]
    if weight is None:
        raise BackendError("FULLY_CONNECTED with non-constant weights is not supported by the numpy backend")
    wt = np.ascontiguousarray(weight.reshape(weight.shape[0], -1).T)  # (K, N): x @ wt is one GEMV
    bias = v[b.index] if b is not None else None
    k = wt.shape[0]
    shape = _shape(o)
    act = _activation(opts.get("act", 0))
    # int8 weights with a float input is a "dynamic range" FULLY_CONNECTED: the interpreter quantizes the
    # input on the fly, per row, asymmetrically to int8 (XNNPACK's qd8 path, which ai-edge-litert takes).
    # Doing the same here puts the numpy backend within ~2e-4 mean |Δlogit| of litert on such files,
    # against ~1e-2 for a plain float product.
    dynamic = w.quantized and ins[0].dtype == "float32"

    def fc():
        x = v[x_i].reshape(-1, k)
        if dynamic:
            x = _dynamic_quantize_rows(x)
        y = x @ wt
        if bias is not None:
            y += bias
        if act is not None:
            act(y)
        v[o.index] = y.reshape(shape)

    return fc


def _dynamic_quantize_rows(x: np.ndarray) -> np.ndarray:
    """x (N, K) float → x rounded onto a per-row asymmetric int8 grid that spans [min(x, 0), max(x, 0)]."""
    lo = np.minimum(x.min(axis=1, keepdims=True), 0)
    hi = np.maximum(x.max(axis=1, keepdims=True), 0)
    scale = (hi - lo) / np.float32(255)
    scale[scale == 0] = 1
    zero = np.clip(np.rint(np.float32(-128) - lo / scale), -128, 127)
    q = np.clip(np.rint(x / scale) + zero, -128, 127)
    q -= zero
    q *= scale
    return q.astype(np.float32, copy=False)


def _binary(func):
    def build(v, ins, outs, opts):
        a, b, o = ins[0].index, ins[1].index, outs[0].index
        act = _activation(opts.get("act", 0))

        def op():
            y = func(v[a], v[b])
            if act is not None:
                y = act(np.asarray(y, dtype=np.float32))
            v[o] = y

        return op

    return build


def _unary(func):
    def build(v, ins, outs, opts):
        a, o = ins[0].index, outs[0].index

        def op():
            v[o] = func(v[a])

        return op

    return build


def _logistic(x):
    # 1 / (1 + e^-x) in float32, written out so no float64 temporaries appear.
    y = np.negative(x, dtype=np.float32)
    np.exp(y, out=y)
    y += np.float32(1.0)
    return np.reciprocal(y, out=y)


def _reshape(v, ins, outs, opts):
    a, o, shape = ins[0].index, outs[0].index, _shape(outs[0])

    def op():
        v[o] = v[a].reshape(shape)

    return op


def _slice(v, ins, outs, opts):
    a, o = ins[0].index, outs[0].index
    begin, size = v[ins[1].index], v[ins[2].index]
    if begin is None or size is None:
        raise BackendError("SLICE with computed begin/size is not supported by the numpy backend")
    in_shape = _shape(ins[0])
    index = tuple(slice(int(bg), in_shape[d] if int(sz) == -1 else int(bg) + int(sz))
                  for d, (bg, sz) in enumerate(zip(begin, size)))

    def op():
        v[o] = v[a][index]

    return op


def _strided_slice(v, ins, outs, opts):
    a, o = ins[0].index, outs[0].index
    begin, end, strides = (v[t.index] for t in ins[1:4])
    if begin is None or end is None or strides is None:
        raise BackendError("STRIDED_SLICE with computed bounds is not supported by the numpy backend")
    if opts.get("ellipsis_mask") or opts.get("new_axis_mask") or opts.get("offset"):
        raise BackendError("STRIDED_SLICE with ellipsis/new-axis/offset masks is not supported by the numpy backend")
    index = []
    for d, (bg, en, st) in enumerate(zip(begin, end, strides)):
        if opts.get("shrink_axis_mask", 0) >> d & 1:
            index.append(int(bg))
            continue
        bg = None if opts.get("begin_mask", 0) >> d & 1 else int(bg)
        en = None if opts.get("end_mask", 0) >> d & 1 else int(en)
        index.append(slice(bg, en, int(st)))
    index = tuple(index)
    shape = _shape(outs[0])

    def op():
        v[o] = v[a][index].reshape(shape)

    return op


def _concatenation(v, ins, outs, opts):
    idx = [t.index for t in ins]
    o = outs[0].index
    axis = opts.get("axis", 0)
    act = _activation(opts.get("act", 0))

    def op():
        y = np.concatenate([v[i] for i in idx], axis=axis)
        if act is not None:
            act(y)
        v[o] = y

    return op


def _split(v, ins, outs, opts):
    axis_t, a = v[ins[0].index], ins[1].index
    if axis_t is None:
        raise BackendError("SPLIT with a computed axis is not supported by the numpy backend")
    axis = int(np.asarray(axis_t).reshape(-1)[0])
    o = [t.index for t in outs]
    n = len(o)

    def op():
        for i, part in zip(o, np.split(v[a], n, axis=axis)):
            v[i] = part

    return op


def _split_v(v, ins, outs, opts):
    a, sizes_t, axis_t = ins[0].index, v[ins[1].index], v[ins[2].index]
    if sizes_t is None or axis_t is None:
        raise BackendError("SPLIT_V with computed sizes is not supported by the numpy backend")
    axis = int(np.asarray(axis_t).reshape(-1)[0])
    bounds = np.cumsum(np.asarray(sizes_t).reshape(-1))[:-1].tolist()
    o = [t.index for t in outs]

    def op():
        for i, part in zip(o, np.split(v[a], bounds, axis=axis)):
            v[i] = part

    return op


def _gather(v, ins, outs, opts):
    p, ix, o = ins[0].index, ins[1].index, outs[0].index
    axis = opts.get("axis", 0)
    if opts.get("batch_dims", 0):
        raise BackendError("GATHER with batch_dims is not supported by the numpy backend")

    def op():
        v[o] = np.take(v[p], v[ix], axis=axis)

    return op


def _embedding_lookup(v, ins, outs, opts):
    ix, table, o = ins[0].index, ins[1].index, outs[0].index

    def op():
        v[o] = v[table][v[ix]]

    return op


def _transpose(v, ins, outs, opts):
    a, perm_t, o = ins[0].index, v[ins[1].index], outs[0].index
    if perm_t is None:
        raise BackendError("TRANSPOSE with a computed permutation is not supported by the numpy backend")
    perm = tuple(int(p) for p in np.asarray(perm_t).reshape(-1))

    def op():
        v[o] = np.ascontiguousarray(np.transpose(v[a], perm))

    return op


def _batch_matmul(v, ins, outs, opts):
    a, b, o = ins[0].index, ins[1].index, outs[0].index

    def op():
        v[o] = np.matmul(v[a], v[b])

    return op


def _identity(v, ins, outs, opts):
    # QUANTIZE / DEQUANTIZE / CAST-free reshapes: values are already real; the output's grid (if any)
    # is applied by the fake-quantization step after every op.
    a, o, shape = ins[0].index, outs[0].index, _shape(outs[0])

    def op():
        v[o] = np.asarray(v[a], dtype=np.float32).reshape(shape)

    return op


def _cast(v, ins, outs, opts):
    a, o = ins[0].index, outs[0].index
    dtype = np.float32 if outs[0].dtype.startswith("float") else np.int64

    def op():
        v[o] = np.asarray(v[a]).astype(dtype)

    return op


_OPS = {
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _binary(np.add),
    "SUB": _binary(np.subtract),
    "MUL": _binary(np.multiply),
    "DIV": _binary(np.divide),
    "MAXIMUM": _binary(np.maximum),
    "MINIMUM": _binary(np.minimum),
    "LOGISTIC": _unary(_logistic),
    "TANH": _unary(np.tanh),
    "RELU": _unary(lambda x: np.maximum(x, np.float32(0))),
    "NEG": _unary(np.negative),
    "EXP": _unary(np.exp),
    "RESHAPE": _reshape,
    "SQUEEZE": _reshape,
    "EXPAND_DIMS": _reshape,
    "SLICE": _slice,
    "STRIDED_SLICE": _strided_slice,
    "CONCATENATION": _concatenation,
    "SPLIT": _split,
    "SPLIT_V": _split_v,
    "GATHER": _gather,
    "EMBEDDING_LOOKUP": _embedding_lookup,
    "TRANSPOSE": _transpose,
    "BATCH_MATMUL": _batch_matmul,
    "QUANTIZE": _identity,
    "DEQUANTIZE": _identity,
    "CAST": _cast,
}


def supported_ops() -> tuple[str, ...]:
    return tuple(sorted(_OPS))


__all__ = ["NumpyBackend", "supported_ops"]
