"""One checkpoint → quantized .tflite (+ float .tflite, + .onnx) with manifest, and its fidelity report.

    python -c "from quantize.pipeline import quantize_checkpoint; print(quantize_checkpoint('models/demo', 'demo.tflite', force=True))"

The order matters for users: outputs that exist are refused before any work, the checkpoint and the
data are checked before the slow conversion, and files are written only at the end, each atomically.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

import pxby_edge
from pxby_edge.errors import OutputExistsError
from pxby_edge.manifest import (
    GEOMETRY_SOURCE,
    INPUT_NAMES,
    MANIFEST_METADATA_NAME,
    OUTPUT_NAMES,
    Manifest,
    TensorSpec,
)
from pxby_edge.plan import measure_geometry
from pxby_edge.tflite_file import TFLiteFile
from pxby_edge.vocab import Vocab
from quantize.recipes import DEFAULT_RECIPE
from quantize.rounding import DEFAULT_ROUNDING

DEFAULT_CALIB_STEPS = 256
EVAL_STEPS = 4096
STAGES = ("load", "calibrate", "export", "quantize", "fidelity", "write")


def tensor_specs(model_bytes: bytes) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs of the step signature, in the manifest's fixed order, as the file stores them."""
    f = TFLiteFile(model_bytes)
    sig = f.signature()
    tensors = f.subgraphs[sig.subgraph_index].tensors

    def spec(name, index):
        t = tensors[index]
        return TensorSpec(name=name, tensor=t.name, index=t.index, shape=t.shape, dtype=t.dtype,
                          scale=t.scale, zero_point=t.zero_point)

    return (tuple(spec(n, sig.inputs[n]) for n in INPUT_NAMES),
            tuple(spec(n, sig.outputs[n]) for n in OUTPUT_NAMES))


def onnx_specs(step, batch: int) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    state = (step.num_layers, batch, step.hidden_size)
    ins = (TensorSpec("context", "context", 0, (batch, step.pxby_dim), "int32"),
           TensorSpec("h0", "h0", 1, state, "float32"), TensorSpec("c0", "c0", 2, state, "float32"))
    outs = (TensorSpec("logits", "logits", 0, (batch, step.slots, step.vocab_size), "float32"),
            TensorSpec("h1", "h1", 1, state, "float32"), TensorSpec("c1", "c1", 2, state, "float32"))
    return ins, outs


def _check_outputs(paths, force: bool) -> None:
    for p in paths:
        if p is not None and Path(p).exists() and not force:
            raise OutputExistsError(f"{p} already exists; pass --force to overwrite it")


def _vocab_of(pxby: dict) -> Vocab:
    v = pxby.get("vocab")
    return Vocab.from_dict(v) if isinstance(v, dict) else Vocab()


def quantize_checkpoint(
    checkpoint,
    out,
    *,
    recipe: str = DEFAULT_RECIPE,
    rounding: str = DEFAULT_ROUNDING,
    calib=None,
    calib_steps: int = DEFAULT_CALIB_STEPS,
    batch: int = 1,
    onnx_out=None,
    float_out=None,
    report_out=None,
    force: bool = False,
    eval_steps: int = EVAL_STEPS,
    progress: Optional[Callable[[str], None]] = None,
    tie_state: bool = True,
) -> dict:
    """Run the whole pipeline; returns the fidelity report (also stored in the manifest).

    ``rounding`` "gptq" rounds the weight matrices with GPTQ on the calibration streams before the
    quantizer runs (quantize/rounding.py); the float outputs and the fidelity reference stay the
    original float model. ``tie_state`` False keeps the calibrated ranges of integer state inputs and
    outputs apart (the runtime then re-quantizes the state every step); only for measuring what tying saves.
    """
    from quantize.calibrate import (
        EVAL_SEED,
        Streams,
        calibration_samples,
        load_streams,
        split_streams,
        synthetic_streams,
    )
    from quantize.export import atomic_write, export_onnx, export_tflite
    from quantize.fidelity import eval_stream, fidelity_report
    from quantize.metadata import with_metadata
    from quantize.recipes import RECIPES, needs_calibration, quantize_tflite
    from quantize.rounding import ROUNDINGS, check_weights, gptq_weights, replace_weights
    from quantize.source import load_source
    from quantize.step import StepModule

    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDINGS)}")
    if batch < 1:
        raise ValueError(f"--batch must be at least 1, got {batch}")
    _check_outputs([out, onnx_out, float_out, report_out], force)
    tick = progress or (lambda stage: None)

    source = load_source(checkpoint)
    pxby = _pxby_block(source.path)
    slicing = dict(pxby.get("data_slicing") or source.slicing)
    step = StepModule(source.model).eval()

    t0 = time.perf_counter()
    data = load_streams(calib, slicing)
    geometry = {**measure_geometry(data.streams, _vocab_of(pxby)), GEOMETRY_SOURCE: data.source}
    if calib is None:
        cal_streams = data
        ev_streams = Streams(synthetic_streams(2, slicing, EVAL_SEED), f"synthetic (seed {EVAL_SEED}, 2 items)")
    else:
        cal_streams, ev_streams = split_streams(data)
    # Every input has been checked by now: the first tick is where a progress display may start.
    tick("load")
    if needs_calibration(recipe):
        samples, calib_summary = calibration_samples(step, cal_streams, calib_steps, batch)
    else:  # dynamic ranges are measured at run time; nothing to calibrate
        samples, calib_summary = [], {"source": cal_streams.source, "calib_steps": 0,
                                      "note": f"recipe {recipe} quantizes activations at run time"}
    calibrate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rounded = None
    if rounding == "gptq":
        rounded = gptq_weights(source.model, cal_streams.streams)
        calib_summary["rounding"] = {**rounded.summary, "source": cal_streams.source}
        if not calib_summary.get("calib_steps"):
            calib_summary["note"] += f"; weights GPTQ-rounded on {rounded.summary['positions']} positions"
    else:
        calib_summary["rounding"] = {"method": "nearest"}
    rounding_s = time.perf_counter() - t0
    tick("calibrate")

    t0 = time.perf_counter()
    float_bytes = export_tflite(step, batch)
    export_s = time.perf_counter() - t0
    tick("export")

    t0 = time.perf_counter()
    if rounded is not None:
        state = source.model.state_dict()
        to_quantize = replace_weights(float_bytes, {k: state[k].detach().cpu().numpy() for k in rounded.ints},
                                      {k: rounded.weights(k) for k in rounded.ints})
        quant_bytes = quantize_tflite(to_quantize, recipe, samples, pre_rounded=True, tie_state=tie_state)
        check_weights(quant_bytes, rounded)
    else:
        quant_bytes = quantize_tflite(float_bytes, recipe, samples, tie_state=tie_state)
    quantize_s = time.perf_counter() - t0
    tick("quantize")

    contexts = eval_stream(ev_streams.streams, eval_steps)
    fid = fidelity_report(source.model, float_bytes, quant_bytes, contexts)
    report = {
        "recipe": recipe,
        "rounding": rounding,
        "float_bytes": len(float_bytes),
        "quant_bytes": len(quant_bytes),
        "size_ratio": len(quant_bytes) / len(float_bytes),
        **fid,
        "convert_seconds": export_s + rounding_s + quantize_s,
        "export_seconds": export_s,
        "rounding_seconds": rounding_s,
        "quantize_seconds": quantize_s,
        "calibrate_seconds": calibrate_s,
        "eval_source": ev_streams.source,
        "batch": batch,
        "checkpoint": str(source.path),
    }
    tick("fidelity")

    config = {k: source.config[k] for k in ("vocab_size", "embed_size", "hidden_size", "num_layers", "pxby_dim",
                                            "objective", "bidirection") if k in source.config}
    config.setdefault("pxby_dim", step.pxby_dim)

    def manifest_for(model_bytes: Optional[bytes], recipe_name: str, specs=None, fidelity=None) -> Manifest:
        ins, outs = specs or tensor_specs(model_bytes)
        return Manifest(
            vocab=_vocab_of(pxby), slicing=slicing, model=config, objective=source.objective, batch=batch,
            recipe=recipe_name, inputs=ins, outputs=outs, slots=step.slots,
            audio_rate=float(pxby["audio_rate"]) if pxby.get("audio_rate") else None,
            calibration=calib_summary if recipe_name != "float" else {},
            fidelity=fidelity or {}, checkpoint_sha256=source.sha256, pxby_edge_version=pxby_edge.__version__,
            geometry=geometry,
        )

    quant_manifest = manifest_for(quant_bytes, recipe, fidelity=_json_ready(report))
    quant_final = with_metadata(quant_bytes, {MANIFEST_METADATA_NAME: quant_manifest.to_bytes()})
    writes = [(out, quant_final)]
    if float_out is not None:
        float_manifest = manifest_for(float_bytes, "float", fidelity=_float_figures(report))
        writes.append((float_out, with_metadata(float_bytes, {MANIFEST_METADATA_NAME: float_manifest.to_bytes()})))
    if onnx_out is not None:
        writes.append((onnx_out, _onnx_with_manifest(export_onnx(step, batch),
                                                    manifest_for(None, "float", onnx_specs(step, batch),
                                                                 _float_figures(report)))))
    for path, data_bytes in writes:
        atomic_write(path, data_bytes)
    if report_out is not None:
        atomic_write(report_out, (json.dumps(_json_ready(report), indent=2) + "\n").encode())
    tick("write")
    return report


def _float_figures(report: dict) -> dict:
    keys = ("eval_steps", "all_slot_accuracy_float", "all_slot_accuracy_float_tflite", "new_token_accuracy_float",
            "new_token_accuracy_float_tflite", "max_abs_logit_diff_float_tflite", "float_tflite_top1_agreement",
            "float_tflite_state_cosine_final", "float_bytes", "export_seconds")
    return {k: report[k] for k in keys if k in report}


def _json_ready(d: dict) -> dict:
    return {k: (float(v) if isinstance(v, (np.floating,)) else v) for k, v in d.items()}


def _pxby_block(path: Path) -> dict:
    try:
        from training.checkpoint import read_pxby
    except ImportError:
        return {}
    return read_pxby(path)


def _onnx_with_manifest(model_bytes: bytes, manifest: Manifest) -> bytes:
    """The manifest in the ONNX model's metadata_props (onnxruntime reads it: custom_metadata_map)."""
    import onnx

    m = onnx.load_from_string(model_bytes)
    entry = m.metadata_props.add()
    entry.key = MANIFEST_METADATA_NAME
    entry.value = manifest.to_json()
    return m.SerializeToString()
