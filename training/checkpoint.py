"""Checkpoint folders in the upstream format: ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``).

    python -c "from training.checkpoint import load_checkpoint; m = load_checkpoint('models/demo'); print(m.config, m.num_parameters())"

What we save, upstream's ``aPxBySequenceModel.from_pretrained`` can load: the same config keys
(``dtype``, ``embed_size``, ``hidden_size``, …) and state-dict keys. We add a ``pxby`` block to
``config.json`` (tokenizer slicing and vocabulary, audio rate, dataset notes) so the runtime and the
quantizer know how the training data was tokenized; upstream ignores it. Pickle is never written;
an upstream ``.bin`` is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from training.config import DTYPES, MAX_PARAMETERS, ModelConfig, read_json_object
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
    "ensure_streamable", "atomic_write_bytes", "checked_state_dict", "write_last", "read_last", "last_exists",
    "remove_stale_temps",
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
    """Our block of config.json (slicing, vocab, audio rate), checked; {} for upstream checkpoints."""
    block = read_config(folder).get(PXBY_KEY)
    return {} if block is None else check_pxby(block, f"{Path(folder) / CONFIG_NAME}")


def check_pxby(block, where: str) -> dict:
    """``block`` if it is a pxby block the quantizer and the runtime can use, else CheckpointError.

    The bounds are the manifest's (pxby_edge.manifest), so a checkpoint that loads also quantizes
    into a file the runtime opens."""
    from pxby_edge.manifest import MAX_AUDIO_RATE

    if not isinstance(block, dict):
        raise CheckpointError(f"{where}: {PXBY_KEY!r} must be a JSON object, got {_show(block)}")
    version = block.get(KEY_FORMAT, PXBY_FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where}: {PXBY_KEY}.{KEY_FORMAT} must be a positive integer, got {_show(version)}")
    if version > PXBY_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint pxby block has format {version}, this version reads up to {PXBY_FORMAT_VERSION}; "
            "upgrade pxby-edge"
        )
    if block.get(KEY_SLICING) is not None:
        _slicing(block[KEY_SLICING], f"{where}: {PXBY_KEY}.{KEY_SLICING}")
    for key in (KEY_AUDIO_RATE, KEY_SOURCE_AUDIO_RATE):
        rate = block.get(key)
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or not 1 <= rate <= MAX_AUDIO_RATE):  # also false for NaN
            raise CheckpointError(f"{where}: {PXBY_KEY}.{key} must be a rate in 1..{MAX_AUDIO_RATE:g} Hz, got {_show(rate)}")
    vocab = block.get(KEY_VOCAB)
    if vocab is not None:
        from pxby_edge.vocab import Vocab

        try:
            Vocab.from_dict(vocab)
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CheckpointError(f"{where}: bad {PXBY_KEY}.{KEY_VOCAB} ({exc})") from exc
    return block


def _slicing(value, where: str) -> dict:
    """{"image": s, "audio": s}, each an integer in 1..MAX_SLICING (missing ones are upstream's 1)."""
    from pxby_edge.manifest import MAX_SLICING

    if not isinstance(value, dict) or set(value) - {"image", "audio"}:
        raise CheckpointError(f"{where} must be an object with image and audio, got {_show(value)}")
    out = {}
    for key in ("image", "audio"):
        s = value.get(key, 1)
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_SLICING:
            raise CheckpointError(f"{where}.{key} must be an integer in 1..{MAX_SLICING}, got {_show(s)}")
        out[key] = s
    return out


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_slicing(folder) -> dict:
    """The tokenizer slicing the model was trained with: our block of config.json, else the run's
    train_config.json beside it, else upstream's default (1, 1)."""
    folder = Path(folder)
    slicing = read_pxby(folder).get(KEY_SLICING)
    if slicing is not None:
        return _slicing(slicing, f"{folder / CONFIG_NAME}: {PXBY_KEY}.{KEY_SLICING}")
    if not (folder / TRAIN_CONFIG_NAME).exists():
        return {"image": 1, "audio": 1}
    run = read_json_object(folder / TRAIN_CONFIG_NAME, CheckpointError, missing="")
    block = run.get("train", run)  # train_config.json: {"model": ..., "train": ...}; older runs: flat
    if not isinstance(block, dict):
        raise CheckpointError(f"{folder / TRAIN_CONFIG_NAME}: 'train' must be a JSON object")
    return _slicing({"image": block.get("slicing_image", 1), "audio": block.get("slicing_audio", 1)},
                    f"{folder / TRAIN_CONFIG_NAME}: slicing")


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
    model.load_state_dict(checked_state_dict(_read_state_dict(folder), model, str(folder)))
    return model.eval().to(device)


def checked_state_dict(state: dict, model: PixelBytesLSTM, where: str) -> dict:
    """``state`` as float32 tensors when it fits ``model`` key for key and shape for shape and holds only
    finite numbers; else CheckpointError naming ``where``. (A NaN checkpoint would train, quantize and
    generate NaN without a word.)"""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: weights do not match config.json (missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    out = {}
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{where}: {key} has shape {tuple(value.shape)}, config.json implies {tuple(expected[key].shape)}"
            )
        if value.is_complex() or value.dtype == torch.bool:
            raise CheckpointError(f"{where}: {key} holds {value.dtype} values, not real numbers")
        out[key] = value.float()
        if not torch.isfinite(out[key]).all():
            raise CheckpointError(f"{where}: {key} holds NaN or infinite weights; this checkpoint is broken")
    return out


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


# -- the resume set: ``last/`` -----------------------------------------------------------------------
#
# ``last/`` is written as one set: every file into a fresh hidden folder beside it, its list of files with
# their SHA-256 written last (state.json), then the folder renamed into place (the previous one renamed
# aside first, then deleted). A kill at any point leaves either the new set, the previous one under
# its aside name (found and put back by ``read_last``), or no set yet; never a mix of two steps.

LAST_DIR = "last"
LAST_STATE = "state.json"
KEY_FILES = "files"
MAX_LAST_FILE_BYTES = 3 * 4 * MAX_PARAMETERS + (1 << 24)  # weights, or AdamW's two moments, plus headers
_TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}$")  # what media.atomic_write's mkstemp names
_TEMP_LAST = re.compile(r"^\.last\.[a-z0-9_]{8}\.(partial|old)$")  # write_last's own folders


def write_last(out, files: dict[str, bytes], state: dict) -> Path:
    """``out/last`` holding ``files`` and ``state.json`` (``state`` plus the files' hashes), as one set."""
    out = Path(out)
    state = {**state, KEY_FILES: {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    text = (json.dumps(state, indent=1) + "\n").encode()
    fresh = Path(tempfile.mkdtemp(prefix=".last.", suffix=".partial", dir=out))
    try:
        for name, data in [*files.items(), (LAST_STATE, text)]:
            with open(fresh / name, "xb") as fh:
                fh.write(data)
                os.fsync(fh.fileno())
        os.chmod(fresh, 0o777 & ~_umask())  # mkdtemp's 0700 is for the temporary name only
        _fsync_dir(fresh)
        final = out / LAST_DIR
        aside = None
        if final.exists():
            aside = Path(tempfile.mkdtemp(prefix=".last.", suffix=".old", dir=out))
            os.rename(final, aside)  # onto the empty folder mkdtemp made: an unpredictable, owned name
        os.rename(fresh, final)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    _fsync_dir(out)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return final


def last_exists(out) -> bool:
    """Whether ``out`` holds a resume set (``last/``, or the previous one a kill left moved aside)."""
    out = Path(out)
    if os.path.lexists(out / LAST_DIR / LAST_STATE):  # read_last says what is wrong with one that is not a file
        return True
    return not (out / LAST_DIR).exists() and any(
        _TEMP_LAST.match(p.name) and (p / LAST_STATE).is_file() for p in out.glob(".last.*.old"))


def read_last(out, max_bytes: int = MAX_LAST_FILE_BYTES) -> tuple[dict[str, bytes], dict]:
    """(file name -> bytes, state) of ``out/last``, every file checked against the hash state.json lists.

    When a kill came between moving the previous set aside and renaming the new one in, the previous set
    is put back first. CheckpointError when the set is missing, altered or incomplete."""
    from pxby_edge.errors import MediaError
    from pxby_edge.readers import read_regular_file

    out = Path(out)
    last = out / LAST_DIR
    if not last.exists():
        asides = sorted(p for p in out.glob(".last.*.old") if _TEMP_LAST.match(p.name) and (p / LAST_STATE).is_file())
        if asides:
            os.rename(asides[-1], last)
    state = read_json_object(last / LAST_STATE, CheckpointError,
                             missing=f"nothing to resume in {out} (no {LAST_DIR}/{LAST_STATE}); drop --resume to start fresh")
    listed = state.get(KEY_FILES)
    if not isinstance(listed, dict) or not listed or not all(
            isinstance(k, str) and isinstance(v, str) and "/" not in k and k != LAST_STATE for k, v in listed.items()):
        raise CheckpointError(f"{last}/{LAST_STATE} lists no files: the set is incomplete or was written by an older "
                              f"version; start a new run from its weights with --init {last}")
    files = {}
    for name, digest in listed.items():
        try:
            data = read_regular_file(last / name, max_bytes, "checkpoint file")
        except (OSError, MediaError) as exc:
            raise CheckpointError(f"cannot resume from {last}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise CheckpointError(f"cannot resume from {last}: {name} is not the file {LAST_STATE} lists "
                                  "(truncated or changed after it was written)")
        files[name] = data
    return files, state


def remove_stale_temps(out, names) -> list[str]:
    """Delete what an earlier, killed run of ours left in ``out``: the temporary files ``atomic_write``
    makes for ``names`` and ``write_last``'s temporary folders. Returns the names removed."""
    out = Path(out)
    removed = []
    if not out.is_dir():
        return removed
    with os.scandir(out) as entries:
        for entry in entries:
            m = _TEMP_FILE.match(entry.name)
            if m and m.group("name") in names and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(entry.name)
            elif _TEMP_LAST.match(entry.name) and entry.is_dir(follow_symlinks=False):
                if entry.name.endswith(".old") and not (out / LAST_DIR).exists():
                    continue  # the only copy of the set: read_last puts it back
                shutil.rmtree(entry.path)
                removed.append(entry.name)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
