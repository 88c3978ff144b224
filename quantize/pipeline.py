"""One checkpoint → quantized .tflite (+ float .tflite, + .onnx) with manifest, and its fidelity report.

    python -c "from quantize.pipeline import quantize_checkpoint; print(quantize_checkpoint('models/demo', 'demo.tflite', force=True))"

The order matters for users: outputs that exist are refused before any work, the checkpoint and the
data are checked before the slow conversion, and files are written only at the end, each atomically.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import pxby_edge
from pxby_edge.manifest import (
    GEOMETRY_SOURCE,
    INPUT_C,
    INPUT_CONTEXT,
    INPUT_H,
    INPUT_NAMES,
    MANIFEST_METADATA_NAME,
    OUTPUT_C,
    OUTPUT_H,
    OUTPUT_LOGITS,
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
FLOAT = "float"  # the recipe name of the unquantized files (float .tflite, .onnx)
# Keys of the checkpoint's config.json the manifest's model block keeps (upstream's names).
MODEL_CONFIG_KEYS = ("vocab_size", "embed_size", "hidden_size", "num_layers", "pxby_dim", "objective", "bidirection")


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
    ins = (TensorSpec(INPUT_CONTEXT, INPUT_CONTEXT, 0, (batch, step.pxby_dim), "int32"),
           TensorSpec(INPUT_H, INPUT_H, 1, state, "float32"), TensorSpec(INPUT_C, INPUT_C, 2, state, "float32"))
    outs = (TensorSpec(OUTPUT_LOGITS, OUTPUT_LOGITS, 0, (batch, step.slots, step.vocab_size), "float32"),
            TensorSpec(OUTPUT_H, OUTPUT_H, 1, state, "float32"), TensorSpec(OUTPUT_C, OUTPUT_C, 2, state, "float32"))
    return ins, outs


@dataclass
class Loaded:
    """What the load stage checked and read: the source model, its step graph and the data streams."""

    source: object  # quantize.source.Source
    step: object  # quantize.step.StepModule
    calib: object  # quantize.calibrate.Streams for calibration and GPTQ
    evaluation: object  # quantize.calibrate.Streams for the fidelity report
    geometry: dict  # what the data streams hold (sprite sizes, text/audio lengths): the plan's default bounds


@dataclass
class Calibrated:
    samples: list  # the quantizer's calibration inputs ([] for run-time ranges)
    summary: dict  # what the manifest records about calibration and rounding
    rounded: object = None  # quantize.rounding.Rounded when the weights are GPTQ-rounded
    seconds: dict = field(default_factory=dict)


def quantize_checkpoint(
    checkpoint,
    out,
    *,
    recipe: Optional[str] = None,
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
    qat_steps: int = 0,
) -> dict:
    """Run the whole pipeline, one function per stage; returns the fidelity report (also in the manifest).

    ``recipe`` None: the one the checkpoint was trained for (``train --qat int4`` → int4), else DEFAULT_RECIPE.

    ``rounding`` "gptq" rounds the weight matrices with GPTQ on the calibration streams before the
    quantizer runs (quantize/rounding.py); the float outputs and the fidelity reference stay the
    original float model. ``qat_steps`` > 0 then fine-tunes the rounded matrices that many steps on the
    calibration streams (quantize/qat.py). ``tie_state`` False keeps the calibrated ranges of integer state
    inputs and outputs apart (the runtime then re-quantizes the state every step); only for measuring what tying saves.
    """
    from pxby_edge.atomic import FileSet
    from quantize.export import export_tflite

    check_request(recipe, rounding, batch, qat_steps)
    # Every destination checked (and a killed run's set finished) before the slow work; written as one set.
    outputs = FileSet([out, onnx_out, float_out, report_out], force)
    tick = progress or (lambda stage: None)
    t0 = time.perf_counter()
    loaded = load(checkpoint, calib)
    recipe = recipe or default_recipe(loaded.source)
    # Every input has been checked by now: the first tick is where a progress display may start.
    tick("load")
    cal = calibrate(loaded, recipe, rounding, calib_steps, batch, started=t0, qat_steps=qat_steps)
    tick("calibrate")
    t0 = time.perf_counter()
    float_bytes = export_tflite(loaded.step, batch)
    cal.seconds["export"] = time.perf_counter() - t0
    tick("export")
    quant_bytes = quantize(loaded, cal, float_bytes, recipe, tie_state)
    tick("quantize")
    report = fidelity(loaded, cal, float_bytes, quant_bytes, recipe, rounding, batch, eval_steps)
    tick("fidelity")
    write(loaded, cal, report, float_bytes, quant_bytes,
          {"out": out, "float": float_out, "onnx": onnx_out, "report": report_out}, recipe, batch, outputs)
    tick("write")
    return report


def trained_recipe(source) -> Optional[str]:
    """The recipe a checkpoint's matrices were trained on (``pxby.qat``, written by ``train --qat``), or None.

    Only the values ``train --qat`` writes count: the block is the checkpoint's, so anything else in it
    is ignored rather than printed or acted on."""
    from training.qat import QAT_CHOICES

    value = source.pxby.get("qat")
    return value if isinstance(value, str) and QAT_CHOICES.get(value) else None


def default_recipe(source) -> str:
    """int4 for a checkpoint trained on the int4 grid (its float model is its int4 model), else DEFAULT_RECIPE."""
    return trained_recipe(source) or DEFAULT_RECIPE


def check_request(recipe: Optional[str], rounding: str, batch: int, qat_steps: int = 0) -> None:
    from quantize.recipes import RECIPES
    from quantize.rounding import ROUNDINGS

    if recipe is not None and recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDINGS)}")
    if batch < 1:
        raise ValueError(f"--batch must be at least 1, got {batch}")
    if qat_steps < 0:
        raise ValueError(f"--qat-steps must be 0 or more, got {qat_steps}")
    if qat_steps and rounding != "gptq":
        raise ValueError("--qat-steps fine-tunes the GPTQ-rounded weights; it needs --rounding gptq")


def load(checkpoint, calib) -> Loaded:
    """The checkpoint (refused here if it cannot stream) and the calibration/evaluation streams."""
    from quantize.calibrate import (
        EVAL_SEED,
        Streams,
        check_token_ids,
        load_streams,
        split_streams,
        synthetic_streams,
    )
    from quantize.source import load_source
    from quantize.step import StepModule

    source = load_source(checkpoint)
    step = StepModule(source.model).eval()
    data = load_streams(calib, source.slicing)
    check_token_ids(data.streams, source.model.config.vocab_size, data.source)
    geometry = {**measure_geometry(data.streams, _vocab(source)), GEOMETRY_SOURCE: data.source}
    if calib is None:
        evaluation = Streams(synthetic_streams(2, source.slicing, EVAL_SEED), f"synthetic (seed {EVAL_SEED}, 2 items)")
        return Loaded(source, step, data, evaluation, geometry)
    cal_streams, evaluation = split_streams(data)
    return Loaded(source, step, cal_streams, evaluation, geometry)


def calibrate(loaded: Loaded, recipe: str, rounding: str, calib_steps: int, batch: int, started: float,
              qat_steps: int = 0) -> Calibrated:
    """Calibration samples for static recipes, and GPTQ-rounded (and QAT-tuned) weights when asked for."""
    from quantize.calibrate import calibration_samples
    from quantize.recipes import needs_calibration, range_summary, weight_bits
    from quantize.rounding import gptq_weights

    if needs_calibration(recipe):
        samples, summary = calibration_samples(loaded.step, loaded.calib, calib_steps, batch)
        summary["ranges"] = range_summary(recipe)
    else:  # dynamic ranges are measured at run time; nothing to calibrate
        samples, summary = [], {"source": loaded.calib.source, "calib_steps": 0,
                                "note": f"recipe {recipe} quantizes activations at run time"}
    cal = Calibrated(samples, summary, seconds={"calibrate": time.perf_counter() - started})
    t0 = time.perf_counter()
    if rounding == "gptq":
        cal.rounded = gptq_weights(loaded.source.model, loaded.calib.streams, bits=weight_bits(recipe))
        if qat_steps:
            from quantize.qat import qat_round

            cal.rounded = qat_round(loaded.source.model, loaded.calib.streams, cal.rounded, qat_steps)
        summary["rounding"] = {**cal.rounded.summary, "source": loaded.calib.source}
        trained_for = trained_recipe(loaded.source)
        if trained_for is not None:
            summary["rounding"]["checkpoint_trained_for"] = trained_for
        if not summary.get("calib_steps"):
            summary["note"] += f"; weights GPTQ-rounded on {cal.rounded.summary['positions']} positions"
    else:
        summary["rounding"] = {"method": "nearest", "bits": weight_bits(recipe)}
    cal.seconds["rounding"] = time.perf_counter() - t0
    return cal


def quantize(loaded: Loaded, cal: Calibrated, float_bytes: bytes, recipe: str, tie_state: bool) -> bytes:
    """The quantized step graph (GPTQ-rounded weights swapped in first when there are any)."""
    from quantize.recipes import quantize_tflite
    from quantize.rounding import check_weights, replace_weights

    t0 = time.perf_counter()
    rounded = cal.rounded
    if rounded is not None:
        state = loaded.source.model.state_dict()
        to_quantize = replace_weights(float_bytes, {k: state[k].detach().cpu().numpy() for k in rounded.ints},
                                      {k: rounded.weights(k) for k in rounded.ints})
        quant_bytes = quantize_tflite(to_quantize, recipe, cal.samples, pre_rounded=True, tie_state=tie_state)
        check_weights(quant_bytes, rounded)
    else:
        quant_bytes = quantize_tflite(float_bytes, recipe, cal.samples, tie_state=tie_state)
    cal.seconds["quantize"] = time.perf_counter() - t0
    return quant_bytes


def fidelity(loaded: Loaded, cal: Calibrated, float_bytes: bytes, quant_bytes: bytes, recipe: str, rounding: str,
             batch: int, eval_steps: int) -> dict:
    """The report: the quantized file against the float model on held-out streams, sizes and timings."""
    from quantize.fidelity import eval_stream, fidelity_report

    contexts = eval_stream(loaded.evaluation.streams, eval_steps)
    fid = fidelity_report(loaded.source.model, float_bytes, quant_bytes, contexts)
    sec = cal.seconds
    return {
        "recipe": recipe,
        "rounding": rounding,
        "float_bytes": len(float_bytes),
        "quant_bytes": len(quant_bytes),
        "size_ratio": len(quant_bytes) / len(float_bytes),
        **fid,
        "convert_seconds": sec["export"] + sec["rounding"] + sec["quantize"],
        "export_seconds": sec["export"],
        "rounding_seconds": sec["rounding"],
        "quantize_seconds": sec["quantize"],
        "calibrate_seconds": sec["calibrate"],
        "eval_source": loaded.evaluation.source,
        "batch": batch,
        "checkpoint": str(loaded.source.path),
    }


def build_manifest(loaded: Loaded, cal: Calibrated, batch: int, recipe: str, specs, fidelity_figures: dict) -> Manifest:
    """The manifest of one output file (``specs``: its inputs and outputs, as ``tensor_specs`` reads them)."""
    source, step = loaded.source, loaded.step
    config = {k: source.config[k] for k in MODEL_CONFIG_KEYS if k in source.config}
    config.setdefault("pxby_dim", step.pxby_dim)
    ins, outs = specs
    return Manifest(
        vocab=_vocab(source), slicing=source.slicing, model=config, objective=source.objective, batch=batch,
        recipe=recipe, inputs=ins, outputs=outs, slots=step.slots, audio_rate=source.audio_rate,
        calibration=cal.summary if recipe != FLOAT else {}, fidelity=fidelity_figures,
        checkpoint_sha256=source.sha256, pxby_edge_version=pxby_edge.__version__, geometry=loaded.geometry,
    )


def _vocab(source) -> Vocab:
    return Vocab.from_dict(source.vocab) if source.vocab is not None else Vocab()


def write(loaded: Loaded, cal: Calibrated, report: dict, float_bytes: bytes, quant_bytes: bytes, paths: dict,
          recipe: str, batch: int, outputs) -> None:
    """Each asked-for file with its manifest, written only now, all as one set (``outputs``, a FileSet)."""
    from quantize.export import export_onnx
    from quantize.metadata import with_metadata

    def tflite_with_manifest(model_bytes: bytes, recipe_name: str, figures: dict) -> bytes:
        manifest = build_manifest(loaded, cal, batch, recipe_name, tensor_specs(model_bytes), figures)
        return with_metadata(model_bytes, {MANIFEST_METADATA_NAME: manifest.to_bytes()})

    writes = [(paths["out"], tflite_with_manifest(quant_bytes, recipe, _json_ready(report)))]
    if paths["float"] is not None:
        writes.append((paths["float"], tflite_with_manifest(float_bytes, FLOAT, _float_figures(report))))
    if paths["onnx"] is not None:
        manifest = build_manifest(loaded, cal, batch, FLOAT, onnx_specs(loaded.step, batch), _float_figures(report))
        writes.append((paths["onnx"], _onnx_with_manifest(export_onnx(loaded.step, batch), manifest)))
    if paths["report"] is not None:
        writes.append((paths["report"], (json.dumps(_json_ready(report), indent=2) + "\n").encode()))
    with outputs:  # what was staged is removed unless the commit happened
        for path, data_bytes in writes:
            outputs.stage(path, data_bytes)
        outputs.commit()


def _float_figures(report: dict) -> dict:
    keys = ("eval_steps", "all_slot_accuracy_float", "all_slot_accuracy_float_tflite", "new_token_accuracy_float",
            "new_token_accuracy_float_tflite", "max_abs_logit_diff_float_tflite", "float_tflite_top1_agreement",
            "float_tflite_state_cosine_final", "float_bytes", "export_seconds")
    return {k: report[k] for k in keys if k in report}


def _json_ready(d: dict) -> dict:
    return {k: (float(v) if isinstance(v, (np.floating,)) else v) for k, v in d.items()}


def _onnx_with_manifest(model_bytes: bytes, manifest: Manifest) -> bytes:
    """The manifest in the ONNX model's metadata_props (onnxruntime reads it: custom_metadata_map)."""
    import onnx

    m = onnx.load_from_string(model_bytes)
    entry = m.metadata_props.add()
    entry.key = MANIFEST_METADATA_NAME
    entry.value = manifest.to_json()
    return m.SerializeToString()
