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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

from pxby_edge.errors import ManifestError
from pxby_edge.vocab import Vocab

FORMAT_VERSION = "1.0"
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
    def from_dict(cls, d: dict) -> TensorSpec:
        try:
            return cls(name=str(d["name"]), tensor=str(d["tensor"]), index=int(d["index"]),
                       shape=tuple(int(x) for x in d["shape"]), dtype=str(d["dtype"]),
                       scale=float(d.get("scale", 0.0)), zero_point=int(d.get("zero_point", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"bad tensor entry in manifest: {d!r} ({exc})") from exc

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
        if self.extra:
            d[KEY_EXTRA] = dict(self.extra)
        return d

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, allow_nan=False)

    def to_bytes(self) -> bytes:
        return self.to_json().encode("utf-8")

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        if not isinstance(d, dict):
            raise ManifestError("the manifest is not a JSON object; re-run `pxby-edge quantize` to make the file")
        version = d.get(KEY_FORMAT_VERSION)
        major, minor = _parse_version(version)
        our_major, our_minor = _parse_version(FORMAT_VERSION)
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
        known = {
            KEY_FORMAT_VERSION, KEY_PXBY_EDGE_VERSION, KEY_VOCAB, KEY_SLICING, KEY_AUDIO_RATE, KEY_MODEL,
            KEY_OBJECTIVE, KEY_BATCH, KEY_SLOTS, KEY_RECIPE, KEY_SIGNATURE, KEY_INPUTS, KEY_OUTPUTS,
            KEY_CALIBRATION, KEY_FIDELITY, KEY_CHECKPOINT_SHA256, KEY_EXTRA,
        }
        unknown = sorted(set(d) - known)
        extra = dict(d.get(KEY_EXTRA) or {})
        if unknown:
            if minor <= our_minor:
                raise ManifestError(f"unknown manifest keys {unknown} in format {version}; the file is corrupt")
            extra.update({k: d[k] for k in unknown})
        required = (KEY_VOCAB, KEY_SLICING, KEY_MODEL, KEY_OBJECTIVE, KEY_BATCH, KEY_RECIPE, KEY_INPUTS, KEY_OUTPUTS)
        missing = [k for k in required if k not in d]
        if missing:
            raise ManifestError(f"manifest lacks {missing}; re-run `pxby-edge quantize` to remake the file")
        try:
            vocab = Vocab.from_dict(d[KEY_VOCAB])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"bad vocabulary in manifest: {exc}") from exc
        objective = d[KEY_OBJECTIVE]
        if objective not in OBJECTIVES:
            raise ManifestError(f"manifest objective {objective!r} cannot stream; expected one of {OBJECTIVES}")
        try:
            return cls(
                vocab=vocab,
                slicing={str(k): int(v) for k, v in d[KEY_SLICING].items()},
                model=dict(d[KEY_MODEL]),
                objective=objective,
                batch=int(d[KEY_BATCH]),
                recipe=str(d[KEY_RECIPE]),
                inputs=tuple(TensorSpec.from_dict(s) for s in d[KEY_INPUTS]),
                outputs=tuple(TensorSpec.from_dict(s) for s in d[KEY_OUTPUTS]),
                signature=str(d.get(KEY_SIGNATURE, "serving_default")),
                slots=int(d.get(KEY_SLOTS, 6 if objective == "autoregressive" else 1)),
                audio_rate=None if d.get(KEY_AUDIO_RATE) is None else float(d[KEY_AUDIO_RATE]),
                calibration=dict(d.get(KEY_CALIBRATION) or {}),
                fidelity=dict(d.get(KEY_FIDELITY) or {}),
                checkpoint_sha256=str(d.get(KEY_CHECKPOINT_SHA256, "")),
                pxby_edge_version=str(d.get(KEY_PXBY_EDGE_VERSION, "")),
                format_version=str(version),
                extra=extra,
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ManifestError(f"bad manifest: {exc}") from exc

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> Manifest:
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ManifestError(f"the manifest is not valid JSON ({exc}); re-run `pxby-edge quantize`") from exc
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
            f"manifest format version {version!r} is not 'major.minor'; re-run `pxby-edge quantize` to remake the file"
        ) from None


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
