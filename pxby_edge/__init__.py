"""pxby-edge: run PixelBytes-style multimodal LSTM models token by token on the edge.

    pxby-edge --help

This package is what runs on the Pi: vocabulary and tokenizer, streaming contexts, sampling,
media writers, model manifest, runtime backends and the ``pxby-edge`` command's edge (``cli.py``).
It depends on numpy, pillow, scipy, click and tqdm only (an interpreter when present), and
never imports torch, nor the packages above it (training, quantize, firmware_bridge).
"""

__version__ = "0.1.0"
