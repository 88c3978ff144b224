"""Float TFLite bytes + calibration samples → quantized TFLite bytes, by recipe name.

    python -c "from quantize.recipes import RECIPES; print(RECIPES)"

- ``int8``: ai-edge-quantizer's ``static_wi8_ai8``: weights int8 per channel, every activation int8,
  the state tensors included (the runtime re-quantizes h and c every step).
- ``dynamic``: ``dynamic_wi8_afp32``: int8 weights, float activations quantized on the fly inside each
  FULLY_CONNECTED; state stays float32.
- ``a16w8``: ``static_wi8_ai16``: int8 weights, int16 activations (more precise, reference kernels).
- ``mixed``: only the FULLY_CONNECTED ops quantized statically (int8 weights per channel, int8 input
  and output with QUANTIZE/DEQUANTIZE around them); gates, the cell update (MUL/ADD/TANH/LOGISTIC)
  and both state tensors stay float32. The matrix products are where the time and the bytes are; the
  cell state is where error accumulates over a long stream. See ``bench/bench_quantize.py``.
"""

from __future__ import annotations

import warnings

RECIPES = ("int8", "dynamic", "a16w8", "mixed")
RECIPE_HELP = {
    "int8": "static int8 weights (per channel) and int8 activations, state included",
    "dynamic": "int8 weights, float activations (quantized on the fly), float state",
    "a16w8": "int8 weights, int16 activations and state",
    "mixed": "int8 FULLY_CONNECTED (weights and their inputs/outputs), float gates, cell and state",
}


def _recipe_setup(quantizer, name: str) -> None:
    from ai_edge_quantizer import qtyping, recipe

    if name == "int8":
        quantizer.load_quantization_recipe(recipe.static_wi8_ai8())
    elif name == "dynamic":
        quantizer.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    elif name == "a16w8":
        quantizer.load_quantization_recipe(recipe.static_wi8_ai16())
    elif name == "mixed":
        quantizer.add_static_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 8, 8)
    else:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")


def needs_calibration(name: str) -> bool:
    return name != "dynamic"


def quantize_tflite(float_model: bytes, name: str, samples: list, signature: str = "serving_default") -> bytes:
    """Quantized flatbuffer of ``float_model`` under recipe ``name``; ``samples`` are signature input dicts."""
    from ai_edge_quantizer import quantizer

    from quantize.export import quiet

    q = quantizer.Quantizer(bytearray(float_model))
    _recipe_setup(q, name)
    with quiet(), warnings.catch_warnings():
        # The calibrator keeps every tensor on purpose and the interpreter warns that this is for debugging.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        calibration = q.calibrate({signature: samples}, num_threads=1) if q.need_calibration else None
        result = q.quantize(calibration, enable_progress_report=False)
    return bytes(result.quantized_model)
