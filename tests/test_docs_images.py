"""The pictures committed under docs/img/ are what scripts/docs_images.py (`make docs-images`) makes today.

    .venv/bin/python -m pytest tests/test_docs_images.py

Pictures are compared decoded, never as file bytes. A demo screen (PNG, or every frame of a GIF) must be
equal pixel for pixel: the demo is deterministic for one backend and seed. A matplotlib plot is re-rendered
from the same recorded JSON; on one matplotlib and FreeType it renders the same pixels (the committed
plots here re-render byte for byte). A plot passes when it has the same size and at most PLOT_TOLERANCE
of its pixels differ by more than PLOT_CHANNEL_DELTA in some channel: 77 pixels of a 880x440 plot, room
for stray anti-aliased edges of a different FreeType or Agg build, and a quarter of what one bar changing
its length by 5 % changes (test_a_changed_bar_is_caught). Another matplotlib version can move whole
labels by a pixel and fail it: the pictures are made with the project's venv (`make docs-images`).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

ROOT = Path(__file__).resolve().parent.parent
PLOT_TOLERANCE = 0.0002  # fraction of pixels
PLOT_CHANNEL_DELTA = 48  # of 255: what counts as a differing pixel (anti-aliasing moves less)


def _load_script():
    spec = importlib.util.spec_from_file_location("docs_images", ROOT / "scripts" / "docs_images.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


docs_images = _load_script()


def frames(path: Path) -> list:
    """Every frame of a PNG or GIF as an RGB array."""
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def exact_difference(a: Path, b: Path):
    """None when the pictures are equal frame for frame, else what differs."""
    fa, fb = frames(a), frames(b)
    if len(fa) != len(fb):
        return f"{len(fa)} frames against {len(fb)}"
    for i, (x, y) in enumerate(zip(fa, fb)):
        if x.shape != y.shape:
            return f"frame {i}: size {x.shape[1]}x{x.shape[0]} against {y.shape[1]}x{y.shape[0]}"
        if not np.array_equal(x, y):
            return f"frame {i}: {int((x != y).any(axis=2).sum())} pixels differ"
    return None


def plot_difference(a: Path, b: Path):
    """None when two plots agree within the tolerance, else what differs."""
    (x,), (y,) = frames(a), frames(b)
    if x.shape != y.shape:
        return f"size {x.shape[1]}x{x.shape[0]} against {y.shape[1]}x{y.shape[0]}"
    differ = (np.abs(x.astype(int) - y.astype(int)).max(axis=2) > PLOT_CHANNEL_DELTA).mean()
    return None if differ <= PLOT_TOLERANCE else f"{differ:.3%} of the pixels differ (tolerance {PLOT_TOLERANCE:.3%})"


def _missing(picture) -> list:
    return [m for m in picture.needs if importlib.util.find_spec(m) is None]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Every picture the script can make here, made once into a temporary folder."""
    out = tmp_path_factory.mktemp("img")
    names = [p.name for p in docs_images.PICTURES if not _missing(p)]
    if names:
        docs_images.make_pictures(names, out)
    return out


@pytest.mark.parametrize("picture", docs_images.PICTURES, ids=lambda p: p.name)
def test_committed_picture_is_what_the_script_makes(picture, made):
    missing = _missing(picture)
    if missing:
        pytest.skip(f"{picture.name} needs {', '.join(missing)}, not installed here")
    compare = plot_difference if picture.plot else exact_difference
    for file in picture.files:
        committed = ROOT / "docs" / "img" / file
        assert committed.is_file(), f"docs/img/{file} is not committed: run `make docs-images`"
        difference = compare(committed, made / file)
        assert difference is None, f"docs/img/{file} differs from what the script makes ({difference}): " \
                                   "run `make docs-images` and commit the pictures"


def test_the_readme_shows_the_handheld_screen_and_benchmarks_its_plots():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    bench = (ROOT / "docs" / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "](docs/img/handheld-screen.png)" in readme
    assert "](img/bench-throughput.png)" in bench and "](img/quantize-size-agreement.png)" in bench
    made_files = {f for p in docs_images.PICTURES for f in p.files}
    assert {"handheld-screen.png", "bench-throughput.png", "quantize-size-agreement.png"} <= made_files


def test_one_changed_pixel_of_a_screen_is_caught(tmp_path):
    a = np.zeros((144, 160, 3), np.uint8)
    b = a.copy()
    b[70, 80] = (15, 56, 15)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    second = a.copy()
    second[0, 0] = (155, 188, 15)  # GIF writers merge equal frames: the second one must differ from the first
    changed = second.copy()
    changed[70, 80] = (15, 56, 15)
    Image.fromarray(a).save(tmp_path / "a.gif", save_all=True, append_images=[Image.fromarray(second)])
    Image.fromarray(a).save(tmp_path / "b.gif", save_all=True, append_images=[Image.fromarray(changed)])
    assert exact_difference(tmp_path / "a.png", tmp_path / "a.png") is None
    assert exact_difference(tmp_path / "a.png", tmp_path / "b.png") == "frame 0: 1 pixels differ"
    assert exact_difference(tmp_path / "a.gif", tmp_path / "b.gif") == "frame 1: 1 pixels differ"


def test_a_changed_bar_is_caught(tmp_path):
    """The plot tolerance lets a re-render pass and a 5 % change of one recorded figure fail."""
    pytest.importorskip("matplotlib")
    from pxby_edge.bench import plot_rows

    rows = json.loads((ROOT / "bench" / "results" / "bench_throughput.json").read_text())
    plot_rows(rows, tmp_path / "a.png")
    plot_rows(rows, tmp_path / "again.png")
    rows[-1] = dict(rows[-1], tokens_per_s=rows[-1]["tokens_per_s"] * 1.05)
    plot_rows(rows, tmp_path / "b.png")
    assert plot_difference(tmp_path / "a.png", tmp_path / "again.png") is None
    assert plot_difference(tmp_path / "a.png", tmp_path / "b.png") is not None
