"""tflite-runtime (the older standalone TFLite wheel, for Pi OS images ai-edge-litert does not support).

    python -c "from pxby_edge.backends.tflite import TFLiteRuntimeBackend; print(TFLiteRuntimeBackend('model.tflite'))"

Same interpreter API as ai-edge-litert, so the same binding code (``litert.LiteRTBackend``). The
last release, 2.14, needs numpy < 2: install it in its own environment,
``pip install 'pxby-edge[tflite]'``.
"""

from __future__ import annotations

from pxby_edge.backends.litert import LiteRTBackend


class TFLiteRuntimeBackend(LiteRTBackend):
    name = "tflite"
    module = "tflite_runtime.interpreter"
    install_hint = "pip install 'pxby-edge[tflite]' (installs tflite-runtime, which needs numpy<2)"
