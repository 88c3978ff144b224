"""A checkpoint folder → an eval-mode model that can stream, its config, and the hash of its weights.

    python -c "from quantize.source import load_source; s = load_source('models/demo'); print(s.config, s.sha256)"

Loading goes through ``training.checkpoint.load_checkpoint`` (the one checkpoint reader); only the
checks that matter for streaming (bidirectional, diffusion) and the hash are added here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pxby_edge.errors import CheckpointError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class Source:
    path: Path
    model: object  # torch.nn.Module in eval mode
    config: dict  # model config as stored with the checkpoint (upstream keys)
    objective: str
    sha256: str  # of the weights file, so `sha256sum CKPT/model.safetensors` checks it
    slicing: dict  # tokenizer slicing the model was trained with ({"image": s, "audio": s})


def weights_file(path: Path) -> Path:
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise CheckpointError(f"{path} holds no {' or '.join(WEIGHT_FILES)}; give a checkpoint folder")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_config(path: Path) -> dict:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{path} has no config.json; give a checkpoint folder (config.json + weights)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_path} must hold a JSON object")
    return cfg


def check_streamable(cfg: dict, path) -> str:
    """The objective, if a model with this config can generate one token at a time; else CheckpointError."""
    if cfg.get("bidirection") or cfg.get("bidirectionnal"):
        raise CheckpointError(
            f"{path} is bidirectional: its LSTM reads the future, so it cannot stream token by token; "
            "quantize a unidirectional checkpoint (bidirection false)"
        )
    objective = cfg.get("objective", "autoregressive")
    if isinstance(objective, int):  # upstream's constructor takes an index
        objective = ("predict", "autoregressive", "diffusion")[objective]
    if objective == "diffusion":
        raise CheckpointError(
            f"{path} was trained with the diffusion objective, which does not stream; "
            "quantize an autoregressive or predict checkpoint"
        )
    if objective not in ("autoregressive", "predict"):
        raise CheckpointError(f"{path}: unknown objective {objective!r}")
    return objective


def read_slicing(path: Path) -> dict:
    """Slicing from train_config.json beside the weights when there is one, else upstream's default (1, 1)."""
    train = path / "train_config.json"
    slicing = {"image": 1, "audio": 1}
    if train.is_file():
        try:
            t = json.loads(train.read_text())
            slicing = {"image": int(t.get("slicing_image", 1)), "audio": int(t.get("slicing_audio", 1))}
        except (OSError, ValueError, TypeError, AttributeError):
            pass
    return slicing


def load_source(path) -> Source:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; give the checkpoint folder (config.json + model.safetensors)")
    cfg = read_config(path)
    objective = check_streamable(cfg, path)
    weights = weights_file(path)
    model = _load_model(path)
    model.eval()
    return Source(path=path, model=model, config=cfg, objective=objective, sha256=file_sha256(weights),
                  slicing=read_slicing(path))


def _load_model(path: Path):
    from training.checkpoint import load_checkpoint

    try:
        return load_checkpoint(path, streamable=True)
    except CheckpointError:
        raise
    except Exception as exc:  # a loader that failed on a corrupt file: one line, not a traceback
        raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from exc
