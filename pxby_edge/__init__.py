"""pxby-edge: run PixelBytes-style multimodal LSTM models token by token on the edge.

    pxby-edge --help

This package is what runs on the Pi: vocabulary and tokenizer, streaming contexts, sampling,
media writers, model manifest and runtime backends. It depends on numpy, pillow, scipy and
click only, and never imports torch.
"""

__version__ = "0.1.0"
