"""The model-file manifest: everything the runtime needs besides the weights, stored inside the .tflite.

    python -c "from pxby_edge.manifest import read_manifest; print(read_manifest('pxby_edge/assets/demo.tflite').to_json())"

One type, written by ``quantize`` and read by the runtime and ``pxby-edge inspect``. It travels as
UTF-8 JSON in the TFLite model metadata under ``MANIFEST_METADATA_NAME`` and is read back with the
pure-Python reader in ``pxby_edge.tflite_file`` (no interpreter, no torch). The format has a version
"major.minor": a reader refuses a newer major (the layout changed) and accepts a newer minor (keys were
only added; those it does not know are kept as they are in ``extra`` so nothing is lost on a re-write).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

from pxby_edge.constants import MAX_AUDIO_RATE
from pxby_edge.errors import ManifestError
from pxby_edge.vocab import MAX_VOCAB, Vocab

FORMAT_VERSION = "1.1"  # 1.1: the optional "geometry" section
MANIFEST_METADATA_NAME = "pxby_edge_manifest"

# Top-level JSON keys (the only place they are spelled).
KEY_FORMAT_VERSION = "format_version"
KEY_PXBY_EDGE_VERSION = "pxby_edge_version"
KEY_VOCAB = "vocab"
KEY_SLICING = "slicing"
KEY_AUDIO_RATE = "audio_rate"
KEY_MODEL = "model"
KEY_OBJECTIVE = "objective"
KEY_BATCH = "batch"
KEY_SLOTS = "slots"
KEY_RECIPE = "recipe"
KEY_SIGNATURE = "signature"
KEY_INPUTS = "inputs"
KEY_OUTPUTS = "outputs"
KEY_CALIBRATION = "calibration"
KEY_FIDELITY = "fidelity"
KEY_CHECKPOINT_SHA256 = "checkpoint_sha256"
KEY_EXTRA = "extra"
KEY_GEOMETRY = "geometry"  # since 1.1, optional: what the training data's segments measured

# Keys of the geometry section: [min, max] over the training items (text in tokens, audio in samples
# per channel, sprites in pixels and frames), plus how many items and where they came from.
GEOMETRY_TEXT_TOKENS = "text_tokens"
GEOMETRY_IMAGE_WIDTH = "image_width"
GEOMETRY_IMAGE_HEIGHT = "image_height"
GEOMETRY_IMAGE_FRAMES = "image_frames"
GEOMETRY_AUDIO_SAMPLES = "audio_samples"
GEOMETRY_RANGES = (GEOMETRY_TEXT_TOKENS, GEOMETRY_IMAGE_WIDTH, GEOMETRY_IMAGE_HEIGHT, GEOMETRY_IMAGE_FRAMES,
                   GEOMETRY_AUDIO_SAMPLES)
GEOMETRY_ITEMS = "items"
GEOMETRY_SOURCE = "source"

# What a manifest may hold before anything is allocated from it: bounds far above any model this
# runtime can step on a Pi, so they refuse only files that are corrupt or hostile.
MAX_MANIFEST_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_BATCH = 1024
MAX_LAYERS = 64
MAX_HIDDEN = 1 << 16
MAX_DIM = 1 << 20  # one tensor dimension
MAX_ELEMENTS = 1 << 28  # one tensor's element count
MAX_SLICING = 1 << 16
MAX_TENSORS = 16
MAX_SEGMENT = 1 << 24  # a geometry bound: tokens, pixels, frames or samples
DTYPES = ("float32", "float16", "int8", "int16", "int32", "uint8", "int64")
# The stored range of each integer dtype a quantized tensor may have.
INT_LIMITS = {"int8": (-128, 127), "int16": (-32768, 32767), "uint8": (0, 255)}

# Signature names of the step graph's tensors (stable: the runtime binds state by these names).
INPUT_CONTEXT = "context"  # int32 (B, 6)
INPUT_H = "h0"  # (L, B, H) hidden state going in
INPUT_C = "c0"  # (L, B, H) cell state going in
OUTPUT_LOGITS = "logits"  # (B, 6, V) autoregressive or (B, 1, V) predict
OUTPUT_H = "h1"
OUTPUT_C = "c1"
INPUT_NAMES = (INPUT_CONTEXT, INPUT_H, INPUT_C)
OUTPUT_NAMES = (OUTPUT_LOGITS, OUTPUT_H, OUTPUT_C)
# Which output feeds which input on the next step.
STATE_PAIRS = {OUTPUT_H: INPUT_H, OUTPUT_C: INPUT_C}

RECIPES = ("float", "int8", "dynamic", "a16w8", "mixed")
OBJECTIVES = ("autoregressive", "predict")


@dataclass(frozen=True)
class TensorSpec:
    """One signature input or output: where it is in the graph and how its numbers are stored.

    ``scale`` 0.0 means not quantized (float32 / int32 tensors), the interpreter's own convention;
    real = scale * (q - zero_point) otherwise.
    """

    name: str  # signature name, one of INPUT_NAMES / OUTPUT_NAMES
    tensor: str  # tensor name inside the graph
    index: int  # tensor index in the signature's subgraph
    shape: tuple[int, ...]
    dtype: str  # numpy-style: float32, int8, int16, int32
    scale: float = 0.0
    zero_point: int = 0

    def to_dict(self) -> dict:
        return {"name": self.name, "tensor": self.tensor, "index": self.index, "shape": list(self.shape),
                "dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_dict(cls, d: Any) -> TensorSpec:
        """A spec from its JSON form, every field type- and range-checked (ManifestError otherwise)."""
        d = _object(d, "tensor entry")
        name = _text(d.get("name"), "tensor name")
        what = f"tensor {name!r}"
        dtype = d.get("dtype")
        if dtype not in DTYPES:
            raise ManifestError(f"manifest {what} has dtype {_show(dtype)}; expected one of {', '.join(DTYPES)}")
        shape = _shape(d.get("shape"), what)
        scale = _number(d.get("scale", 0.0), f"{what} scale", 0.0, 1e30)
        zero_point = _integer(d.get("zero_point", 0), f"{what} zero point", -(1 << 63), (1 << 63) - 1)
        if scale and dtype in INT_LIMITS and not INT_LIMITS[dtype][0] <= zero_point <= INT_LIMITS[dtype][1]:
            raise ManifestError(f"manifest {what} zero point {zero_point} is outside the {dtype} range")
        return cls(name=name, tensor=_text(d.get("tensor"), f"{what} graph name"),
                   index=_integer(d.get("index"), f"{what} index", 0, (1 << 31) - 1),
                   shape=shape, dtype=dtype, scale=scale, zero_point=zero_point)

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


@dataclass(frozen=True)
class Manifest:
    """What a model file is: its tokenizer, model, recipe, tensor bindings and how faithful it is."""

    vocab: Vocab
    slicing: dict  # {"image": s, "audio": s}
    model: dict  # the checkpoint's model config (vocab_size, embed_size, hidden_size, num_layers, ...)
    objective: str
    batch: int
    recipe: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    signature: str = "serving_default"
    slots: int = 6  # logits slots per step: 6 (autoregressive) or 1 (predict)
    audio_rate: Optional[float] = None  # Hz of audio tokens, None: 16000 / slicing["audio"]
    calibration: dict = field(default_factory=dict)
    fidelity: dict = field(default_factory=dict)
    checkpoint_sha256: str = ""
    pxby_edge_version: str = ""
    format_version: str = FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # keys of a newer minor version, kept verbatim
    geometry: dict = field(default_factory=dict)  # GEOMETRY_* ranges of the training data; {} when unknown

    # -- lookups the runtime uses -----------------------------------------------------------

    @property
    def num_layers(self) -> int:
        return int(self.model["num_layers"])

    @property
    def hidden_size(self) -> int:
        return int(self.model["hidden_size"])

    @property
    def vocab_size(self) -> int:
        return int(self.model.get("vocab_size", self.vocab.size))

    def input(self, name: str) -> TensorSpec:
        return _spec(self.inputs, name, "input")

    def output(self, name: str) -> TensorSpec:
        return _spec(self.outputs, name, "output")

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        d = {
            KEY_FORMAT_VERSION: self.format_version,
            KEY_PXBY_EDGE_VERSION: self.pxby_edge_version,
            KEY_VOCAB: self.vocab.to_dict(),
            KEY_SLICING: dict(self.slicing),
            KEY_AUDIO_RATE: self.audio_rate,
            KEY_MODEL: dict(self.model),
            KEY_OBJECTIVE: self.objective,
            KEY_BATCH: self.batch,
            KEY_SLOTS: self.slots,
            KEY_RECIPE: self.recipe,
            KEY_SIGNATURE: self.signature,
            KEY_INPUTS: [s.to_dict() for s in self.inputs],
            KEY_OUTPUTS: [s.to_dict() for s in self.outputs],
            KEY_CALIBRATION: dict(self.calibration),
            KEY_FIDELITY: dict(self.fidelity),
            KEY_CHECKPOINT_SHA256: self.checkpoint_sha256,
        }
        if self.geometry:
            d[KEY_GEOMETRY] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.geometry.items()}
        if self.extra:
            d[KEY_EXTRA] = dict(self.extra)
        return d

    def bound(self, key: str) -> Optional[int]:
        """The largest value of a GEOMETRY_* range the training data held, None when unknown."""
        pair = self.geometry.get(key)
        return int(pair[1]) if pair else None

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, allow_nan=False)

    def to_bytes(self) -> bytes:
        return self.to_json().encode("utf-8")

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        """A manifest from its JSON form. Every field is checked for type, range and finiteness here,
        before a backend allocates anything from it: a file that does not fit is a ManifestError."""
        if not isinstance(d, dict):
            raise ManifestError("the manifest is not a JSON object; re-run `pxby-edge quantize` to make the file")
        version, minor = _check_version(d.get(KEY_FORMAT_VERSION))
        extra = _extra_keys(d, version, minor)
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise ManifestError(f"manifest lacks {missing}; re-run `pxby-edge quantize` to remake the file")
        vocab = _vocab(d[KEY_VOCAB])
        objective = d[KEY_OBJECTIVE]
        if objective not in OBJECTIVES:
            raise ManifestError(f"manifest objective {_show(objective)} cannot stream; expected one of {OBJECTIVES}")
        slots = _integer(d.get(KEY_SLOTS, 6 if objective == "autoregressive" else 1), "slots", 1, 6)
        if slots != (6 if objective == "autoregressive" else 1):
            raise ManifestError(f"manifest slots {slots} do not fit objective {objective}")
        recipe = d[KEY_RECIPE]
        if recipe not in RECIPES:
            raise ManifestError(f"manifest recipe {_show(recipe)} is not one of {', '.join(RECIPES)}")
        return cls(
            vocab=vocab,
            slicing=_slicing(d[KEY_SLICING]),
            model=_model_config(d[KEY_MODEL], vocab),
            objective=objective,
            batch=_integer(d[KEY_BATCH], "batch", 1, MAX_BATCH),
            recipe=recipe,
            inputs=_specs(d[KEY_INPUTS], "inputs"),
            outputs=_specs(d[KEY_OUTPUTS], "outputs"),
            signature=_text(d.get(KEY_SIGNATURE, "serving_default"), "signature"),
            slots=slots,
            audio_rate=_audio_rate(d.get(KEY_AUDIO_RATE)),
            calibration=_free_object(d.get(KEY_CALIBRATION), "calibration"),
            fidelity=_free_object(d.get(KEY_FIDELITY), "fidelity"),
            checkpoint_sha256=_text(d.get(KEY_CHECKPOINT_SHA256, ""), "checkpoint sha256"),
            pxby_edge_version=_text(d.get(KEY_PXBY_EDGE_VERSION, ""), "pxby-edge version"),
            format_version=version,
            extra=extra,
            geometry=_geometry(d.get(KEY_GEOMETRY), minor),
        )

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> Manifest:
        if len(text) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"the manifest is {len(text)} bytes, more than the {MAX_MANIFEST_BYTES} a manifest may be")
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ManifestError(f"the manifest is not valid JSON ({exc}); re-run `pxby-edge quantize`") from exc
        except RecursionError:
            raise ManifestError("the manifest's JSON is nested too deeply; the file is corrupt") from None
        return cls.from_dict(data)

    def replace(self, **changes) -> Manifest:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Manifest(**values)


def _spec(specs, name: str, kind: str) -> TensorSpec:
    for s in specs:
        if s.name == name:
            return s
    raise ManifestError(f"the manifest has no {kind} named {name!r} (has {[s.name for s in specs]})")


def _parse_version(version) -> tuple[int, int]:
    try:
        major, minor = str(version).split(".")
        return int(major), int(minor)
    except (TypeError, ValueError):
        raise ManifestError(
            f"manifest format version {_show(version)} is not 'major.minor'; re-run `pxby-edge quantize` to remake the file"
        ) from None


# -- field checks: each returns the field's value or raises ManifestError naming it -----------------------

_REQUIRED = (KEY_VOCAB, KEY_SLICING, KEY_MODEL, KEY_OBJECTIVE, KEY_BATCH, KEY_RECIPE, KEY_INPUTS, KEY_OUTPUTS)
_KNOWN = frozenset({
    KEY_FORMAT_VERSION, KEY_PXBY_EDGE_VERSION, KEY_VOCAB, KEY_SLICING, KEY_AUDIO_RATE, KEY_MODEL,
    KEY_OBJECTIVE, KEY_BATCH, KEY_SLOTS, KEY_RECIPE, KEY_SIGNATURE, KEY_INPUTS, KEY_OUTPUTS,
    KEY_CALIBRATION, KEY_FIDELITY, KEY_CHECKPOINT_SHA256, KEY_EXTRA, KEY_GEOMETRY,
})


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_version(version) -> tuple[str, int]:
    """(version text, minor) of a version this reader takes; ManifestError naming what to re-run otherwise."""
    major, minor = _parse_version(version)
    our_major, _ = _parse_version(FORMAT_VERSION)
    if major > our_major:
        raise ManifestError(
            f"the model file's manifest is format {version}, newer than this pxby-edge reads "
            f"({our_major}.x); upgrade pxby-edge, or re-run `pxby-edge quantize` with this version to remake the file"
        )
    if major < our_major:
        raise ManifestError(
            f"the model file's manifest is format {version}, older than this pxby-edge reads "
            f"({our_major}.x); re-run `pxby-edge quantize` on its checkpoint to remake the file"
        )
    return f"{major}.{minor}", minor


def _extra_keys(d: dict, version: str, minor: int) -> dict:
    """Keys a newer minor version added, kept verbatim; unknown keys at our minor or older are corruption."""
    extra = _free_object(d.get(KEY_EXTRA), "extra")
    unknown = sorted(set(d) - _KNOWN)
    if unknown:
        if minor <= _parse_version(FORMAT_VERSION)[1]:
            raise ManifestError(f"unknown manifest keys {unknown[:5]} in format {version}; the file is corrupt")
        extra.update({k: d[k] for k in unknown})
    return extra


def _integer(value, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"manifest {what} must be an integer, got {_show(value)}")
    if not lo <= value <= hi:
        raise ManifestError(f"manifest {what} {value} is outside {lo}..{hi}")
    return value


def _number(value, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ManifestError(f"manifest {what} must be a number, got {_show(value)}")
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ManifestError(f"manifest {what} {value} is not a finite number in [{lo:g}, {hi:g}]")
    return value


def _text(value, what: str, limit: int = 256) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ManifestError(f"manifest {what} must be a string of at most {limit} characters, got {_show(value)}")
    return value


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ManifestError(f"manifest {what} must be a JSON object, got {_show(value)}")
    return value


def _free_object(value, what: str) -> dict:
    """A section whose content is informational (calibration, fidelity, extra): an object of bounded depth."""
    if value is None:
        return {}
    _object(value, what)
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ManifestError(f"manifest {what} is nested more than {MAX_JSON_DEPTH} deep; the file is corrupt")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack += [(c, depth + 1) for c in children if isinstance(c, (dict, list))]
    return dict(value)


def _vocab(value) -> Vocab:
    _object(value, "vocabulary")
    try:
        return Vocab.from_dict(value)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ManifestError(f"bad vocabulary in manifest: {exc}") from None


def _slicing(value) -> dict:
    _object(value, "slicing")
    if set(value) - {"image", "audio"}:
        raise ManifestError(f"manifest slicing has keys {sorted(value)[:4]}; expected image and audio")
    return {k: _integer(v, f"slicing[{k}]", 1, MAX_SLICING) for k, v in value.items()}


def _model_config(value, vocab: Vocab) -> dict:
    model = dict(_object(value, "model"))
    _integer(model.get("num_layers"), "model num_layers", 1, MAX_LAYERS)
    _integer(model.get("hidden_size"), "model hidden_size", 1, MAX_HIDDEN)
    size = _integer(model.get("vocab_size", vocab.size), "model vocab_size", 1, MAX_VOCAB)
    if size != vocab.size:
        raise ManifestError(f"manifest model vocab_size {size} does not match the vocabulary's {vocab.size} tokens")
    return model


def _shape(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 8:
        raise ManifestError(f"manifest {what} shape must be a list of at most 8 sizes, got {_show(value)}")
    shape = tuple(_integer(x, f"{what} dimension", 1, MAX_DIM) for x in value)
    if math.prod(shape) > MAX_ELEMENTS:
        raise ManifestError(f"manifest {what} shape {list(shape)} holds more than {MAX_ELEMENTS} elements")
    return shape


def _specs(value, what: str) -> tuple[TensorSpec, ...]:
    if not isinstance(value, list) or len(value) > MAX_TENSORS:
        raise ManifestError(f"manifest {what} must be a list of at most {MAX_TENSORS} tensors, got {_show(value)}")
    specs = tuple(TensorSpec.from_dict(s) for s in value)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ManifestError(f"manifest {what} name a tensor twice: {names}")
    return specs


def _audio_rate(value) -> Optional[float]:
    return None if value is None else _number(value, "audio_rate", 1.0, MAX_AUDIO_RATE)


def _geometry(value, minor: int) -> dict:
    if value is None:
        return {}
    _object(value, "geometry")
    out: dict = {}
    for key, pair in value.items():
        if key in GEOMETRY_RANGES:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ManifestError(f"manifest geometry {key} must be [min, max], got {_show(pair)}")
            lo, hi = (_integer(x, f"geometry {key}", 0, MAX_SEGMENT) for x in pair)
            if lo > hi:
                raise ManifestError(f"manifest geometry {key} has min {lo} above max {hi}")
            out[key] = (lo, hi)
        elif key == GEOMETRY_ITEMS:
            out[key] = _integer(pair, "geometry items", 0, MAX_SEGMENT)
        elif key == GEOMETRY_SOURCE:
            out[key] = _text(pair, "geometry source", 1024)
        elif minor <= _parse_version(FORMAT_VERSION)[1]:
            raise ManifestError(f"unknown manifest geometry key {_show(key)}; the file is corrupt")
    return out


def read_manifest(source: Union[str, Path, bytes, bytearray, memoryview, Any]) -> Manifest:
    """The manifest of a model file (a path, the file's bytes, or an open ``TFLiteFile``)."""
    from pxby_edge.tflite_file import TFLiteFile

    if isinstance(source, TFLiteFile):
        model = source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        model = TFLiteFile(source)
    else:
        model = TFLiteFile.open(source)
    raw = model.metadata.get(MANIFEST_METADATA_NAME)
    if raw is None:
        raise ManifestError(
            f"{model.source} has no pxby-edge manifest (metadata {MANIFEST_METADATA_NAME!r}); "
            "make the model file with `pxby-edge quantize CHECKPOINT -o FILE.tflite`"
        )
    return Manifest.from_json(raw)


__all__ = [
    "FORMAT_VERSION", "MANIFEST_METADATA_NAME", "Manifest", "TensorSpec", "read_manifest",
]
