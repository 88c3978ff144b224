"""Model and training configuration: dataclasses, presets stored as data files, unknown keys refused.

    python -c "from training.config import load_preset; m, t = load_preset('small'); print(m, t)"

``ModelConfig`` is what a checkpoint's ``config.json`` holds (the upstream keys, so upstream code can load
our checkpoints); ``TrainConfig`` is how a run was trained (stored beside it as ``train_config.json``).
A preset (``training/presets/NAME.json``) or a user file holds ``{"model": {...}, "train": {...}}``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training.errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parent / "presets"
OBJECTIVES = ("predict", "autoregressive", "diffusion")
DTYPES = ("float32", "float16", "bfloat16")
# Keys upstream's PretrainedConfig writes that carry nothing the model needs; ignored when loading.
UPSTREAM_IGNORED_KEYS = frozenset({
    "architectures", "transformers_version", "custom_model", "model_type", "pxby_emb", "_name_or_path",
    "torch_dtype", "dtype", "pxby", "bidirectionnal",
})


def _from_dict(cls, data: dict, what: str, ignore=frozenset()):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known - set(ignore))
    if unknown:
        raise ConfigError(f"unknown {what} keys {unknown}; valid keys: {sorted(known)}")
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise ConfigError(f"bad {what}: {exc}") from exc


@dataclass(frozen=True)
class ModelConfig:
    """The PixelBytes sequence model. ``hidden_size`` is per direction, as upstream's config.json stores it."""

    vocab_size: int = 151
    embed_size: int = 96  # rounded down to a multiple of pxby_dim (upstream: pxby_emb = E // 6)
    hidden_size: int = 128
    num_layers: int = 2
    pxby_dim: int = 6
    objective: str = "autoregressive"
    bidirection: bool = False
    num_diffusion_steps: int = 5

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("vocab_size", "hidden_size", "num_layers", "pxby_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_size < self.pxby_dim:
            raise ConfigError(f"embed_size ({self.embed_size}) must be >= pxby_dim ({self.pxby_dim})")

    @property
    def pxby_emb(self) -> int:
        return self.embed_size // self.pxby_dim

    @property
    def streamable(self) -> bool:
        return not self.bidirection and self.objective != "diffusion"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["embed_size"] = self.pxby_emb * self.pxby_dim
        return d

    @classmethod
    def from_dict(cls, data: dict, strict: bool = True) -> ModelConfig:
        """``strict=False`` for upstream config.json files (their extra bookkeeping keys are ignored)."""
        data = dict(data)
        if "bidirectionnal" in data and "bidirection" not in data:
            data["bidirection"] = data["bidirectionnal"]
        if isinstance(data.get("objective"), int):  # upstream's constructor takes an index
            data["objective"] = OBJECTIVES[data["objective"]]
        ignore = UPSTREAM_IGNORED_KEYS
        if not strict:
            ignore = ignore | (set(data) - {f.name for f in dataclasses.fields(cls)})
        return _from_dict(cls, data, "model config", ignore)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: data windows, optimiser and schedule, validation, slicing of the tokenizer."""

    seq_len: int = 512  # contexts per window (the model sees seq_len, predicts the next of each)
    stride: int = 384
    batch_size: int = 16
    lr: float = 3e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # 0 turns clipping off
    grad_accum: int = 1
    epochs: int = 10
    max_steps: int = 0  # > 0 stops after that many optimizer steps (schedule spans them)
    max_minutes: float = 0.0  # > 0: a wall-clock budget; the cosine schedule then follows elapsed time
    eval_every: int = 200  # optimizer steps between validations (also at every epoch end)
    eval_batches: int = 0  # > 0: periodic validations use only the first N held-out batches (the last uses all)
    slicing_image: int = 1
    slicing_audio: int = 4
    head_repeat: int = 0  # extra copies per epoch of each item's first window (text -> image), see data.Windows
    val_fraction: float = 0.05
    pad_weight: float = 1.0  # loss weight of class 0 (upstream used 1/120)
    seed: int = 1337
    num_threads: int = 0  # CPU threads for torch; 0 leaves torch's default
    extra: dict = field(default_factory=dict)  # free-form notes stored with the run

    def __post_init__(self):
        checks = {
            "seq_len": self.seq_len >= 2, "stride": self.stride >= 1, "batch_size": self.batch_size >= 1,
            "grad_accum": self.grad_accum >= 1, "epochs": self.epochs >= 0, "lr": self.lr > 0,
            "slicing_image": self.slicing_image >= 1, "slicing_audio": self.slicing_audio >= 1,
            "val_fraction": 0 <= self.val_fraction < 1, "pad_weight": self.pad_weight >= 0,
            "eval_every": self.eval_every >= 1, "max_steps": self.max_steps >= 0,
            "max_minutes": self.max_minutes >= 0, "head_repeat": self.head_repeat >= 0, "eval_batches": self.eval_batches >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid training settings: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")

    @property
    def slicing(self) -> dict:
        return {"image": int(self.slicing_image), "audio": int(self.slicing_audio)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return _from_dict(cls, data, "training config")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name_or_path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """A preset name (``small``, ``upstream``, ``tiny``) or a JSON file with ``model`` and ``train`` blocks."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PRESET_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ConfigError(f"unknown preset {str(name_or_path)!r}; choose one of {preset_names()} or a .json file")
    data = read_json_object(path, ConfigError, missing=f"no such config file: {path}", what="config ")
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ConfigError(f"unknown top-level keys {unknown} in {path}; use 'model' and 'train'")
    return ModelConfig.from_dict(data.get("model", {})), TrainConfig.from_dict(data.get("train", {}))


def read_json_object(path: Path, error, *, missing: str, what: str = "") -> dict:
    """The JSON object in ``path``; ``error`` (a PxbyError class) with one line when it is absent
    (``missing``), unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise error(missing) from exc
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {what}{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{what}{path} must hold a JSON object")
    return data
