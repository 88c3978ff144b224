"""Training side of pxby-edge: the PixelBytes LSTM in PyTorch, upstream-format checkpoints, datasets.

    pxby-edge dataset synth --n 64 --out runs/synth && pxby-edge train --data runs/synth --out runs/ckpt --config small --epochs 1

Nothing here is imported by ``pxby_edge`` (the Pi runtime never needs torch). The checkpoint records what
the runtime must not guess: the slicing, the vocabulary and the dataset's audio rate (``audio_rate.py``).
"""
