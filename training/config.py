"""Model and training configuration: dataclasses, presets stored as data files, unknown keys refused.

    python -c "from training.config import load_preset; m, t = load_preset('small'); print(m, t)"

``ModelConfig`` is what a checkpoint's ``config.json`` holds (the upstream keys, so upstream code can load
our checkpoints); ``TrainConfig`` is how a run was trained (stored beside it as ``train_config.json``).
A preset (``training/presets/NAME.json``) or a user file holds ``{"model": {...}, "train": {...}}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pxby_edge.manifest import MAX_HIDDEN, MAX_LAYERS, MAX_SLICING
from pxby_edge.vocab import MAX_VOCAB
from training.errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parent / "presets"
OBJECTIVES = ("predict", "autoregressive", "diffusion")
DTYPES = ("float32", "float16", "bfloat16")

# Bounds of the numbers a config may hold. The model's match what the runtime's manifest accepts
# (pxby_edge.manifest), so whatever trains can also be quantized and run.
MODEL_INT_RANGES = {
    "vocab_size": (1, MAX_VOCAB), "embed_size": (1, 1 << 16), "hidden_size": (1, MAX_HIDDEN),
    "num_layers": (1, MAX_LAYERS), "pxby_dim": (1, 64), "num_diffusion_steps": (1, 1 << 16),
}
MAX_PARAMETERS = 1 << 28  # 1 GiB of float32 weights; far above any model a Pi or a Game Boy link can stream
TRAIN_INT_RANGES = {
    "seq_len": (2, 1 << 16), "stride": (1, 1 << 30), "batch_size": (1, 1 << 12), "warmup_steps": (0, 1 << 40),
    "grad_accum": (1, 1 << 12), "epochs": (0, 1 << 30), "max_steps": (0, 1 << 40), "eval_every": (1, 1 << 40),
    "eval_batches": (0, 1 << 40), "slicing_image": (1, MAX_SLICING), "slicing_audio": (1, MAX_SLICING),
    "head_repeat": (0, 1 << 12), "seed": (0, (1 << 64) - 1), "num_threads": (0, 1 << 12), "qat_bits": (0, 4),
}
# name -> (low, low included, high): finite numbers only.
TRAIN_FLOAT_RANGES = {
    "lr": (0.0, False, 1e3), "min_lr": (0.0, True, 1e3), "weight_decay": (0.0, True, 1e3),
    "grad_clip": (0.0, True, 1e9), "max_minutes": (0.0, True, 1e9), "val_fraction": (0.0, True, 1.0 - 1e-9),
    "pad_weight": (0.0, True, 1e6),
}


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {_show(value)}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} {value} is outside {lo}..{hi}")


def _train_problems(cfg) -> list[tuple[str, str]]:
    """(field, what it must be) for every out-of-range setting of a TrainConfig."""
    problems = []
    for name, (lo, hi) in TRAIN_INT_RANGES.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            problems.append((name, f"an integer in {lo}..{hi}"))
    for name, (lo, lo_ok, hi) in TRAIN_FLOAT_RANGES.items():
        value = getattr(cfg, name)
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if not (ok and (lo <= value if lo_ok else lo < value) and value <= hi):
            problems.append((name, f"a finite number in {'[' if lo_ok else '('}{lo:g}, {hi:g}]"))
    return problems

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
        # config.json is untrusted (a downloaded checkpoint): types and ranges are checked here, and the
        # parameter count before any tensor is allocated from these numbers.
        if not isinstance(self.objective, str) or self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {OBJECTIVES}, got {_show(self.objective)}")
        if not isinstance(self.bidirection, bool):
            raise ConfigError(f"bidirection must be true or false, got {_show(self.bidirection)}")
        for name, (lo, hi) in MODEL_INT_RANGES.items():
            _check_int(name, getattr(self, name), lo, hi)
        if self.embed_size < self.pxby_dim:
            raise ConfigError(f"embed_size ({self.embed_size}) must be >= pxby_dim ({self.pxby_dim})")
        if self.parameter_count() > MAX_PARAMETERS:
            raise ConfigError(
                f"this model config implies {self.parameter_count():,} parameters, more than the {MAX_PARAMETERS:,} "
                "this tool trains or loads; check hidden_size, num_layers, embed_size and vocab_size"
            )

    def parameter_count(self) -> int:
        """What ``PixelBytesLSTM(self)`` will hold, computed without allocating it."""
        dirs = 2 if self.bidirection else 1
        emb = self.embed_size // self.pxby_dim
        h = self.hidden_size
        lstm = 0
        for layer in range(self.num_layers):
            inputs = emb * self.pxby_dim if layer == 0 else h * dirs
            lstm += dirs * (4 * h * (inputs + h) + 8 * h)
        n_out = self.vocab_size * (1 if self.objective == "predict" else self.pxby_dim)
        return self.vocab_size * emb + lstm + (h * dirs + 1) * n_out

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
        objective = data.get("objective")
        if isinstance(objective, int) and not isinstance(objective, bool):  # upstream's constructor takes an index
            if not 0 <= objective < len(OBJECTIVES):
                raise ConfigError(f"objective index {objective} is outside 0..{len(OBJECTIVES) - 1} {OBJECTIVES}")
            data["objective"] = OBJECTIVES[objective]
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
    qat_bits: int = 0  # 4: train the weight matrices on the int4 grid (training.qat); 0: float
    extra: dict = field(default_factory=dict)  # free-form notes stored with the run

    def __post_init__(self):
        # Every number must be of its type, finite and in range: an inf learning rate or a NaN min_lr
        # would train to NaN weights and still "finish" (issue 21).
        bad = [f"{k}={_show(getattr(self, k))} ({want})" for k, want in _train_problems(self)]
        if self.qat_bits in (1, 2, 3):
            bad.append(f"qat_bits={_show(self.qat_bits)} (0 or 4)")
        if not isinstance(self.extra, dict):
            bad.append(f"extra={_show(self.extra)} (a JSON object)")
        if bad:
            raise ConfigError(f"invalid training settings: {', '.join(bad)}")

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


MAX_JSON_BYTES = 1 << 20  # a config.json, train_config.json or state.json: a few kB when real


def read_json_object(path: Path, error, *, missing: str, what: str = "") -> dict:
    """The JSON object in ``path``; ``error`` (a PxbyError class) with one line when it is absent
    (``missing``), not a regular file, larger than ``MAX_JSON_BYTES``, unreadable, nested too deep or
    not an object."""
    from pxby_edge.errors import MediaError
    from pxby_edge.readers import read_regular_file

    try:
        data = json.loads(read_regular_file(path, MAX_JSON_BYTES, "JSON file"))
    except FileNotFoundError as exc:
        raise error(missing) from exc
    except MediaError as exc:
        raise error(str(exc)) from exc
    except RecursionError as exc:  # json nests by recursion: a 100,000-deep file lands here
        raise error(f"cannot read {what}{path}: JSON nested too deep") from exc
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {what}{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{what}{path} must hold a JSON object")
    return data
