"""Our numpy sRGB→Lab picks the same palette colour as scikit-image's rgb2lab on every colour."""

from __future__ import annotations

import numpy as np
import pytest

from pxby_edge.colour import nearest_index, quantize_rgb, srgb_to_lab
from pxby_edge.vocab import DEFAULT_PALETTE

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it


def test_palette_choice_matches_scikit_image_on_100k_colours():
    color = pytest.importorskip("skimage.color", reason="scikit-image is not installed (pip install -e .[dev])")
    rng = np.random.default_rng(1234)
    rgb = rng.integers(0, 256, size=(100_000, 3), dtype=np.uint8)
    palette = np.asarray(DEFAULT_PALETTE, dtype=np.float64) / 255.0
    ref_pal = color.rgb2lab(palette[None])[0]
    ref_lab = color.rgb2lab(rgb[None] / 255.0)[0]
    d = ((ref_lab[:, None, :] - ref_pal[None]) ** 2).sum(-1)
    expected = d.argmin(axis=1)
    np.testing.assert_array_equal(quantize_rgb(rgb, np.asarray(DEFAULT_PALETTE)), expected)
    np.testing.assert_allclose(srgb_to_lab(rgb / 255.0), ref_lab, rtol=0, atol=1e-9)


def test_every_palette_colour_maps_to_itself():
    pal = np.asarray(DEFAULT_PALETTE, dtype=np.uint8)
    assert quantize_rgb(pal, pal).tolist() == list(range(len(pal)))


def test_ties_take_the_first_index():
    lab = np.zeros((1, 3))
    assert nearest_index(lab, np.array([[1.0, 0, 0], [-1.0, 0, 0]])).tolist() == [0]
