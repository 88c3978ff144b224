"""Checkpoint folders in the upstream format: ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``).

    python -c "from training.checkpoint import load_checkpoint; m = load_checkpoint('models/demo'); print(m.config, m.num_parameters())"

What we save, upstream's ``aPxBySequenceModel.from_pretrained`` can load: the same config keys
(``dtype``, ``embed_size``, ``hidden_size``, …) and state-dict keys. We add a ``pxby`` block to
``config.json`` (tokenizer slicing and vocabulary, audio rate, dataset notes) so the runtime and the
quantizer know how the training data was tokenized; upstream ignores it. Pickle is never written;
an upstream ``.bin`` is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from training.config import DTYPES, ModelConfig, read_json_object
from training.errors import CheckpointError, ConfigError
from training.model import PixelBytesLSTM, ensure_streamable

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
BIN_NAME = "pytorch_model.bin"
# Keys of our block inside config.json.
PXBY_KEY = "pxby"
PXBY_FORMAT_VERSION = 1
KEY_FORMAT = "format_version"
KEY_SLICING = "data_slicing"
KEY_VOCAB = "vocab"
KEY_AUDIO_RATE = "audio_rate"  # Hz of the audio tokens (source rate / audio slicing), as the runtime manifest means it
KEY_SOURCE_AUDIO_RATE = "source_audio_rate"  # Hz of the dataset's audio files before slicing

TRAIN_CONFIG_NAME = "train_config.json"  # how the run was trained, beside the weights (training.train writes it)

__all__ = [
    "load_checkpoint", "save_checkpoint", "read_config", "read_pxby", "read_slicing", "weights_path",
    "ensure_streamable", "atomic_write_bytes",
]


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write a file all at once (temp file in the same folder, then rename); callers check overwrites."""
    from pxby_edge.atomic import atomic_write

    return atomic_write(path, data, overwrite=True)


def read_config(folder) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}")
    return read_json_object(folder / CONFIG_NAME, CheckpointError,
                            missing=f"{folder} holds no {CONFIG_NAME}: not a checkpoint folder")


def read_pxby(folder) -> dict:
    """Our block of config.json (slicing, vocab, audio rate); {} for upstream checkpoints."""
    block = read_config(folder).get(PXBY_KEY) or {}
    version = int(block.get(KEY_FORMAT, PXBY_FORMAT_VERSION))
    if version > PXBY_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint pxby block has format {version}, this version reads up to {PXBY_FORMAT_VERSION}; "
            "upgrade pxby-edge"
        )
    return block


def read_slicing(folder) -> dict:
    """The tokenizer slicing the model was trained with: our block of config.json, else the run's
    train_config.json beside it, else upstream's default (1, 1)."""
    folder = Path(folder)
    slicing = read_pxby(folder).get(KEY_SLICING)
    if isinstance(slicing, dict):
        return {"image": int(slicing.get("image", 1)), "audio": int(slicing.get("audio", 1))}
    try:
        run = json.loads((folder / TRAIN_CONFIG_NAME).read_text())
        block = run.get("train", run)  # train_config.json: {"model": ..., "train": ...}; older runs: flat
        return {"image": int(block.get("slicing_image", 1)), "audio": int(block.get("slicing_audio", 1))}
    except (OSError, ValueError, TypeError, AttributeError):
        return {"image": 1, "audio": 1}


def weights_path(folder) -> Path:
    """The weights file of a checkpoint folder (safetensors first, then upstream's .bin)."""
    folder = Path(folder)
    for name in (SAFETENSORS_NAME, BIN_NAME):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder} holds neither {SAFETENSORS_NAME} nor {BIN_NAME}")


def _read_state_dict(folder: Path) -> dict:
    path = weights_path(folder)
    try:
        if path.name == SAFETENSORS_NAME:
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        # Upstream's older checkpoints; weights_only refuses anything but tensors.
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files surface as many exception types
        raise CheckpointError(f"cannot read the weights in {folder}: {exc}") from exc


def load_checkpoint(folder, device="cpu", streamable: bool = False) -> PixelBytesLSTM:
    """The model of a checkpoint folder (ours or upstream's), float32, in eval mode.

    ``streamable=True`` also refuses bidirectional and diffusion checkpoints, from config.json alone,
    before the weights are read (``ensure_streamable``).
    """
    folder = Path(folder)
    raw = read_config(folder)
    dtype = raw.get("dtype") or raw.get("torch_dtype") or "float32"
    if dtype not in DTYPES:
        raise CheckpointError(f"{folder}: unsupported dtype {dtype!r}; expected one of {DTYPES}")
    try:
        config = ModelConfig.from_dict(raw, strict=False)
    except (ConfigError, TypeError, ValueError) as exc:  # wrong types in the JSON land here too
        raise CheckpointError(f"{folder}/{CONFIG_NAME}: {exc}") from exc
    if streamable:
        ensure_streamable(config, where=str(folder))
    model = PixelBytesLSTM(config)
    state = _read_state_dict(folder)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{folder}: weights do not match config.json (missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{folder}: {key} has shape {tuple(value.shape)}, config.json implies {tuple(expected[key].shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval().to(device)


def config_json(model: PixelBytesLSTM, pxby: dict | None = None) -> dict:
    """config.json as upstream writes it (so ``from_pretrained`` takes it) plus our ``pxby`` block."""
    c = model.config
    data = {
        "architectures": ["aPxBySequenceModel"],
        "bidirection": bool(c.bidirection),
        "custom_model": None,
        "dtype": "float32",
        "embed_size": c.pxby_emb * c.pxby_dim,
        "hidden_size": c.hidden_size,
        "model_type": "lstm",
        "num_diffusion_steps": c.num_diffusion_steps,
        "num_layers": c.num_layers,
        "objective": c.objective,
        "pxby_dim": c.pxby_dim,
        "pxby_emb": c.pxby_emb,
        "vocab_size": c.vocab_size,
    }
    if pxby is not None:
        data[PXBY_KEY] = {KEY_FORMAT: PXBY_FORMAT_VERSION, **pxby}
    return data


def save_checkpoint(model, folder, pxby: dict | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (float32) into ``folder``; each file atomically.

    The weights are written first, so a reader never finds a config without its weights.
    """
    from safetensors.torch import save

    model = getattr(model, "module", model)  # unwrap DDP
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / SAFETENSORS_NAME, save(state, metadata={"format": "pt"}))
    text = json.dumps(config_json(model, pxby), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(folder / CONFIG_NAME, text.encode())
    return folder
