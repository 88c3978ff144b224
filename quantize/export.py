"""Step module → float TFLite bytes (litert-torch) and ONNX bytes (torch.onnx), inputs/outputs by name.

    python -c "from quantize.source import load_source; from quantize.step import StepModule; from quantize.export import export_tflite; print(len(export_tflite(StepModule(load_source('models/demo').model))))"

One signature, ``serving_default``, with inputs ``context`` (int32 (B, 6)), ``h0``, ``c0`` ((L, B, H)) and
outputs ``logits``, ``h1``, ``c1``; the batch is fixed at export (``batch``), as interpreters on a Pi
run fixed shapes fastest.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path

from pxby_edge.manifest import INPUT_NAMES, OUTPUT_NAMES


@contextlib.contextmanager
def quiet():
    """Silence the converters' progress lines and C++ logs (they write to fds 1 and 2 directly)."""
    saved = []
    with tempfile.TemporaryFile() as sink:
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        except OSError:  # no real fds (embedded interpreter): stay loud rather than fail
            pass
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
                    contextlib.redirect_stderr(null), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            for fd, dup in saved:
                os.dup2(dup, fd)
                os.close(dup)


def export_tflite(step, batch: int = 1) -> bytes:
    """Float32 TFLite flatbuffer of the step at a fixed batch."""
    import torch

    from quantize.step import NamedStep

    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    named = NamedStep(step).eval()
    sample = step.sample_inputs(batch)
    with quiet(), torch.no_grad():
        import litert_torch  # its import prints torchao loader noise

        edge = litert_torch.convert(named, (), sample)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "step.tflite"
            edge.export(str(path))
            return path.read_bytes()


def export_onnx(step, batch: int = 1) -> bytes:
    """ONNX (opset 17) of the same step, same input/output names, for onnxruntime devices."""
    import torch

    sample = step.sample_inputs(batch)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "step.onnx"
        with quiet(), torch.no_grad():
            # The TorchScript exporter: the dynamo one needs onnxscript, which the quantize extra lacks.
            torch.onnx.export(
                step.eval(), tuple(sample[n] for n in INPUT_NAMES), str(path),
                input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), opset_version=17, dynamo=False,
            )
        return path.read_bytes()


def atomic_write(path, data: bytes) -> Path:
    """Write all of ``data`` or nothing (temp file beside ``path``, then rename); callers check --force."""
    from pxby_edge.atomic import atomic_write as write_all

    return write_all(path, data, overwrite=True)
