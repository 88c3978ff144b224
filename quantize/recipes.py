"""Float TFLite bytes + calibration samples → quantized TFLite bytes, by recipe name.

    python -c "from quantize.recipes import RECIPES; print(RECIPES)"

- ``int8``: ai-edge-quantizer's ``static_wi8_ai8``: weights int8 per channel, every activation int8,
  the state tensors included (the runtime re-quantizes h and c every step).
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
                    pre_rounded: bool = False) -> bytes:
    """Quantized flatbuffer of ``float_model`` under recipe ``name``; ``samples`` are signature input dicts.

    ``pre_rounded``: the FULLY_CONNECTED weights are already on their int8 grid (see quantize.rounding).
    """
    from ai_edge_quantizer import quantizer

    from quantize.export import quiet

    q = quantizer.Quantizer(bytearray(float_model))
    _recipe_setup(q, name, pre_rounded)
    with quiet(), warnings.catch_warnings():
        # The calibrator keeps every tensor on purpose and the interpreter warns that this is for debugging.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        calibration = q.calibrate({signature: samples}, num_threads=1) if q.need_calibration else None
        result = q.quantize(calibration, enable_progress_report=False)
    return bytes(result.quantized_model)
