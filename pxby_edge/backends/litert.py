"""TFLite interpreters (ai-edge-litert with XNNPACK; tflite-runtime shares this code) as a stepping backend.

    python -c "from pxby_edge.backends.litert import LiteRTBackend; b = LiteRTBackend('pxby_edge/assets/demo.tflite'); print(b, b.step([[0]*6]).shape)"

Where the time goes: at upstream size an int8 invoke() is ~38 µs and the naive Python around it
(set_tensor/get_tensor of context, h, c, logits, and re-quantizing the state with numpy) was as much
again. So the default ``io="views"`` binds numpy views onto the interpreter's own input and output
buffers once, after ``allocate_tensors()``: a step writes 6 ints per lane, invokes, copies h1→h0 and
c1→c0 inside the arena (raw integers when the quantization agrees, see ``base.Requantizer`` when
not) and dequantizes the logits. TFLite never reuses a graph input's or output's memory during
invoke (the arena planner pins them), so the views stay valid until the next ``allocate_tensors()``,
which this class never calls. The Python wrapper's ``invoke()`` refuses to run while such views
exist (it cannot tell them from stale ones), so the bound path calls the wrapped native invoke
directly. ``io="copy"`` is the documented get/set path, kept for comparison (``pxby-edge bench``)
and as the fallback should a wrapper lack the native handle.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from pxby_edge.backends.base import (
    STATE_NAMES,
    Backend,
    Requantizer,
    check_specs,
    dequantize_from,
    dequantize_table,
    lane_index,
    quantize_to,
    state_mode,
    zero_value,
)
from pxby_edge.errors import BackendError, ModelFileError
from pxby_edge.manifest import INPUT_CONTEXT, OUTPUT_LOGITS, Manifest, read_manifest

IO_MODES = ("views", "copy")
# How state outputs become inputs: "auto" copies raw values where dtype and quantization agree and
# re-quantizes where they do not; "requantize" always goes through reals (measures what pass-through
# saves); "raw" always copies the stored integers, even across different grids (measures what
# re-quantizing is worth in fidelity; wrong for a file whose grids differ, so never the default).
STATE_MODES = ("auto", "requantize", "raw")
# TFLite's minimal logger writes this line to fd 2 from C++ on every interpreter creation; it honours no
# environment variable (TF_CPP_MIN_LOG_LEVEL is absl's, not this logger's) and the Python wrapper exposes
# no severity switch, so the only place to drop it is the file descriptor itself.
_DELEGATE_NOISE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_delegate_notice():
    """Run the block with fd 2 captured, then pass on every line but the XNNPACK notice.

    Anything else the interpreter writes (a real warning or error) still reaches stderr, after the
    block rather than during it. The sink is a file, not a pipe: the interpreter can write any amount
    without anyone draining it, so there is nothing to deadlock on."""
    try:
        sink = tempfile.TemporaryFile()
        saved = os.dup(2)
    except OSError:  # no fd 2 (stderr closed by a daemon) or no writable temp dir: leave fd 2 alone
        yield
        return
    if sys.stderr is not None:  # what Python buffered before the block belongs before it
        sys.stderr.flush()
    with sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            _write_all(2, b"".join(ln for ln in sink.read().splitlines(keepends=True)
                                   if not ln.startswith(_DELEGATE_NOISE)))


def _write_all(fd: int, data: bytes) -> None:
    while data:  # a pty or pipe may take a long write in parts
        data = data[os.write(fd, data):]


class LiteRTBackend(Backend):
    """ai-edge-litert (the TFLite runtime Google ships now), XNNPACK on, ``threads`` settable."""

    name = "litert"
    module = "ai_edge_litert.interpreter"
    install_hint = "pip install 'pxby-edge[pi]' (installs ai-edge-litert)"

    @classmethod
    def interpreter_class(cls):
        try:
            return importlib.import_module(cls.module).Interpreter
        except ImportError as exc:
            raise BackendError(f"backend {cls.name!r} is not installed ({exc}); {cls.install_hint}") from None

    @classmethod
    def available(cls) -> bool:
        try:
            cls.interpreter_class()
        except BackendError:
            return False
        return True

    def __init__(self, path, *, threads: int = 1, manifest: Optional[Manifest] = None, io: str = "views",
                 state: str = "auto", data: Optional[bytes] = None):
        if io not in IO_MODES:
            raise BackendError(f"io must be one of {IO_MODES}, got {io!r}")
        if state not in STATE_MODES:
            raise BackendError(f"state must be one of {STATE_MODES}, got {state!r}")
        self.state_policy = state
        Interpreter = self.interpreter_class()
        if data is None:
            try:
                data = Path(path).read_bytes()
            except FileNotFoundError:
                raise ModelFileError(f"no such model file: {path}") from None
            except IsADirectoryError:
                raise ModelFileError(f"{path} is a folder; give a .tflite file") from None
        if manifest is None:
            from pxby_edge.tflite_file import TFLiteFile

            manifest = read_manifest(TFLiteFile(data, source=str(path)))
        check_specs(manifest, path)
        self._init_common(manifest, path)
        self.threads = int(threads)
        try:
            with _without_delegate_notice():
                self.interp = Interpreter(model_content=data, num_threads=self.threads)
                self.interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"{self.name} cannot load {path}: {' '.join(str(exc).split())}") from exc
        self._bind_specs()
        self.io = io if (io == "copy" or hasattr(self.interp, "_interpreter")) else "copy"
        self._setup_io()
        self.reset()

    # -- binding --------------------------------------------------------------------------------

    def _bind_specs(self) -> None:
        """Check the manifest's tensor indices against what the interpreter reports."""
        details = {d["index"]: d for d in self.interp.get_input_details() + self.interp.get_output_details()}
        m = self.manifest
        self.specs = {}
        for spec in m.inputs + m.outputs:
            d = details.get(spec.index)
            if d is None or tuple(d["shape"]) != tuple(spec.shape) or np.dtype(d["dtype"]).name != spec.dtype:
                got = None if d is None else (tuple(d["shape"]), np.dtype(d["dtype"]).name)
                raise ModelFileError(
                    f"{self.path}: manifest tensor {spec.name} (index {spec.index}, {spec.shape} {spec.dtype}) "
                    f"does not match the graph ({got}); re-run `pxby-edge quantize` to remake the file"
                )
            self.specs[spec.name] = spec
        out_logits = self.specs[OUTPUT_LOGITS]
        self._logits_shape = (self.batch, self.slots, self.vocab_size)
        self._logits_scale = np.float32(out_logits.scale)
        self._logits_zero = np.float32(out_logits.zero_point)
        self._logits_quantized = out_logits.quantized
        # A quantized logits tensor is dequantized by table lookup: one numpy call, float32 out.
        self._logits_table = dequantize_table(out_logits)
        self.state_modes = {}
        for out_name, in_name in STATE_NAMES:
            src, dst = self.specs[out_name], self.specs[in_name]
            mode = state_mode(src, dst)
            if self.state_policy == "raw" and src.dtype == dst.dtype:
                mode = "copy"
            elif self.state_policy == "requantize" and src.quantized and dst.quantized:
                mode = "requantize"
            self.state_modes[in_name] = mode

    def _setup_io(self) -> None:
        interp = self.interp
        ctx_spec = self.specs[INPUT_CONTEXT]
        if self.io == "views":
            self._native_invoke = interp._interpreter.Invoke
            self._ctx_in = interp.tensor(ctx_spec.index)()
            self._ctx_in[...] = 0  # the arena starts uninitialised: an all-padding context until one is written
            self._slot_views: dict = {}
            self._logits_out = interp.tensor(self.specs[OUTPUT_LOGITS].index)().reshape(self._logits_shape)
            self._state_in = [interp.tensor(self.specs[i].index)() for _, i in STATE_NAMES]
            self._state_out = [interp.tensor(self.specs[o].index)() for o, _ in STATE_NAMES]
        else:
            self._ctx_in = np.zeros(ctx_spec.shape, dtype=np.int32)
            # In copy mode the state lives here and is set into the interpreter each step.
            self._state_in = [np.zeros(self.specs[i].shape, dtype=self.specs[i].dtype) for _, i in STATE_NAMES]
        self._moves = [self._state_move(o, i, k) for k, (o, i) in enumerate(STATE_NAMES)]
        self._all_copy = all(self.state_modes[i] == "copy" for _, i in STATE_NAMES)

    def _state_move(self, out_name: str, in_name: str, k: int):
        """A function that carries state output k into state input k (views mode)."""
        src, dst = self.specs[out_name], self.specs[in_name]
        mode = self.state_modes[in_name]
        if mode == "copy":
            return None
        if mode == "requantize":
            # The "requantize" policy keeps the float arithmetic so the bench shows what the table saves.
            return Requantizer(src, dst, src.shape, lut=self.state_policy != "requantize")

        def convert(q_out, q_in):
            q_in[...] = quantize_to(dequantize_from(q_out, src), dst)

        return convert

    # -- stepping -------------------------------------------------------------------------------

    def step(self, contexts) -> np.ndarray:
        if type(contexts) is np.ndarray and contexts.shape == self.context_shape:
            self._ctx_in[...] = contexts
        else:
            self._ctx_in[...] = self._check_contexts(contexts)
        if self.io == "views":
            self._invoke_views()
            raw = self._logits_out
        else:
            raw = self._step_copy()
        out = self._dequantized(raw)
        return out.copy() if out is raw else out

    def context_buffer(self) -> np.ndarray:
        return self._ctx_in

    def step_buffer(self, slot: Optional[int] = None) -> np.ndarray:
        """The hot path: contexts already sit in the graph's input; float logits come back as the
        interpreter's own output view (no copy), valid until the next invoke. With ``slot``, only
        that slot's (B, V) logits, and a quantized file dequantizes just those."""
        if self.io != "views":
            logits = self.step(self._ctx_in)
            return logits if slot is None else logits[:, slot]
        self._invoke_views()
        if slot is None:
            return self._dequantized(self._logits_out)
        views = self._slot_views.get(slot)
        if views is None:
            views = self._slot_views[slot] = (self._logits_out[:, slot],
                                              np.empty((self.batch, self.vocab_size), dtype=np.float32))
        raw, out = views
        if not self._logits_quantized:
            return raw
        # Two ufuncs on one row: the same float32 (q - zero) * scale as the table, a third of the time.
        np.subtract(raw, self._logits_zero, out=out)
        np.multiply(out, self._logits_scale, out=out)
        return out

    def _invoke_views(self) -> None:
        """invoke(), then this step's output state becomes the next step's input (bound views)."""
        self._native_invoke()
        if self._all_copy:
            s_in, s_out = self._state_in, self._state_out
            s_in[0][...] = s_out[0]
            s_in[1][...] = s_out[1]
        else:
            for move, q_in, q_out in zip(self._moves, self._state_in, self._state_out):
                if move is None:
                    q_in[...] = q_out
                else:
                    move(q_out, q_in)

    def _dequantized(self, raw: np.ndarray) -> np.ndarray:
        """Float32 logits of the raw output (``raw`` itself when the file's logits are float)."""
        if self._logits_table is not None:
            table, view = self._logits_table
            return np.take(table, raw.view(view))
        if self._logits_quantized:
            out = raw.astype(np.float32)
            out -= self._logits_zero
            out *= self._logits_scale
            return out
        return raw

    def _step_copy(self) -> np.ndarray:
        interp, specs = self.interp, self.specs
        interp.set_tensor(specs[INPUT_CONTEXT].index, self._ctx_in)
        for (_, in_name), arr in zip(STATE_NAMES, self._state_in):
            interp.set_tensor(specs[in_name].index, arr)
        interp.invoke()
        for k, (out_name, _) in enumerate(STATE_NAMES):
            q_out = interp.get_tensor(specs[out_name].index)
            move = self._moves[k]
            if move is None:
                self._state_in[k] = q_out
            else:
                move(q_out, self._state_in[k])
        return interp.get_tensor(specs[OUTPUT_LOGITS].index).reshape(self._logits_shape)

    def reset(self, lanes=None) -> None:
        idx = lane_index(lanes, self.batch)
        for (_, in_name), arr in zip(STATE_NAMES, self._state_in):
            arr[:, idx] = zero_value(self.specs[in_name])

    def get_state(self):
        return tuple(np.array(a, copy=True) for a in self._state_in)

    def set_state(self, state) -> None:
        if len(state) != len(self._state_in):
            raise BackendError(f"a state of {len(self._state_in)} arrays was expected, got {len(state)}")
        for arr, value in zip(self._state_in, state):
            value = np.asarray(value)
            if value.shape != arr.shape:
                raise BackendError(f"state array of shape {arr.shape} expected, got {value.shape}")
            arr[...] = value

    def state_real(self) -> tuple:
        """The state as float32 (h, c), whatever the file stores them as (for tests and fidelity)."""
        return tuple(dequantize_from(a, self.specs[n]) for a, (_, n) in zip(self._state_in, STATE_NAMES))

    def bare_invoke(self) -> None:
        """One invoke() and nothing else (the bench's floor for this backend)."""
        if self.io == "views":
            self._native_invoke()
        else:
            self.interp.invoke()

    def close(self) -> None:
        # Views first: they hold the interpreter's memory alive through their base.
        for attr in ("_ctx_in", "_logits_out", "_state_in", "_state_out", "_native_invoke", "interp"):
            self.__dict__.pop(attr, None)
