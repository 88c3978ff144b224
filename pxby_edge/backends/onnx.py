"""onnxruntime on the exported .onnx step, for platforms where it is the interpreter at hand.

    python -c "from pxby_edge.backends.onnx import OnnxBackend; b = OnnxBackend('model.onnx'); print(b, b.step([[0]*6]).shape)"

Which .onnx, which manifest: ``pxby-edge quantize --onnx model.onnx`` stores the same JSON manifest in
the ONNX model's ``metadata_props`` under ``pxby_edge_manifest`` (onnxruntime reads it back as
``custom_metadata_map``; the ``onnx`` package is not needed on the device). Given a ``.tflite`` path
this backend runs the ``.onnx`` beside it with the same stem; given an ``.onnx`` without a manifest it
takes the manifest of the ``.tflite`` beside it. Inputs and outputs are bound by their signature
names (``context``, ``h0``, ``c0`` → ``logits``, ``h1``, ``c1``).

Per step nothing is allocated: two IO bindings over preallocated numpy-backed OrtValues alternate,
one reading state A and writing state B, the next reading B and writing A, so the state never
crosses back into Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from pxby_edge.backends.base import STATE_NAMES, Backend, lane_index
from pxby_edge.errors import BackendError, ManifestError, ModelFileError
from pxby_edge.manifest import (
    INPUT_CONTEXT,
    MANIFEST_METADATA_NAME,
    OUTPUT_LOGITS,
    Manifest,
    read_manifest,
)

INSTALL_HINT = "pip install 'pxby-edge[onnx]' (installs onnxruntime)"


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError(f"backend 'onnx' is not installed ({exc}); {INSTALL_HINT}") from None
    return onnxruntime


def onnx_path_for(path) -> Optional[Path]:
    """The .onnx file a model path stands for: itself, or the .onnx beside a .tflite; None if absent."""
    path = Path(path)
    if path.suffix == ".onnx":
        return path if path.is_file() else None
    candidate = path.with_suffix(".onnx")
    return candidate if candidate.is_file() else None


class OnnxBackend(Backend):
    name = "onnx"

    @classmethod
    def available(cls) -> bool:
        try:
            _ort()
        except BackendError:
            return False
        return True

    def __init__(self, path, *, threads: int = 1, manifest: Optional[Manifest] = None):
        ort = _ort()
        onnx_file = onnx_path_for(path)
        if onnx_file is None:
            raise ModelFileError(
                f"no ONNX file for {path}: the onnx backend runs MODEL.onnx (make it with "
                "`pxby-edge quantize CKPT -o MODEL.tflite --onnx MODEL.onnx`)"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(onnx_file), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ModelFileError(f"{onnx_file} is not an ONNX model onnxruntime can load: {' '.join(str(exc).split())}") from None
        if manifest is None:
            manifest = self._find_manifest(onnx_file)
        self._init_common(manifest, onnx_file)
        self.threads = int(threads)
        self._bind()
        self.reset()

    def _find_manifest(self, onnx_file: Path) -> Manifest:
        raw = self.session.get_modelmeta().custom_metadata_map.get(MANIFEST_METADATA_NAME)
        if raw is not None:
            return Manifest.from_json(raw)
        tflite = onnx_file.with_suffix(".tflite")
        if tflite.is_file():
            return read_manifest(tflite)
        raise ManifestError(
            f"{onnx_file} has no pxby-edge manifest (metadata {MANIFEST_METADATA_NAME!r}) and no .tflite beside it; "
            "make it with `pxby-edge quantize CKPT -o MODEL.tflite --onnx MODEL.onnx`"
        )

    def _bind(self) -> None:
        ort = _ort()
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = {o.name: o for o in self.session.get_outputs()}
        names_in = [INPUT_CONTEXT] + [i for _, i in STATE_NAMES]
        names_out = [OUTPUT_LOGITS] + [o for o, _ in STATE_NAMES]
        missing = [n for n in names_in if n not in ins] + [n for n in names_out if n not in outs]
        if missing:
            raise ModelFileError(f"{self.path}: the ONNX graph lacks {missing} (has {sorted(ins)} → {sorted(outs)})")
        state_shape = (self.num_layers, self.batch, self.hidden_size)
        ctx_type = ins[INPUT_CONTEXT].type
        self._ctx = np.zeros(self.context_shape, dtype=np.int64 if "int64" in ctx_type else np.int32)
        self._logits = np.zeros((self.batch, self.slots, self.vocab_size), dtype=np.float32)
        # Two state sets, A and B; binding k reads set k and writes set 1-k.
        self._states = [[np.zeros(state_shape, dtype=np.float32) for _ in STATE_NAMES] for _ in range(2)]

        def ortv(a):
            return ort.OrtValue.ortvalue_from_numpy(a)

        self._bindings = []
        for k in (0, 1):
            b = self.session.io_binding()
            b.bind_ortvalue_input(INPUT_CONTEXT, ortv(self._ctx))
            for (_, in_name), arr in zip(STATE_NAMES, self._states[k]):
                b.bind_ortvalue_input(in_name, ortv(arr))
            b.bind_ortvalue_output(OUTPUT_LOGITS, ortv(self._logits.reshape(outs[OUTPUT_LOGITS].shape)
                                                       if _static(outs[OUTPUT_LOGITS].shape) else self._logits))
            for (out_name, _), arr in zip(STATE_NAMES, self._states[1 - k]):
                b.bind_ortvalue_output(out_name, ortv(arr))
            self._bindings.append(b)
        self._current = 0  # which state set holds the state the next step reads
        self._run = self.session.run_with_iobinding

    def step(self, contexts) -> np.ndarray:
        if type(contexts) is np.ndarray and contexts.shape == self.context_shape:
            self._ctx[...] = contexts
        else:
            self._ctx[...] = self._check_contexts(contexts)
        self._run(self._bindings[self._current])
        self._current ^= 1
        return self._logits.copy()

    def reset(self, lanes=None) -> None:
        idx = lane_index(lanes, self.batch)
        for arr in self._states[self._current]:
            arr[:, idx] = 0.0

    def get_state(self):
        return tuple(a.copy() for a in self._states[self._current])

    def set_state(self, state) -> None:
        current = self._states[self._current]
        if len(state) != len(current):
            raise BackendError(f"a state of {len(current)} arrays was expected, got {len(state)}")
        for arr, value in zip(current, state):
            value = np.asarray(value, dtype=np.float32)
            if value.shape != arr.shape:
                raise BackendError(f"state array of shape {arr.shape} expected, got {value.shape}")
            arr[...] = value

    def state_real(self) -> tuple:
        return self.get_state()

    def bare_invoke(self) -> None:
        self._run(self._bindings[self._current])

    def close(self) -> None:
        for attr in ("_bindings", "session", "_run"):
            self.__dict__.pop(attr, None)


def _static(shape) -> bool:
    return all(isinstance(d, int) for d in shape)
