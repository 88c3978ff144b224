"""Checkpoint → one streaming step graph → float/int8 TFLite (+ ONNX) with a manifest and a fidelity report.

    pxby-edge quantize models/demo -o model.tflite --report report.json

Modules, in the order the pipeline runs them: ``source`` (load and hash a checkpoint), ``step`` (the
explicit-state step module), ``calibrate`` (teacher-forced (context, h, c) triples), ``export`` (float
TFLite and ONNX), ``recipes`` (ai-edge-quantizer recipes), ``rounding`` (GPTQ integer rounding), ``metadata`` (manifest into the file),
``fidelity`` (float vs quantized figures), ``pipeline`` (all of it for one checkpoint), ``commands``
(the click command).
"""
