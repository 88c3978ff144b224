"""A checkpoint folder → an eval-mode model that can stream, its config, and the hash of its weights.

    python -c "from quantize.source import load_source; s = load_source('models/demo'); print(s.config, s.sha256)"

Everything about the folder (config.json, weight file names, slicing, streamability) is read by
``training.checkpoint``, the one checkpoint reader; this module adds only the hash of the weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pxby_edge.errors import CheckpointError


@dataclass
class Source:
    path: Path
    model: object  # torch.nn.Module in eval mode
    config: dict  # model config as stored with the checkpoint (upstream keys)
    objective: str
    sha256: str  # of the weights file, so `sha256sum CKPT/model.safetensors` checks it
    slicing: dict  # tokenizer slicing the model was trained with ({"image": s, "audio": s})
    pxby: dict = field(default_factory=dict)  # our block of config.json ({} for upstream checkpoints)
    vocab: Optional[dict] = None  # the vocabulary the model was trained with (None: the standard one)
    audio_rate: Optional[float] = None  # Hz of its audio tokens, when the checkpoint records it


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_source(path) -> Source:
    from training.checkpoint import (
        KEY_AUDIO_RATE,
        KEY_VOCAB,
        load_checkpoint,
        read_config,
        read_pxby,
        read_slicing,
        weights_path,
    )

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; give the checkpoint folder (config.json + model.safetensors)")
    model = load_checkpoint(path, streamable=True)
    pxby = read_pxby(path)
    vocab, rate = pxby.get(KEY_VOCAB), pxby.get(KEY_AUDIO_RATE)
    return Source(path=path, model=model, config=read_config(path), objective=model.config.objective,
                  sha256=file_sha256(weights_path(path)), slicing=read_slicing(path), pxby=pxby,
                  vocab=vocab if isinstance(vocab, dict) else None, audio_rate=float(rate) if rate else None)
