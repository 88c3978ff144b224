"""pxby-edge: run PixelBytes-style multimodal LSTM models token by token on the edge.

    pxby-edge --help

This package is what runs on the Pi: vocabulary and tokenizer, streaming contexts, sampling, plans,
generation (``generate.py``: a run yields events and a summary and writes nothing), the output sets
commands leave (``outputs.py`` on ``atomic.py``; file encoders in ``media.py``), untrusted-input readers
(``readers.py``), the speaker filter (``speaker.py``), the facts every layer shares (``constants.py``),
the model manifest, runtime backends and the ``pxby-edge`` command's edge (``cli.py``).
It depends on numpy, pillow, scipy, click and tqdm only (an interpreter when present), and
never imports torch, nor the packages above it (training, quantize, firmware_bridge).
"""

__version__ = "0.1.0"
