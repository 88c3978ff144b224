"""A synthetic PixelBytes dataset: symmetric animated pixel creatures, their description and their cry.

    pxby-edge dataset synth --n 64 --out runs/synth
    python -c "from training.synth import make_item; it = make_item(0, seed=0); print(it.text, it.frames.shape)"

Every item is drawn from a few named attributes, so that what a model generates for a prompt can be
checked against the prompt (docs/SYNTH.md lists the whole mapping):

- colour (``COLOURS``): the body is painted with that colour's three palette ids (main, light top,
  shaded bottom); nothing else in the sprite uses them, so "blue" means "most non-background,
  non-outline pixels are one of BLUE's ids" (``dominant_colour``).
- element (``ELEMENTS``): an accent colour (belly mark, spikes, antenna tips) and the cry's contour
  and timbre.
- size (``SIZES``): body radius, and the cry's base pitch and length (big creatures call low and long).
- features (``FEATURES``): horns, ears, wings, a tail, spikes, antennae, feet, drawn symmetric.

The text is ``"a {size} {colour} {element} creature with {features}. it is {colour}."``: the colour
word comes twice and is the last word before the image starts, which is where the model has to
remember it. Files are written in the upstream folder layout (``text/``, ``images/`` as animated GIF,
``audio/`` as two-channel WAV) plus ``synth.json`` with every item's attributes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pxby_edge.constants import DEVICE_AUDIO_RATE
from training.errors import DatasetError, OutputExistsError

# Palette indices (0-based into the 55-colour NES palette of pxby_edge.vocab).
BACKGROUND = 1  # (252, 252, 252): the plain backdrop of generator version 1 (``backdrop="plain"``)
OUTLINE = 0  # (0, 0, 0)
# colour word -> (main, light, shade); no id is shared with another colour, an accent or the background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (27, 26, 28),
    "orange": (30, 29, 31),
    "yellow": (34, 33, 35),
    "green": (39, 41, 40),
    "blue": (7, 6, 12),
    "purple": (15, 14, 16),
    "pink": (18, 17, 20),
    "teal": (50, 49, 51),
}
# colour word -> backdrop palette id (version 2, the default): the first pixel of the image already
# carries the colour word, one token after the text ends, and every later pixel sees it among its
# neighbours, so a small model learns the text -> sprite colour dependency (with a plain backdrop the body
# colour is decided once, ~100-150 tokens after the word, and a 0.37 M LSTM did not pick it up in 40 min).
BACKDROPS: dict[str, int] = {
    "red": 25, "orange": 21, "yellow": 2, "green": 46, "blue": 9, "purple": 13, "pink": 3, "teal": 54,
}
# element -> accent palette id, cry contour, cry timbre.
ELEMENTS: dict[str, dict] = {
    "fire": {"accent": 32, "contour": "rise", "wave": "pulse"},
    "water": {"accent": 5, "contour": "fall", "wave": "sine"},
    "grass": {"accent": 42, "contour": "steady", "wave": "triangle"},
    "electric": {"accent": 37, "contour": "trill", "wave": "pulse"},
    "ice": {"accent": 45, "contour": "drop", "wave": "sine"},
    "rock": {"accent": 4, "contour": "pulses", "wave": "triangle"},
    "ghost": {"accent": 53, "contour": "waver", "wave": "sine"},
    "poison": {"accent": 19, "contour": "dip", "wave": "pulse"},
}
# size -> body radii as a fraction of the canvas, base pitch (Hz), cry length (s).
SIZES: dict[str, dict] = {
    "small": {"rx": 0.24, "ry": 0.22, "pitch": 520.0, "seconds": 0.20},
    "medium": {"rx": 0.31, "ry": 0.27, "pitch": 360.0, "seconds": 0.25},
    "large": {"rx": 0.38, "ry": 0.32, "pitch": 240.0, "seconds": 0.30},
}
FEATURES: dict[str, str] = {  # feature -> how the text names it
    "horns": "horns", "ears": "ears", "wings": "wings", "tail": "a tail",
    "spikes": "spikes", "antennae": "antennae", "feet": "feet",
}
AUDIO_RATE = DEVICE_AUDIO_RATE  # Hz of the WAV files (the Game Boy rate); train with slicing_audio 4 -> 2048 Hz tokens
GENERATOR_VERSION = 2  # 1: plain white backdrop; 2: backdrop tinted by the colour word


@dataclass
class SynthItem:
    index: int
    colour: str
    element: str
    size: str
    features: list[str]
    text: str
    frames: np.ndarray  # (F, S, S) palette indices
    audio: np.ndarray  # (2, N) float32 in [-1, 1]: the call, its Game Boy-filtered copy
    sample_rate: int = AUDIO_RATE

    def attributes(self) -> dict:
        d = asdict(self)
        for key in ("frames", "audio", "sample_rate"):
            d.pop(key)
        d["frames"] = int(self.frames.shape[0])
        return d


def caption(colour: str, element: str, size: str, features: list[str]) -> str:
    names = [FEATURES[f] for f in features]
    if len(names) == 1:
        with_text = names[0]
    else:
        with_text = ", ".join(names[:-1]) + " and " + names[-1]
    return f"a {size} {colour} {element} creature with {with_text}. it is {colour}."


# -- drawing ---------------------------------------------------------------------------------------


def _triangle(mask, apex_x, apex_y, base_y, half_width):
    """Fill a triangle with its apex at (apex_x, apex_y) widening to half_width at base_y."""
    s = mask.shape[0]
    step = 1 if base_y >= apex_y else -1
    n = abs(base_y - apex_y) + 1
    for k, y in enumerate(range(apex_y, base_y + step, step)):
        if 0 <= y < s:
            w = half_width * k / max(1, n - 1)
            x0, x1 = int(round(apex_x - w)), int(round(apex_x + w))
            mask[y, max(0, x0): min(s, x1 + 1)] = True


def _ellipse(s, cx, cy, rx, ry):
    y, x = np.mgrid[0:s, 0:s]
    return ((x - cx) / max(rx, 0.5)) ** 2 + ((y - cy) / max(ry, 0.5)) ** 2 <= 1.0


def _mirror(mask):
    """Left half copied onto the right: the sprite is symmetric about its vertical axis."""
    s = mask.shape[1]
    out = mask.copy()
    half = s // 2
    out[:, s - half:] = mask[:, :half][:, ::-1]
    return out


class _Pose(NamedTuple):
    """Where the body sits in frame k: centre (cx, cy), radii (rx, ry), its top row, the frame index."""

    s: int
    cx: float
    cy: float
    rx: float
    ry: float
    top: int
    k: int

    def blank(self):
        return np.zeros((self.s, self.s), bool)


def _wings(p: _Pose, shape, body, tints):
    flap = -1 if p.k % 2 else 1
    w = _ellipse(p.s, p.cx - p.rx - 1, p.cy - p.ry * 0.4 + flap, max(2, p.rx * 0.45), max(1.5, p.ry * 0.55))
    return [(_mirror(w) & ~body, tints["light"])]


def _ears(p: _Pose, shape, body, tints):
    m = p.blank()
    _triangle(m, int(round(p.cx - p.rx * 0.55)), max(0, p.top - 3), p.top + 1, 1.5)
    return [(_mirror(m), tints["main"])]


def _horns(p: _Pose, shape, body, tints):
    m = p.blank()
    _triangle(m, int(round(p.cx - p.rx * 0.3)), max(0, p.top - 2), p.top, 0.8)
    return [(_mirror(m), tints["shade"])]


def _antennae(p: _Pose, shape, body, tints):
    m, tip = p.blank(), p.blank()
    x = int(round(p.cx - p.rx * 0.4)) - 1
    m[max(0, p.top - 3): p.top + 1, x] = True
    tip[max(0, p.top - 4), x] = True
    return [(_mirror(m), OUTLINE), (_mirror(tip), tints["accent"])]


def _spikes(p: _Pose, shape, body, tints):
    m = p.blank()
    for dx in (shape["spike_dx"], 0.0):
        _triangle(m, int(round(p.cx - dx)), max(0, p.top - 2), p.top + 1, 1.0)
    return [(_mirror(m) & ~body, tints["accent"])]


def _tail(p: _Pose, shape, body, tints):
    m = p.blank()
    ty = int(round(p.cy + p.ry * 0.2))
    for d in range(3):
        x = max(1, int(round(p.cx - p.rx - d)))
        m[max(0, ty - d - (p.k % 2)): ty + 1, x] = True
    return [(_mirror(m) & ~body, tints["shade"])]


def _feet(p: _Pose, shape, body, tints):
    m = p.blank()
    fy = int(round(p.cy + p.ry)) - 1
    fx = int(round(p.cx - p.rx * 0.5))
    m[max(0, fy): min(p.s, fy + 2), max(0, fx - 1): fx + 1] = True
    return [(_mirror(m) & ~body, tints["shade"])]


# Painted in this order (a later feature covers an earlier one where they overlap), all behind the body.
FEATURE_PAINTERS = (("wings", _wings), ("ears", _ears), ("horns", _horns), ("antennae", _antennae),
                    ("spikes", _spikes), ("tail", _tail), ("feet", _feet))


def draw_frame(s: int, colour: str, element: str, size: str, features: list[str], shape: dict, k: int, n: int,
               backdrop: int = BACKGROUND):
    """One (S, S) frame of palette indices; ``shape`` holds the per-creature random choices, k the frame."""
    main, light, shade = COLOURS[colour]
    tints = {"main": main, "light": light, "shade": shade, "accent": ELEMENTS[element]["accent"]}
    bob = (0, -1, 0, 1)[k % 4] if n > 2 else (0, -1)[k % 2]
    cx, cy, rx, ry = (s - 1) / 2, s * 0.60 + bob, shape["rx"], shape["ry"]
    pose = _Pose(s, cx, cy, rx, ry, int(np.floor(cy - ry)), k)
    body = _ellipse(s, cx, cy, rx, ry)
    canvas = np.full((s, s), -1, dtype=np.int64)  # -1: background for now
    for name, painter in FEATURE_PAINTERS:
        if name in features:
            for mask, colour_id in painter(pose, shape, body, tints):
                canvas[mask] = colour_id
    _paint_body(canvas, pose, body, tints)
    _paint_eyes(canvas, pose, body, shape, blink=n >= 3 and k == n - 1)
    _outline(canvas)
    canvas[canvas < 0] = backdrop
    return _mirror_ids(canvas)


def _paint_body(canvas, p: _Pose, body, tints) -> None:
    """Body shading: light top, shaded bottom, symmetric by construction (depends on y only); the belly."""
    y = np.arange(p.s)[:, None].repeat(p.s, 1)
    canvas[body] = tints["main"]
    canvas[body & (y < p.cy - p.ry * 0.45)] = tints["light"]
    canvas[body & (y > p.cy + p.ry * 0.5)] = tints["shade"]
    belly = _ellipse(p.s, p.cx, p.cy + p.ry * 0.35, p.rx * 0.35, p.ry * 0.25) & body
    canvas[belly] = tints["accent"]


def _paint_eyes(canvas, p: _Pose, body, shape, blink: bool) -> None:
    """Black eyes; closed (a horizontal line) on the blink frame."""
    ey = int(round(p.cy - p.ry * 0.15))
    ex = int(round(p.cx - p.rx * shape["eye_dx"]))
    eyes = p.blank()
    if blink:
        eyes[ey, max(0, ex - 1): ex + 1] = True
    else:
        eyes[max(0, ey - 1): ey + 1, ex] = True
    canvas[_mirror(eyes) & body] = OUTLINE


def _outline(canvas) -> None:
    """Background pixels touching the sprite (4-neighbour) become black."""
    filled = canvas >= 0
    grown = filled.copy()
    grown[1:] |= filled[:-1]
    grown[:-1] |= filled[1:]
    grown[:, 1:] |= filled[:, :-1]
    grown[:, :-1] |= filled[:, 1:]
    canvas[grown & ~filled] = OUTLINE


def _mirror_ids(frame):
    s = frame.shape[1]
    out = frame.copy()
    out[:, s - s // 2:] = frame[:, : s // 2][:, ::-1]
    return out


# -- sound -----------------------------------------------------------------------------------------


def synth_cry(element: str, size: str, rng: np.random.Generator, sample_rate: int = AUDIO_RATE) -> np.ndarray:
    """(2, N) float32: a call whose pitch follows the size and whose contour follows the element,
    and its Game Boy speaker-filtered copy."""
    from pxby_edge.speaker import gameboy_filter

    sz, el = SIZES[size], ELEMENTS[element]
    n = int(sz["seconds"] * sample_rate)
    t = np.arange(n) / sample_rate
    u = t / t[-1]  # 0 → 1 over the call
    f0 = sz["pitch"] * rng.uniform(0.92, 1.08)
    contour = {
        "rise": 1.0 + 0.5 * u,
        "fall": 1.3 - 0.5 * u,
        "steady": 1.0 + 0.03 * np.sin(2 * np.pi * 4 * t),
        "trill": 1.0 + 0.15 * np.sign(np.sin(2 * np.pi * 24 * t)),
        "drop": np.where(u < 0.6, 1.2, 0.8),
        "pulses": np.ones_like(u),
        "waver": 1.0 + 0.2 * np.sin(2 * np.pi * 6 * t),
        "dip": 1.0 - 0.35 * np.sin(np.pi * u),
    }[el["contour"]]
    phase = 2 * np.pi * np.cumsum(f0 * contour) / sample_rate
    wave = {
        "sine": np.sin(phase),
        "triangle": 2 / np.pi * np.arcsin(np.sin(phase)),
        "pulse": np.tanh(3 * np.sin(phase)),
    }[el["wave"]]
    env = np.minimum(1.0, t / 0.01) * (1 - 0.6 * u)
    if el["contour"] == "pulses":
        env = env * (0.3 + 0.7 * (np.sin(2 * np.pi * 8 * t) > 0))
    call = wave * env
    call /= np.max(np.abs(call))
    return np.stack([call, gameboy_filter(call, sample_rate)]).astype(np.float32)


# -- items and files -------------------------------------------------------------------------------


def make_item(index: int, seed: int = 0, size_px: int = 24, backdrop: str = "tinted") -> SynthItem:
    """Item ``index`` of the dataset made with ``seed``: the same on every machine.

    ``backdrop``: "tinted" (version 2, the colour word's ``BACKDROPS`` id) or "plain" (version 1, white)."""
    if backdrop not in ("tinted", "plain"):
        raise DatasetError(f"backdrop must be 'tinted' or 'plain', got {backdrop!r}")
    if size_px < 12:
        raise DatasetError(f"sprite size must be at least 12 pixels, got {size_px}")
    rng = np.random.default_rng([int(seed), int(index)])
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    element = list(ELEMENTS)[rng.integers(len(ELEMENTS))]
    size = list(SIZES)[rng.integers(len(SIZES))]
    names = list(FEATURES)
    features = sorted(rng.choice(names, size=int(rng.integers(1, 4)), replace=False).tolist(), key=names.index)
    sz = SIZES[size]
    shape = {
        "rx": sz["rx"] * size_px * rng.uniform(0.9, 1.1),
        "ry": sz["ry"] * size_px * rng.uniform(0.9, 1.1),
        "eye_dx": rng.uniform(0.3, 0.5),
        "spike_dx": sz["rx"] * size_px * 0.5,
    }
    n_frames = int(rng.integers(2, 5))
    frames = np.stack([
        draw_frame(size_px, colour, element, size, features, shape, k, n_frames,
                   BACKDROPS[colour] if backdrop == "tinted" else BACKGROUND)
        for k in range(n_frames)
    ])
    audio = synth_cry(element, size, rng)
    return SynthItem(index, colour, element, size, features, caption(colour, element, size, features), frames, audio)


def dominant_colour(frame_ids) -> str | None:
    """The colour word whose ids cover most non-background, non-outline pixels (None when none do).

    frame_ids: palette indices (H, W) or (F, H, W) — what a prompt-adherence check compares to the prompt.
    """
    ids = np.asarray(frame_ids).reshape(-1)
    counts = {name: int(np.isin(ids, list(p)).sum()) for name, p in COLOURS.items()}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


def write_dataset(out, n: int, seed: int = 0, size_px: int = 24, force: bool = False, progress=None,
                  backdrop: str = "tinted") -> Path:
    """Write ``n`` items in the upstream folder layout under ``out`` (all at once: a temporary folder
    beside it, renamed at the end). ``force`` replaces an existing synthetic dataset there."""
    from pxby_edge.media import write_gif, write_text, write_wav
    from pxby_edge.vocab import DEFAULT_PALETTE

    out = Path(out)
    if n < 1:
        raise DatasetError(f"--n must be at least 1, got {n}")
    if out.exists() or out.is_symlink():
        if not force:
            raise OutputExistsError(f"{out} already exists; pass --force to replace it or choose another folder")
        check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        width = max(4, len(str(n - 1)))
        items = []
        for i in range(n):
            item = make_item(i, seed, size_px, backdrop)
            name = f"{i:0{width}d}"
            write_text(tmp / "text" / f"{name}.txt", item.text)
            write_gif(tmp / "images" / f"{name}.gif", list(item.frames), DEFAULT_PALETTE, frame_ms=250)
            write_wav(tmp / "audio" / f"{name}.wav", item.audio, item.sample_rate)
            items.append({"id": name, **item.attributes()})
            if progress is not None:
                progress(1)
        meta = {
            "generator": "pxby-edge synth", "version": GENERATOR_VERSION if backdrop == "tinted" else 1,
            "backdrop": backdrop, "backdrops": BACKDROPS if backdrop == "tinted" else None, "seed": seed, "n": n,
            "size_px": size_px, "audio_rate": AUDIO_RATE, "colours": COLOURS,
            "elements": {k: v["accent"] for k, v in ELEMENTS.items()}, "items": items,
        }
        (tmp / "synth.json").write_text(json.dumps(meta, indent=1) + "\n")
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


SYNTH_ENTRIES = {"text": ".txt", "images": ".gif", "audio": ".wav"}  # what write_dataset puts in a dataset


def check_replaceable(out: Path) -> None:
    """Refuse (one line) to replace ``out`` unless everything in it is a dataset this generator wrote.

    ``--force`` replaces what the command made and nothing else: never the folder the user stands in or
    one of its parents, never a link, never a folder holding anything synth.json does not account for."""
    here = Path.cwd().resolve()
    if out.is_symlink() or not out.is_dir():
        raise OutputExistsError(f"{out} is not a folder this command wrote (a link or a file); choose another --out")
    target = out.resolve()
    if target == here or target in here.parents:
        raise OutputExistsError(f"{out} is the current folder or one of its parents; refusing to replace it: "
                                "choose a folder below it for --out")
    if not any(out.iterdir()):
        return
    foreign = _foreign_entries(out)
    if foreign:
        raise OutputExistsError(f"{out} holds files this command did not write ({foreign[0]}"
                                f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}); refusing to replace it")


def _foreign_entries(out: Path) -> list[str]:
    """Entries of ``out`` that its synth.json does not account for (everything, when it has none)."""
    try:
        meta = json.loads((out / "synth.json").read_text(encoding="utf-8")) if (out / "synth.json").is_file() else {}
        ids = {str(item["id"]) for item in meta.get("items", [])} if meta.get("generator") == "pxby-edge synth" else set()
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        ids = set()
    if not ids:
        return sorted(p.name for p in out.iterdir())
    foreign = []
    for entry in sorted(out.iterdir()):
        if entry.name == "synth.json" and not entry.is_symlink():
            continue
        suffix = SYNTH_ENTRIES.get(entry.name)
        if suffix is None or entry.is_symlink() or not entry.is_dir():
            foreign.append(entry.name)
            continue
        foreign += [f"{entry.name}/{f.name}" for f in sorted(entry.iterdir())
                    if f.is_symlink() or not f.is_file() or f.suffix != suffix or f.stem not in ids]
    return foreign


def _swap_in(new: Path, out: Path) -> None:
    """Put ``new`` at ``out``; an old dataset there is moved aside first and deleted only once ``new`` is in place."""
    if not out.exists():
        new.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
    out.rename(old / out.name)
    try:
        new.rename(out)
    except BaseException:
        (old / out.name).rename(out)
        raise
    finally:
        if not (old / out.name).exists() or out.exists():
            shutil.rmtree(old, ignore_errors=True)
