"""Float TFLite bytes + calibration samples → quantized TFLite bytes, by recipe name.

    python -c "from quantize.recipes import RECIPES; print(RECIPES)"

- ``int8``: ai-edge-quantizer's ``static_wi8_ai8``: weights int8 per channel, every activation int8,
  the state tensors included, each state input on the same grid as the output that feeds it
  (``tie_state_ranges``), so the runtime hands h and c on as plain integer copies.
- ``dynamic``: like ``dynamic_wi8_afp32`` (int8 weights per channel, float activations quantized on the
  fly inside each FULLY_CONNECTED; state stays float32), with OCTAV clipping of the weight ranges.
- ``a16w8``: ``static_wi8_ai16``: int8 weights, int16 activations (more precise, reference kernels).
- ``mixed``: the LSTM gate FULLY_CONNECTED ops static int8 (int8 weights per channel, int8 inputs and
  outputs with QUANTIZE/DEQUANTIZE around them: integer kernels, no on-the-fly quantization), the
  logits FULLY_CONNECTED dynamic (int8 weights, float logits: 8-bit logits round near-ties together,
  which costs top-1 agreement), and the gates, the cell update (MUL/ADD/TANH/LOGISTIC) and both state
  tensors float32, so nothing re-quantizes the cell state between steps.

Measured on a trained small model (bench/bench_quantize.py): static int8 state drifts (cosine ~0.5 after
4,096 steps) and ``int8`` loses accuracy; float state (``dynamic``, ``mixed``) stays at cosine > 0.999.
``dynamic`` is the default: the best fidelity of the fast recipes and the fastest with I/O.

Every recipe stores weights int8 symmetric per row with min/max ranges, so weights rounded beforehand
onto that grid (``quantize.rounding``, GPTQ) come through unchanged; ``pre_rounded`` makes ``dynamic``
take min/max ranges for FULLY_CONNECTED instead of OCTAV, whose clipping would re-round them.
"""

from __future__ import annotations

import warnings

RECIPES = ("int8", "dynamic", "a16w8", "mixed")
DEFAULT_RECIPE = "dynamic"
# Scopes of the step's layers in litert-torch tensor names (``...LSTM_sequence_model;3``, ``...Linear_fc;``).
LSTM_SCOPE = "LSTM_sequence_model"
HEAD_SCOPE = "Linear_fc"
RECIPE_HELP = {
    "int8": "static int8 weights (per channel) and int8 activations, state included",
    "dynamic": "int8 weights, float activations (quantized on the fly), float state",
    "a16w8": "int8 weights, int16 activations and state",
    "mixed": "static int8 gate FULLY_CONNECTED, dynamic logits FULLY_CONNECTED, float cell and state",
}


def _recipe_setup(quantizer, name: str, pre_rounded: bool = False) -> None:
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe

    if name == "int8":
        quantizer.load_quantization_recipe(recipe.static_wi8_ai8())
    elif name == "dynamic":
        # OCTAV picks each channel's clipping range to minimise the weight error instead of taking the
        # raw min/max: same graph and size, +0.1 point new-token agreement on both trained models we had.
        quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8,
                                     algorithm_key=algorithm_manager.AlgorithmName.OCTAV)
        if pre_rounded:  # the weights already lie on their min/max grid: keep it (the later config wins)
            quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 8)
    elif name == "a16w8":
        quantizer.load_quantization_recipe(recipe.static_wi8_ai16())
    elif name == "mixed":
        fc = qtyping.TFLOperationName.FULLY_CONNECTED
        # Regexes match op output tensor names, which litert-torch derives from the module path.
        quantizer.add_static_config(f".*{LSTM_SCOPE}.*", fc, 8, 8)
        quantizer.add_dynamic_config(f".*{HEAD_SCOPE}.*", fc, 8)
    else:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")


def needs_calibration(name: str) -> bool:
    return name != "dynamic"


def quantize_tflite(float_model: bytes, name: str, samples: list, signature: str = "serving_default",
                    pre_rounded: bool = False, tie_state: bool = True) -> bytes:
    """Quantized flatbuffer of ``float_model`` under recipe ``name``; ``samples`` are signature input dicts.

    ``pre_rounded``: the FULLY_CONNECTED weights are already on their int8 grid (see quantize.rounding).
    ``tie_state``: integer state inputs and outputs share one grid (``tie_state_ranges``).
    """
    from ai_edge_quantizer import quantizer

    from quantize.export import quiet

    q = quantizer.Quantizer(bytearray(float_model))
    _recipe_setup(q, name, pre_rounded)
    with quiet(), warnings.catch_warnings():
        # The calibrator keeps every tensor on purpose and the interpreter warns that this is for debugging.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        calibration = q.calibrate({signature: samples}, num_threads=1) if q.need_calibration else None
        if calibration is not None and tie_state:
            tie_state_ranges(calibration, float_model, signature)
        result = q.quantize(calibration, enable_progress_report=False)
    return bytes(result.quantized_model)


# Ops whose output the quantizer puts on its input's grid: a state output made by one of these takes
# its scale and zero point from the tensor behind it, so that tensor's range must be tied too.
_SAME_GRID_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")


def _same_grid_chain(float_model: bytes, name: str) -> list[str]:
    """``name`` and the tensors behind it through same-grid ops, in the float flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(float_model), 0)
    graph = m.subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else str(t.name) for t in graph.tensors]
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    producer = {}
    for op in graph.operators:
        code = m.operatorCodes[op.opcodeIndex]
        kind = codes.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")
        for o in op.outputs:
            producer[int(o)] = (kind, int(op.inputs[0]))
    chain = [name]
    index = names.index(name) if name in names else None
    while index is not None and producer.get(index, ("", -1))[0] in _SAME_GRID_OPS:
        index = producer[index][1]
        chain.append(names[index])
    return chain


def tie_state_ranges(calibration: dict, float_model: bytes, signature: str = "serving_default") -> None:
    """Give each state output and the input it feeds one calibrated range (the union of both), in place.

    Then both sides quantize with one scale and zero point, and the runtime hands a step's integer
    state to the next step as a plain copy instead of re-quantizing it (two table lookups of ~7 µs
    each per step at H=512 on our CPU). The two ranges differ by well under 1 % as calibrated, since
    the output of step t is the input of step t+1 over the same streams. An output reshaped from
    the stacked layers takes its grid from the stack, so the tensors behind it are tied as well.
    """
    import numpy as np

    from pxby_edge.manifest import STATE_PAIRS

    for out_name, in_name in STATE_PAIRS.items():
        names = [f"{signature}_{in_name}", *_same_grid_chain(float_model, f"{signature}_{out_name}_output")]
        stats = [calibration.get(n) for n in names]
        stats = [q for q in stats if q is not None and {"min", "max"} <= set(q)]
        if len(stats) < 2:
            continue
        lo = min(float(np.min(q["min"])) for q in stats)
        hi = max(float(np.max(q["max"])) for q in stats)
        for q in stats:  # activations are quantized per tensor: one range, each entry keeping its shape
            q["min"], q["max"] = np.full_like(q["min"], lo), np.full_like(q["max"], hi)
