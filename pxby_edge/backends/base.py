"""The one interface every interpreter backend implements: contexts in, logits out, LSTM state inside.

    python -c "from pxby_edge.backends import open_backend; b = open_backend('pxby_edge/assets/demo.tflite'); print(b.name, b.step([[0]*6]).shape)"

A backend loads a model file once and then steps: ``step(contexts (B, 6)) -> logits (B, slots, V)``
float32, dequantized, with the state (h, c per layer) advanced inside. Between steps nothing but the
6 context ids per lane crosses into the backend, which is what keeps a token O(1) and the Python
around an interpreter's invoke() small.

State precision: a quantized file may store h and c as int8/int16 on both sides of the graph. Where the
input's and output's (scale, zero point) agree, the raw integers are copied from output to input
("pass-through", exactly what dequantize-then-requantize would give, minus the work); where they
differ, ``Requantizer`` maps one integer grid onto the other with the manifest's parameters.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

from pxby_edge.errors import BackendError, ModelFileError
from pxby_edge.manifest import (
    INPUT_C,
    INPUT_CONTEXT,
    INPUT_H,
    INT_LIMITS,
    OUTPUT_C,
    OUTPUT_H,
    OUTPUT_LOGITS,
    Manifest,
    TensorSpec,
)

# State pairs in the order backends keep them: (output that comes out, input it feeds next step).
STATE_NAMES = ((OUTPUT_H, INPUT_H), (OUTPUT_C, INPUT_C))


class Stepper(Protocol):
    """What a generator needs of a backend: its manifest and geometry, a (B, 6) context buffer, and a
    step that advances the state and returns the logits. Every ``Backend`` is one (``NullBackend`` too)."""

    manifest: Manifest
    batch: int
    slots: int
    vocab_size: int

    def step(self, contexts) -> np.ndarray: ...

    def context_buffer(self) -> np.ndarray: ...

    def step_buffer(self, slot: Optional[int] = None) -> np.ndarray: ...

    def reset(self, lanes=None) -> None: ...


class Backend(abc.ABC):
    """Base of the interpreter backends; see the module docstring for the contract.

    Attributes every backend sets: ``name``, ``manifest``, ``batch`` (the file's fixed batch B),
    ``slots`` (6 autoregressive, 1 predict), ``vocab_size``, ``path``.
    """

    name: str = "base"
    manifest: Manifest
    batch: int
    slots: int
    vocab_size: int
    path: Optional[Path] = None

    def _init_common(self, manifest: Manifest, path) -> None:
        self.manifest = manifest
        self.path = Path(path) if path is not None else None
        self.batch = int(manifest.batch)
        self.slots = int(manifest.slots)
        self.vocab_size = int(manifest.vocab_size)
        self.num_layers = int(manifest.num_layers)
        self.hidden_size = int(manifest.hidden_size)
        self.context_shape = (self.batch, int(manifest.input(INPUT_CONTEXT).shape[-1]))

    @abc.abstractmethod
    def step(self, contexts) -> np.ndarray:
        """contexts int (B, 6) → logits float32 (B, slots, V); the state moves one token on."""

    def context_buffer(self) -> np.ndarray:
        """The (B, 6) int32 array ``step_buffer`` reads: the generator writes each next context here.

        Where the interpreter lets it, this is the graph's own input tensor, so nothing is copied."""
        buf = self.__dict__.get("_context_buffer")
        if buf is None:
            buf = self._context_buffer = np.zeros(self.context_shape, dtype=np.int32)
        return buf

    def step_buffer(self, slot: Optional[int] = None) -> np.ndarray:
        """``step`` on the contexts in ``context_buffer()``: logits (B, slots, V), or (B, V) of one
        ``slot`` only (all a generator samples from). The array returned may be the backend's own,
        overwritten by the next step: read it before stepping again, never keep it."""
        logits = self.step(self.context_buffer())
        return logits if slot is None else logits[:, slot]

    @abc.abstractmethod
    def reset(self, lanes=None) -> None:
        """Zero the LSTM state of every lane, or of the given batch lanes only."""

    @abc.abstractmethod
    def get_state(self):
        """An opaque copy of the state (for prefill once, branch many)."""

    @abc.abstractmethod
    def set_state(self, state) -> None:
        """Restore a state ``get_state`` returned."""

    def close(self) -> None:  # noqa: B027 (optional hook: most backends hold nothing to release)
        """Release the interpreter (also done when the backend is garbage-collected)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name} batch={self.batch} slots={self.slots} "
                f"recipe={self.manifest.recipe} file={self.path}>")

    def _check_contexts(self, contexts) -> np.ndarray:
        """Contexts as the (B, 6) int32 array the graph takes; one clear error when they do not fit."""
        arr = np.asarray(contexts)
        if arr.shape != self.context_shape:
            if arr.ndim == 1 and self.batch == 1 and arr.shape == self.context_shape[1:]:
                return arr.reshape(self.context_shape).astype(np.int32, copy=False)
            raise BackendError(
                f"contexts must have shape {self.context_shape} (batch, 6) for this file, got {arr.shape}"
            )
        return arr.astype(np.int32, copy=False)


def lane_index(lanes, batch: int):
    """``reset(lanes)`` argument → an index into the batch axis (all lanes for None)."""
    if lanes is None:
        return slice(None)
    idx = np.atleast_1d(np.asarray(lanes, dtype=np.int64))
    if idx.size and (idx.min() < -batch or idx.max() >= batch):
        raise BackendError(f"lane index out of range for batch {batch}: {idx.tolist()}")
    return idx


class Requantizer:
    """Integer output state → integer input state when the two are quantized differently.

    Defined as dequantize-then-quantize in float32, real = s_out (q_out - z_out), q_in = rint(real / s_in) + z_in
    clipped, so the runtime gives bit for bit what quantize's fidelity report measured (quantize.fidelity).
    An int8/int16 output has only 256/65536 possible values, so the map is tabulated once and a step is
    one ``np.take`` (``lut=False`` keeps the float arithmetic, for measuring what the table saves).
    """

    def __init__(self, src: TensorSpec, dst: TensorSpec, shape, lut: bool = True):
        self.src, self.dst = src, dst
        self.s_out, self.z_out = np.float32(src.scale), np.float32(src.zero_point)
        self.s_in, self.z_in = np.float32(dst.scale), np.float32(dst.zero_point)
        lo, hi = INT_LIMITS[dst.dtype]
        self.lo, self.hi = np.float32(lo), np.float32(hi)
        self.buf = np.zeros(shape, dtype=np.float32)
        self.table = None
        if lut and src.dtype in _LUT_VIEW:
            lo_out, hi_out = INT_LIMITS[src.dtype]
            # Index by the raw bits as unsigned, so -128..127 maps to 128..255, 0..127.
            values = np.arange(lo_out, hi_out + 1, dtype=np.int64).astype(src.dtype)
            order = values.view(_LUT_VIEW[src.dtype]).argsort()
            self.table = np.ascontiguousarray(self._float(values)[order])
            self.view = _LUT_VIEW[src.dtype]

    def _float(self, q_out: np.ndarray) -> np.ndarray:
        buf = np.subtract(q_out, self.z_out, dtype=np.float32)
        buf *= self.s_out
        buf /= self.s_in
        np.rint(buf, out=buf)
        buf += self.z_in
        np.clip(buf, self.lo, self.hi, out=buf)
        return buf.astype(self.dst.dtype)

    def __call__(self, q_out: np.ndarray, q_in: np.ndarray) -> None:
        if self.table is not None:
            np.take(self.table, q_out.view(self.view), out=q_in)
            return
        buf = self.buf
        np.subtract(q_out, self.z_out, out=buf)
        buf *= self.s_out
        buf /= self.s_in
        np.rint(buf, out=buf)
        buf += self.z_in
        np.clip(buf, self.lo, self.hi, out=buf)
        q_in[...] = buf


_LUT_VIEW = {"int8": np.uint8, "int16": np.uint16, "uint8": np.uint8}


def dequantize_table(spec: TensorSpec):
    """(table, view dtype) mapping a quantized tensor's raw bits to float32 reals, or None if not tabulable."""
    if not spec.quantized or spec.dtype not in _LUT_VIEW:
        return None
    lo, hi = INT_LIMITS[spec.dtype]
    values = np.arange(lo, hi + 1, dtype=np.int64).astype(spec.dtype)
    order = values.view(_LUT_VIEW[spec.dtype]).argsort()
    reals = (values.astype(np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)
    return np.ascontiguousarray(reals[order]), _LUT_VIEW[spec.dtype]


def state_mode(out_spec: TensorSpec, in_spec: TensorSpec) -> str:
    """How an output state tensor becomes next step's input: ``copy`` (same dtype and, if quantized,
    same scale and zero point), ``requantize`` (both integer, different grids) or ``convert``
    (one side float, the other quantized)."""
    if out_spec.dtype == in_spec.dtype and (
        not in_spec.quantized or (out_spec.scale == in_spec.scale and out_spec.zero_point == in_spec.zero_point)
    ):
        return "copy"
    if out_spec.quantized and in_spec.quantized:
        return "requantize"
    return "convert"


def zero_value(spec: TensorSpec) -> float:
    """The stored value of real 0.0 in a tensor (its zero point when quantized)."""
    return float(spec.zero_point) if spec.quantized else 0.0


def quantize_to(real: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real values → the tensor's stored dtype with its (scale, zero point)."""
    if not spec.quantized:
        return np.asarray(real, dtype=spec.dtype)
    lo, hi = INT_LIMITS[spec.dtype]
    q = np.rint(np.asarray(real, dtype=np.float32) / np.float32(spec.scale)) + spec.zero_point
    return np.clip(q, lo, hi).astype(spec.dtype)


def dequantize_from(stored: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Stored tensor values → float32 reals."""
    if not spec.quantized:
        return np.asarray(stored, dtype=np.float32)
    return (np.asarray(stored, dtype=np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)


def check_specs(manifest: Manifest, source) -> None:
    """The manifest names every tensor the step needs, with the shapes the runtime expects."""
    for name in (INPUT_CONTEXT, INPUT_H, INPUT_C):
        manifest.input(name)
    for name in (OUTPUT_LOGITS, OUTPUT_H, OUTPUT_C):
        manifest.output(name)
    context = tuple(manifest.input(INPUT_CONTEXT).shape)
    if context != (manifest.batch, 6):
        raise ModelFileError(f"{source}: context input has shape {context}, expected {(manifest.batch, 6)}")
    state = (manifest.num_layers, manifest.batch, manifest.hidden_size)
    for spec in (manifest.input(INPUT_H), manifest.input(INPUT_C), manifest.output(OUTPUT_H), manifest.output(OUTPUT_C)):
        if tuple(spec.shape) != state:
            raise ModelFileError(f"{source}: state tensor {spec.name} has shape {spec.shape}, expected {state}")
    logits = tuple(manifest.output(OUTPUT_LOGITS).shape)
    if logits[0] != manifest.batch or logits[-1] != manifest.vocab_size or int(np.prod(logits[1:-1])) != manifest.slots:
        raise ModelFileError(
            f"{source}: logits shape {logits} does not fit batch {manifest.batch}, "
            f"{manifest.slots} slots and {manifest.vocab_size} tokens"
        )
