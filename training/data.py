"""Datasets → token streams → training windows: upstream folder layout, parquet export, synthetic folder.

    python -c "from training.data import load_streams; s = load_streams('runs/synth', {'image': 1, 'audio': 4}); print(len(s.train), len(s.val), s.skipped)"

Sources (``open_source``):

- a folder in the upstream layout: ``text/NNNN.txt``, ``images/NNNN.gif|png``, ``audio/NNNN.ogg|wav``
  (items matched by file stem; ``pxby-edge dataset synth`` writes this layout);
- a parquet file (or a folder of them) exported from the upstream Hugging Face dataset: columns
  ``image`` and ``audio`` as structs with ``bytes`` (``audio`` may hold ``array`` and ``sampling_rate``
  instead), ``text`` a string.

Every item is tokenized once per slicing and cached (``.npz`` keyed by the hash of its bytes, the slicing
and the vocabulary), so a second run starts at once. An item that cannot be read (corrupt GIF or OGG,
empty text, a missing modality) is skipped and counted, never raised halfway through an epoch; a
source with no usable item raises ``DatasetError``. The held-out split is chosen by a hash of each
item's id, so it stays the same when the dataset grows.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pxby_edge import atomic, readers
from pxby_edge.constants import MAX_AUDIO_RATE, UPSTREAM_AUDIO_RATE
from pxby_edge.errors import MediaError
from training.errors import DatasetError

IMAGE_SUFFIXES = (".gif", ".png")
AUDIO_SUFFIXES = (".ogg", ".wav", ".flac")
MODALITIES = ("text", "image", "audio")
CACHE_VERSION = 1
IGNORE_INDEX = -100
# The runtime's bounds (pxby_edge.readers) apply to training items too: what tokenize refuses, training skips.
MAX_TEXT_BYTES = readers.MAX_TEXT_BYTES
MAX_AUDIO_BYTES = readers.MAX_AUDIO_BYTES
MAX_IMAGE_FILE_BYTES = 64 << 20  # a compressed sprite is kB; the pixel bound is checked before decoding
MAX_PARQUET_BYTES = 16 << 30  # a file read whole into memory by pyarrow


@dataclass
class RawItem:
    """One dataset item before tokenization: an id, and per modality a path or raw bytes (or None)."""

    id: str
    text: object = None  # Path or str
    image: object = None  # Path or bytes
    audio: object = None  # Path, bytes, or (array, rate)
    problem: str = ""  # why the item is unusable, found while listing it (a parquet cell of the wrong type)

    def fingerprint(self) -> str:
        """SHA-256 of the item's content; BadItemError when a file of it cannot be read within its bound."""
        h = hashlib.sha256()
        for part, limit in ((self.text, MAX_TEXT_BYTES), (self.image, MAX_IMAGE_FILE_BYTES),
                            (self.audio, MAX_AUDIO_BYTES)):
            if part is None:
                h.update(b"<none>")
            elif isinstance(part, Path):
                h.update(read_item_file(part, limit))
            elif isinstance(part, str):
                h.update(part.encode())
            elif isinstance(part, bytes):
                h.update(part)
            else:  # (array, rate), checked by _parquet_audio
                arr, rate = part
                h.update(np.ascontiguousarray(np.asarray(arr, dtype=np.float32)).tobytes() + str(rate).encode())
            h.update(b"|")
        return h.hexdigest()


class BadItemError(Exception):
    """An item that is skipped (with this reason) rather than failing the run."""


def read_item_file(path: Path, limit: int) -> bytes:
    """The bytes of one item's file, bounded; BadItemError (the item is skipped) for a FIFO, a device
    (a link to /dev/zero), a folder, an unreadable file or one larger than ``limit``."""
    import stat

    from pxby_edge.errors import MediaError
    from pxby_edge.readers import read_regular_file

    try:
        if not stat.S_ISREG(path.stat().st_mode):  # named in the reason; read_regular_file checks it for real
            raise BadItemError(f"not a regular file ({path})")
        return read_regular_file(path, limit, "dataset file")
    except MediaError as exc:
        raise BadItemError(f"file too large ({exc})") from None
    except OSError as exc:
        raise BadItemError(f"unreadable file ({exc})") from None


# -- sources ---------------------------------------------------------------------------------------


def _folder_items(root: Path) -> list[RawItem]:
    subdirs = {m: root / d for m, d in (("text", "text"), ("image", "images"), ("audio", "audio"))}
    if not any(d.is_dir() for d in subdirs.values()):
        raise DatasetError(
            f"{root} has none of text/, images/, audio/: not a dataset folder "
            "(make one with `pxby-edge dataset synth --out DIR`)"
        )
    found: dict[str, dict] = {}
    suffixes = {"text": (".txt",), "image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES}
    for modality, folder in subdirs.items():
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in suffixes[modality] and not path.name.startswith("."):
                found.setdefault(path.stem, {})[modality] = path
    return [RawItem(stem, **mods) for stem, mods in sorted(found.items())]


def _parquet_items(path: Path) -> list[RawItem]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetError("reading parquet needs pyarrow: pip install 'pxby-edge[train]'") from exc
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    items = []
    for f in files:
        if not f.is_file() or f.stat().st_size > MAX_PARQUET_BYTES:  # is_file: no FIFO or device
            raise DatasetError(f"{f} is not a regular parquet file of at most {MAX_PARQUET_BYTES >> 30} GiB")
        try:
            table = pq.read_table(f)
        except Exception as exc:
            raise DatasetError(f"cannot read parquet {f}: {exc}") from exc
        cols = set(table.column_names)
        if not cols & set(MODALITIES):
            raise DatasetError(f"{f} has no text, image or audio column (columns: {sorted(cols)})")
        items.extend(_parquet_item(f"{f.stem}:{i:06d}", row) for i, row in enumerate(table.to_pylist()))
    return items


def _parquet_item(item_id: str, row: dict) -> RawItem:
    """One row as an item; a cell of the wrong type makes the item unusable (skipped and counted), never
    the run: the upstream layout is text a string, image {bytes}, audio {bytes} or {array, sampling_rate}."""
    try:
        return RawItem(item_id, text=_parquet_text(row.get("text")), image=_parquet_image(row.get("image")),
                       audio=_parquet_audio(row.get("audio")))
    except BadItemError as exc:
        return RawItem(item_id, problem=str(exc))


def _parquet_text(value):
    if value is not None and not isinstance(value, str):
        raise BadItemError(f"bad parquet cell (text holds {type(value).__name__}, not a string)")
    return value


def _parquet_image(value):
    if isinstance(value, dict):
        value = value.get("bytes")
    if value is not None and not isinstance(value, bytes):
        raise BadItemError(f"bad parquet cell (image holds {type(value).__name__}, not bytes)")
    return value


def _parquet_audio(value):
    if value is None or isinstance(value, bytes):
        return value
    if not isinstance(value, dict):
        raise BadItemError(f"bad parquet cell (audio holds {type(value).__name__}, not bytes or a struct)")
    if value.get("bytes") is not None:
        return _parquet_image({"bytes": value["bytes"]})  # the same check: bytes or nothing
    if value.get("array") is None:
        return None
    rate = value.get("sampling_rate") or UPSTREAM_AUDIO_RATE
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= MAX_AUDIO_RATE:
        raise BadItemError(f"bad parquet cell (audio sampling_rate {rate!r} is not a rate in 1..{MAX_AUDIO_RATE})")
    try:
        arr = np.asarray(value["array"], dtype=np.float32)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadItemError(f"bad parquet cell (audio array is not numbers: {exc})") from None
    if arr.ndim not in (1, 2) or not arr.size or arr.nbytes > MAX_AUDIO_BYTES or not np.isfinite(arr).all():
        raise BadItemError(f"bad parquet cell (audio array of shape {arr.shape} is not finite (channels, samples))")
    return arr, rate


def open_source(path) -> list[RawItem]:
    """The items of a dataset folder or parquet file, not yet read."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"no dataset at {path} (a folder with text/ images/ audio/, or a .parquet file)")
    if path.is_file() and path.suffix == ".parquet" or path.is_dir() and any(path.glob("*.parquet")):
        items = _parquet_items(path)
    elif path.is_dir():
        items = _folder_items(path)
    else:
        raise DatasetError(f"{path} is neither a dataset folder nor a .parquet file")
    if not items:
        raise DatasetError(f"{path} holds no items")
    return items


# -- reading and tokenizing one item ---------------------------------------------------------------


def _read_text(value) -> str:
    if isinstance(value, Path):
        try:
            value = read_item_file(value, MAX_TEXT_BYTES).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadItemError(f"unreadable text ({exc})") from exc
    elif isinstance(value, str) and len(value) > MAX_TEXT_BYTES:
        raise BadItemError(f"text too long ({len(value):,} characters)")
    if not isinstance(value, str) or not value.strip():
        raise BadItemError("empty text")
    return value.strip("\n")


def _read_image(value):
    """A PIL image, decoded only after its pixel count passed the runtime's bound (readers.open_image)."""
    from pxby_edge.errors import MediaError

    # From bytes in memory: an animated GIF is read frame by frame later, and no file handle stays open.
    raw = read_item_file(value, MAX_IMAGE_FILE_BYTES) if isinstance(value, Path) else value
    try:
        return readers.open_image(value if isinstance(value, Path) else "<parquet image>", data=raw)
    except MediaError as exc:
        raise BadItemError(f"unusable image ({exc})") from exc  # corrupt, or over the pixel bound


def _read_audio(value) -> np.ndarray:
    from pxby_edge.errors import MediaError
    from pxby_edge.readers import read_audio
    from pxby_edge.speaker import tokenizer_audio

    try:
        if isinstance(value, Path):
            arr, rate = read_audio(value)
        elif isinstance(value, bytes):
            import soundfile

            data, rate = soundfile.read(io.BytesIO(value), always_2d=True)
            arr = np.asarray(data, dtype=np.float32).T
        else:
            arr, rate = value
            arr = np.asarray(arr, dtype=np.float32)
        return tokenizer_audio(arr, rate)
    except MediaError as exc:
        raise BadItemError(f"corrupt audio ({exc})") from exc
    except Exception as exc:  # soundfile/libsndfile raise many types on corrupt data
        raise BadItemError(f"corrupt audio ({type(exc).__name__}: {exc})") from exc


def tokenize_item(item: RawItem, tokenizer, require=MODALITIES) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids (N, 6) uint8, labels (N,) uint8) of one item; BadItemError when it cannot be used."""
    from pxby_edge.errors import PxbyError

    for m in require:
        if getattr(item, m) is None:
            raise BadItemError(f"no {m}")
    kwargs = {}
    if item.text is not None:
        kwargs["text"] = _read_text(item.text)
    if item.image is not None:
        kwargs["image"] = _read_image(item.image)
    if item.audio is not None:
        kwargs["audio"] = _read_audio(item.audio)
    if not kwargs:
        raise BadItemError("no text, image or audio")
    try:
        out = tokenizer(**kwargs)
    except PxbyError as exc:
        raise BadItemError(str(exc)) from exc
    ids, labels = out["input_ids"], out["labels"][:, 0]
    if ids.max() > 255:
        raise BadItemError("token ids above 255 (custom vocabularies this large are not cached)")
    return ids.astype(np.uint8), labels.astype(np.uint8)


# -- the cache -------------------------------------------------------------------------------------


def _vocab_hash(tokenizer) -> str:
    return hashlib.sha256(json.dumps(tokenizer.vocab_lists.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def default_cache_dir(source) -> Path:
    source = Path(source)
    base = source if source.is_dir() else source.parent
    if os.access(base, os.W_OK):
        return base / ".pxby-cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pxby-edge" / "tokens"


MAX_CACHE_BYTES = 1 << 30  # one item's tokens, decompressed: the file is in the dataset folder, so untrusted
_CACHE_TEMP = re.compile(r"\.[0-9a-f]{32}\.npz\.(?P<pid>\d+)\.[a-z0-9_]{8}\.npz")  # what _cache_save makes


def _cache_load(path: Path):
    """(ids (N, 6) uint8, labels (N,) uint8) of a cache file, or None for anything else (it is re-made)."""
    try:
        z = readers.load_npz(path, MAX_CACHE_BYTES)
        ids, labels = z["input_ids"], z["labels"]
    except (MediaError, KeyError, OSError):
        return None
    if ids.dtype != np.uint8 or labels.dtype != np.uint8 or ids.ndim != 2 or ids.shape[1:] != (6,) \
            or labels.shape != (len(ids),):
        return None
    return ids, labels


def _cache_save(path: Path, ids, labels) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, input_ids=ids, labels=labels)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a cache that cannot be written only costs time


def _remove_dead_cache_temps(cache: Path) -> None:
    """Delete the temporaries killed runs left in the token cache (their process is gone)."""
    if not cache.is_dir():
        return
    with os.scandir(cache) as entries:
        for entry in entries:
            m = _CACHE_TEMP.fullmatch(entry.name)
            if m and entry.is_file(follow_symlinks=False) and not atomic.pid_alive(int(m["pid"])):
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass  # another user's: not ours to remove



# -- streams and the split -------------------------------------------------------------------------


def is_held_out(item_id: str, val_fraction: float) -> bool:
    """Stable split by the hash of the id (not by position, so adding items moves none)."""
    h = int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big")
    return h / 2**64 < val_fraction


@dataclass
class Stream:
    id: str
    input_ids: np.ndarray  # (N, 6) uint8
    labels: np.ndarray  # (N,) uint8

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class Streams:
    train: list[Stream] = field(default_factory=list)
    val: list[Stream] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    skipped_ids: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        tok = sum(len(s) for s in self.train)
        text = f"{len(self.train)} train items ({tok} tokens), {len(self.val)} held out"
        if self.skipped:
            reasons = ", ".join(f"{n} {r.split(' (')[0]}" for r, n in self.skipped.most_common())
            text += f"; skipped {self.n_skipped} ({reasons})"
        return text


def iter_streams(source, slicing: dict, cache_dir=None, require=MODALITIES, skipped=None) -> Iterator[Stream]:
    """Token streams of every usable item of ``source`` in order; bad items go to ``skipped`` (a list)."""
    from pxby_edge.tokenizer import ActionPixelBytesTokenizer

    tokenizer = ActionPixelBytesTokenizer(data_slicing=dict(slicing))
    items = open_source(source)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(source)
    _remove_dead_cache_temps(cache)
    salt = f"v{CACHE_VERSION}|{slicing['image']}|{slicing['audio']}|{_vocab_hash(tokenizer)}|{sorted(require)}"
    for item in items:
        try:
            if item.problem:
                raise BadItemError(item.problem)
            key = hashlib.sha256((salt + item.fingerprint()).encode()).hexdigest()[:32]
        except BadItemError as exc:
            if skipped is not None:
                skipped.append((item.id, str(exc)))
            continue
        path = cache / f"{key}.npz"
        hit = _cache_load(path) if path.is_file() else None
        if hit is None:
            try:
                hit = tokenize_item(item, tokenizer, require)
            except BadItemError as exc:
                if skipped is not None:
                    skipped.append((item.id, str(exc)))
                continue
            _cache_save(path, *hit)
        yield Stream(item.id, hit[0], hit[1])


def load_streams(source, slicing: dict, val_fraction: float = 0.05, cache_dir=None, require=MODALITIES) -> Streams:
    """Every usable item's tokens, split into train and held-out; DatasetError when nothing is usable."""
    out = Streams()
    skipped: list = []
    for s in iter_streams(source, slicing, cache_dir, require, skipped):
        (out.val if is_held_out(s.id, val_fraction) else out.train).append(s)
    out.skipped_ids = skipped
    out.skipped = Counter(reason for _, reason in skipped)
    if not out.train:
        detail = f" (skipped {len(skipped)}: {skipped[0][1]} in {skipped[0][0]}, ...)" if skipped else ""
        raise DatasetError(f"no usable training item in {source}{detail}")
    return out


def held_out_streams(source, slicing: dict, val_fraction: float = 0.05, cache_dir=None) -> list[Stream]:
    """The held-out items' streams (what validation saw): e.g. calibration data for quantization."""
    return [s for s in iter_streams(source, slicing, cache_dir) if is_held_out(s.id, val_fraction)]


# -- windows ---------------------------------------------------------------------------------------


class Windows:
    """Training windows over token streams, like upstream's TokenPxByDataset (seq_len, stride) but each
    window carries one extra context so every position has a target, and the tail of an item longer than
    a window is covered by a last window ending at its end.

    ``window(i)`` → (x (T, 6) int64 padded with 0, y int64 padded with -100): y is the next context
    (T, 6) for ``autoregressive``, the label (T,) for ``predict``.

    ``head_repeat`` adds that many extra copies of each item's first window. The prompt → sprite decisions
    (which colour the body gets) are made once per item, at the first body pixels right after the text;
    everywhere else the neighbours in the context already show the colour. Without more weight those few
    positions are too rare a signal for a small model to learn the text → image dependency.
    """

    def __init__(self, streams: list[Stream], seq_len: int, stride: int, objective: str = "autoregressive",
                 head_repeat: int = 0):
        self.streams, self.seq_len, self.objective = streams, int(seq_len), objective
        index = []
        for k, s in enumerate(streams):
            n = len(s)
            span = self.seq_len + 1 if objective != "predict" else self.seq_len
            starts = list(range(0, max(1, n - span + 1), int(stride)))
            if starts[-1] + span < n:
                starts.append(n - span)
            index.extend((k, st) for st in starts)
            index.extend((k, 0) for _ in range(int(head_repeat)))
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def window(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        k, start = self.index[i]
        s, t = self.streams[k], self.seq_len
        x = np.zeros((t, 6), dtype=np.int64)
        chunk = s.input_ids[start: start + t]
        x[: len(chunk)] = chunk
        if self.objective == "predict":
            y = np.full((t,), IGNORE_INDEX, dtype=np.int64)
            lab = s.labels[start: start + t]
            y[: len(lab)] = lab
        else:
            y = np.full((t, 6), IGNORE_INDEX, dtype=np.int64)
            nxt = s.input_ids[start + 1: start + 1 + t]
            y[: len(nxt)] = nxt
        return x, y

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = zip(*(self.window(int(i)) for i in indices))
        return np.stack(xs), np.stack(ys)  # (B, T, 6), (B, T, 6) or (B, T)
