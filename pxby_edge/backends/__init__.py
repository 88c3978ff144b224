"""Interpreter backends: open a model file and step it, one token per lane per call.

    python -c "from pxby_edge.backends import open_backend, available_backends; print(available_backends()); print(open_backend('pxby_edge/assets/demo.tflite').name)"

``open_backend(path, backend="auto")`` checks the file (a TFLite model with a pxby-edge manifest)
before it picks an interpreter, so a wrong file gives a ``ModelFileError``/``ManifestError`` whatever
is installed. ``auto`` takes, of those installed, the first in ``litert, tflite, onnx, numpy``: that
is their speed order on the int8 step measured in ``pxby-edge bench`` (ai-edge-litert with XNNPACK
first; tflite-runtime 2.14 lacks the newer int8 kernels; onnxruntime needs the .onnx beside the file
and runs the float graph; numpy is the always-there fallback). ``backend.name`` says which was taken.
``NullBackend`` (no model: logits from a seeded table) serves tests and benchmarks of the loop; it is
not among the names a file is opened with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pxby_edge.backends.base import Backend, Stepper
from pxby_edge.backends.null import NullBackend
from pxby_edge.constants import BACKEND_NAMES  # the one list, in auto's order of preference
from pxby_edge.errors import BackendError, ModelFileError

__all__ = ["BACKEND_NAMES", "Backend", "NullBackend", "Stepper", "available_backends", "backend_class", "open_backend"]


def backend_class(name: str):
    """The class of a backend by name (importing it does not import its interpreter)."""
    if name == "litert":
        from pxby_edge.backends.litert import LiteRTBackend

        return LiteRTBackend
    if name == "tflite":
        from pxby_edge.backends.tflite import TFLiteRuntimeBackend

        return TFLiteRuntimeBackend
    if name == "onnx":
        from pxby_edge.backends.onnx import OnnxBackend

        return OnnxBackend
    if name == "numpy":
        from pxby_edge.backends.numpy_backend import NumpyBackend

        return NumpyBackend
    raise BackendError(f"unknown backend {name!r}; choose one of auto, {', '.join(BACKEND_NAMES)}")


def available_backends() -> list[str]:
    """Names of the backends whose interpreter is installed here, fastest first."""
    return [name for name in BACKEND_NAMES if backend_class(name).available()]


def open_backend(model_path, backend: str = "auto", threads: int = 1, batch: Optional[int] = None, **options) -> Backend:
    """A ready backend for ``model_path`` (``.tflite``; ``.onnx`` for the onnx backend).

    ``batch``: when given, the file must have been exported at that batch (BackendError otherwise).
    ``options`` go to the backend class (e.g. ``io="copy"`` for litert/tflite).
    """
    from pxby_edge.manifest import read_manifest
    from pxby_edge.tflite_file import TFLiteFile

    path = Path(model_path)
    if int(threads) < 1:
        raise BackendError(f"threads must be >= 1, got {threads}")
    if backend != "auto" and backend not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKEND_NAMES)}")
    if path.suffix == ".onnx":
        if backend not in ("auto", "onnx"):
            raise ModelFileError(f"{path} is an ONNX file; only the onnx backend runs it (give the .tflite for {backend})")
        be = backend_class("onnx")(path, threads=threads, **options)
        return _check_batch(be, batch)

    model = TFLiteFile.open(path)  # ModelFileError for a missing/corrupt/non-TFLite file
    manifest = read_manifest(model)  # ManifestError for a file without one
    if backend == "auto":
        backend = _choose(path)
    cls = backend_class(backend)
    if backend == "onnx":
        be = cls(path, threads=threads, manifest=None, **options)
    elif backend == "numpy":
        be = cls(path, threads=threads, manifest=manifest, data=model.data, **options)
    else:
        cls.interpreter_class()  # BackendError with the install line, before reading anything else
        be = cls(path, threads=threads, manifest=manifest, data=model.data, **options)
    return _check_batch(be, batch)


def _choose(path: Path) -> str:
    from pxby_edge.backends.onnx import onnx_path_for

    for name in BACKEND_NAMES:
        if name == "onnx" and onnx_path_for(path) is None:
            continue
        if backend_class(name).available():
            return name
    return "numpy"


def _check_batch(be: Backend, batch: Optional[int]) -> Backend:
    if batch is not None and int(batch) != be.batch:
        raise BackendError(
            f"{be.path} was exported for batch {be.batch}, not {batch}; "
            f"export one with `pxby-edge quantize CKPT -o FILE.tflite --batch {batch}`"
        )
    return be
