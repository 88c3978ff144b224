"""Float TFLite bytes + calibration samples → quantized TFLite bytes, by recipe name.

    python -c "from quantize.recipes import RECIPES; print(RECIPES)"

- ``int8``: full integer, for NPUs and microcontrollers (LiteRT's "16x8" mode): ``static_wi8_ai16``,
  weights int8 per channel, every activation int16, the state tensors included, each state input on
  the same grid as the output that feeds it (``tie_state_ranges``), so the runtime hands h and c on as
  plain integer copies; the float embedding lookup is replaced by an integer GATHER
  (``quantize.graph.integer_embedding``). No op computes in float; only the int32 context ids go in.
- ``dynamic``: like ``dynamic_wi8_afp32`` (int8 weights per channel, float activations quantized on the
  fly inside each FULLY_CONNECTED; state stays float32), with OCTAV clipping of the weight ranges.
- ``int4``: ``dynamic`` with int4 weights (symmetric, per row) in every FULLY_CONNECTED: half the
  bytes a step reads; the embedding stays int8. Rows 32/64/128/256 wide are stored as one block each
  (``row_block_scopes``: float16 scales, no zero points), others per channel. Post-training rounding keeps
  89-93 % of the float model's new-token predictions at 4 bits; a checkpoint trained with
  ``train --qat int4`` (training/qat.py) already lies on this grid and keeps them all.
- ``mixed``: the LSTM gate FULLY_CONNECTED ops static int8 (int8 weights per channel, int8 inputs and
  outputs with QUANTIZE/DEQUANTIZE around them: integer kernels, no on-the-fly quantization), the
  logits FULLY_CONNECTED dynamic (int8 weights, float logits: 8-bit logits round near-ties together,
  which costs top-1 agreement), and the gates, the cell update (MUL/ADD/TANH/LOGISTIC) and both state
  tensors float32, so nothing re-quantizes the cell state between steps.

Why int16 activations in ``int8``: a trained model's cell state reaches |c| ≈ 900 (saturated counters),
so an int8 grid for c has a step of ≈ 7 and the state collapses (6 % agreement on the demo model with
correct ranges); int8 FULLY_CONNECTED outputs with int16 elsewhere reached 94.6 %. Figures per recipe
are in docs/BENCHMARKS.md (bench/bench_quantize.py). ``a16w8`` (the same graph with a float embedding
lookup) was folded into ``int8``; older files that say ``a16w8`` still load.

Every recipe stores weights symmetric per row with min/max ranges, so weights rounded beforehand onto
that grid (``quantize.rounding``, GPTQ) come through unchanged; ``pre_rounded`` makes ``dynamic`` and
``int4`` take min/max ranges for FULLY_CONNECTED instead of OCTAV, whose clipping would re-round them.
"""

from __future__ import annotations

import warnings

RECIPES = ("int8", "dynamic", "int4", "mixed")
ROW_BLOCK_WIDTHS = (32, 64, 128, 256)  # ai-edge-quantizer's block sizes (BLOCKWISE_32 .. _256)
RANGES = ("minmax", "percentile")  # how calibrated activation ranges are taken (calibrate_ranges)
DEFAULT_RANGES = "minmax"
PERCENTILE = 99.9
RANGE_CAP = 200.0  # int8 (16x8): no activation range beyond ±this (cap_ranges: it is the cell state's)
DEFAULT_RECIPE = "dynamic"
# Scopes of the step's layers in litert-torch tensor names (``...LSTM_sequence_model;3``, ``...Linear_fc;``).
LSTM_SCOPE = "LSTM_sequence_model"
HEAD_SCOPE = "Linear_fc"
RECIPE_HELP = {
    "int8": "full integer: int8 weights, int16 activations and state, integer embedding (no float op)",
    "dynamic": "int8 weights, float activations (quantized on the fly), float state",
    "int4": "int4 weights (per row) in every FULLY_CONNECTED, float activations, float state; keeps 99 % "
            "of the float model's predictions on a checkpoint trained with `train --qat int4`, 89-93 % on others",
    "mixed": "static int8 gate FULLY_CONNECTED, dynamic logits FULLY_CONNECTED, float cell and state",
}


def row_block_scopes(float_model: bytes) -> list[tuple[str, int]]:
    """(scope regex, width) of every FULLY_CONNECTED whose weight rows are one of the quantizer's block widths.

    A block as wide as the row is the per-row grid the int4 recipe uses anyway; what changes is the
    storage: ai-edge-quantizer writes block scales as one float16 tensor (rounded to bfloat16's 8
    significant bits, which ``quantize.rounding`` and ``training.qat`` round to first) and no zero
    points, where per-channel quantization needs a float32 scale and an int64 zero point per row
    (the interpreter refuses a file without them). On the demo model that is 24 KB of 251 KB, for a
    step about 3 % slower than per channel here (1.10× dynamic's speed against 1.13× in one run,
    bench/bench_int4_storage.py and docs/BENCHMARKS.md).
    Rows of other widths (the
    upstream-size model's 126 and 512) stay per channel: a narrower block would be a different grid.
    """
    import re

    from pxby_edge.tflite_file import TFLiteFile

    f = TFLiteFile(float_model)
    out = []
    for sub in f.subgraphs:
        for op in sub.operators:
            if f.op_name(op) != "FULLY_CONNECTED" or len(op.inputs) < 2:
                continue
            shape = sub.tensors[op.inputs[1]].shape
            if len(shape) == 2 and shape[1] in ROW_BLOCK_WIDTHS:
                # The quantizer matches op scopes: the output tensor names joined by ";", with a trailing ";".
                scope = "".join(sub.tensors[i].name + ";" for i in op.outputs if i >= 0)
                out.append(("^" + re.escape(scope) + "$", int(shape[1])))
    return out


def _recipe_setup(quantizer, name: str, pre_rounded: bool = False, float_model: bytes = b"") -> None:
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe

    if name == "int8":
        # int16 activations: the cell state reaches |c| ≈ 900 on trained models, beyond any int8 grid.
        quantizer.load_quantization_recipe(recipe.static_wi8_ai16())
    elif name == "dynamic":
        # OCTAV picks each channel's clipping range to minimise the weight error instead of taking the
        # raw min/max: same graph and size, +0.1 point new-token agreement on both trained models we had.
        quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8,
                                     algorithm_key=algorithm_manager.AlgorithmName.OCTAV)
        if pre_rounded:  # the weights already lie on their min/max grid: keep it (the later config wins)
            quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 8)
    elif name == "int4":
        # The embedding stays int8 (a few KB); the matmuls, which are what a step reads, go to int4.
        fc = qtyping.TFLOperationName.FULLY_CONNECTED
        quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8)
        quantizer.add_dynamic_config(".*", fc, 4, algorithm_key=algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT
                                     if pre_rounded else algorithm_manager.AlgorithmName.OCTAV)
        for scope, width in row_block_scopes(float_model):
            # Whole rows as one block: the same per-row grid, stored with a float16 scale and no zero
            # point instead of a float32 scale and an int64 zero point (12 → 2 bytes a row).
            quantizer.add_dynamic_config(scope, fc, 4, granularity=getattr(qtyping.QuantGranularity, f"BLOCKWISE_{width}"))
    elif name == "mixed":
        fc = qtyping.TFLOperationName.FULLY_CONNECTED
        # Regexes match op output tensor names, which litert-torch derives from the module path.
        quantizer.add_static_config(f".*{LSTM_SCOPE}.*", fc, 8, 8)
        quantizer.add_dynamic_config(f".*{HEAD_SCOPE}.*", fc, 8)
    else:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")


def weight_bits(name: str) -> int:
    """Bits of the FULLY_CONNECTED weights under recipe ``name`` (what GPTQ rounds them to)."""
    return 4 if name == "int4" else 8


def range_summary(name: str) -> dict:
    """How recipe ``name`` takes its calibrated activation ranges, for the manifest."""
    return {"method": DEFAULT_RANGES, **({"cap": RANGE_CAP} if name == "int8" else {})}


def needs_calibration(name: str) -> bool:
    return name not in ("dynamic", "int4")


def quantize_tflite(float_model: bytes, name: str, samples: list, signature: str = "serving_default",
                    pre_rounded: bool = False, tie_state: bool = True, ranges: str = DEFAULT_RANGES) -> bytes:
    """Quantized flatbuffer of ``float_model`` under recipe ``name``; ``samples`` are signature input dicts.

    ``pre_rounded``: the FULLY_CONNECTED weights are already on their int8 grid (see quantize.rounding).
    ``tie_state``: integer state inputs and outputs share one grid (``tie_state_ranges``).
    """
    from ai_edge_quantizer import quantizer

    from quantize.export import quiet
    from quantize.graph import integer_embedding

    q = quantizer.Quantizer(bytearray(float_model))
    _recipe_setup(q, name, pre_rounded, float_model)
    with quiet():
        calibration = calibrate_ranges(q, {signature: samples}, ranges) if q.need_calibration else None
        if calibration is not None and tie_state:
            tie_state_ranges(calibration, float_model, signature)
        if calibration is not None:
            cover_embedding_table(calibration, float_model)
        if calibration is not None and name == "int8":
            cap_ranges(calibration, RANGE_CAP)
        result = bytes(q.quantize(calibration, enable_progress_report=False).quantized_model)
    return integer_embedding(result) if name == "int8" else result


def calibrate_ranges(q, data: dict, ranges: str = DEFAULT_RANGES) -> dict:
    """Calibrated min/max of every tensor over ``data``: the whole range seen (``minmax``) or a percentile
    of the per-sample extremes (``percentile``: PERCENTILE of the maxima, 100 - PERCENTILE of the minima).

    Why not ``Quantizer.calibrate``: it merges samples with a moving average (0.95) of their min and
    max, i.e. roughly the extremes of the last 20 samples. An LSTM's cell state grows over a stream
    (|c| reached 781 over the demo model's calibration positions, its moving-average range was 58), so
    every state and gate past that range was clipped: that, not int8 arithmetic, is what took the
    static recipes to 80-93 % agreement.
    """
    import numpy as np
    from ai_edge_quantizer import calibrator

    if ranges not in RANGES:
        raise ValueError(f"unknown range method {ranges!r}; choose one of {', '.join(RANGES)}")

    def update(old: dict, new: dict) -> dict:
        # Called per tensor from the second sample on (the first is stored as it is); the per-sample
        # extremes ride along under "_seen" for the percentile.
        seen = old.get("_seen") or ([np.asarray(old["min"])], [np.asarray(old["max"])])
        seen[0].append(np.asarray(new["min"]))
        seen[1].append(np.asarray(new["max"]))
        return {"min": np.minimum(old["min"], new["min"]), "max": np.maximum(old["max"], new["max"]), "_seen": seen}

    # The quantizer's own calibrator, with our merge (private members: the calibrate() above them
    # takes no merge function).
    from quantize.export import quiet

    with quiet(), warnings.catch_warnings():
        # The calibrator keeps every tensor on purpose and the interpreter warns that this is for debugging.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        calib = calibrator.Calibrator(q._float_model_buffer, num_threads=1, qsv_update_func=update)
        calib.calibrate(data, q._recipe_manager)
    out = calib.get_model_qsvs()
    for qsv in out.values():
        mins, maxs = qsv.pop("_seen", ([], []))
        if ranges == "percentile" and len(maxs) > 1:
            qsv["min"] = np.percentile(np.stack(mins), 100 - PERCENTILE, axis=0).astype(np.float32)
            qsv["max"] = np.percentile(np.stack(maxs), PERCENTILE, axis=0).astype(np.float32)
    return out


def cover_embedding_table(calibration: dict, float_model: bytes) -> None:
    """Widen each embedding lookup's calibrated output range to its whole table, in place.

    Calibration only sees the ids its streams hold; a row outside that range would be clipped on the
    integer grid the moment an unseen id comes up. The table is known, so its range is used.
    """
    import numpy as np

    from pxby_edge.tflite_file import TFLiteFile

    f = TFLiteFile(float_model)
    for sub in f.subgraphs:
        for op in sub.operators:
            if f.op_name(op) != "EMBEDDING_LOOKUP":
                continue
            table = f.tensor_array(sub.tensors[op.inputs[1]])
            q = calibration.get(sub.tensors[op.outputs[0]].name)
            if table is None or q is None or not {"min", "max"} <= set(q):
                continue
            q["min"] = np.minimum(q["min"], np.float32(table.min())).astype(np.float32)
            q["max"] = np.maximum(q["max"], np.float32(table.max())).astype(np.float32)


def cap_ranges(calibration: dict, bound: float) -> int:
    """Clip every calibrated range to [-bound, bound], in place; returns how many ranges were cut.

    Only the cell state goes that far: trained models keep saturated "counter" cells at |c| ≈ 1,000,
    and one int16 grid for all of c then has a step of ≈ 0.03, too coarse for the cells near 0 that
    tanh(c) reads finely. At |c| ≥ 200 tanh(c) is 1 in float32 already, so capping costs only how long
    a saturated counter takes to decay. Measured (new-token top-1 agreement, 4,096 steps): demo model
    98.66 % uncapped → 99.00 % at 200 (99.07 % at 100); upstream-size CPU-trained model 97.53 % →
    99.15 % at 200 (98.34 % at 64). The state cosine falls where counters are cut (0.77 on the latter),
    which is that decay, not the predictions.
    """
    import numpy as np

    cut = 0
    for q in calibration.values():
        if {"min", "max"} <= set(q) and (np.min(q["min"]) < -bound or np.max(q["max"]) > bound):
            q["min"] = np.maximum(q["min"], -bound).astype(np.float32)
            q["max"] = np.minimum(q["max"], bound).astype(np.float32)
            cut += 1
    return cut


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
