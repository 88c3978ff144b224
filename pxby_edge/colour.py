"""sRGB → CIE Lab (D65, 2° observer) and nearest-palette choice, in numpy alone.

    python -c "from pxby_edge.colour import srgb_to_lab; print(srgb_to_lab([[1.0, 0.5, 0.0]]))"

Written by hand rather than taken from scikit-image so the Pi needs no scikit-image at run time;
the constants and the order of operations follow ``skimage.color.rgb2lab`` so that the nearest
palette colour is the same on every pixel (tests/test_colour.py checks 100,000 random colours).
"""

from __future__ import annotations

import numpy as np

_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb) -> np.ndarray:
    """Lab of sRGB values in [0, 1]; any leading shape, last axis RGB. float64."""
    arr = np.array(rgb, dtype=np.float64, copy=True)
    mask = arr > 0.04045
    arr[mask] = np.power((arr[mask] + 0.055) / 1.055, 2.4)
    arr[~mask] /= 12.92
    xyz = arr @ _XYZ_FROM_RGB.T
    xyz = xyz / _D65_WHITE
    mask = xyz > 0.008856
    xyz[mask] = np.cbrt(xyz[mask])
    xyz[~mask] = 7.787 * xyz[~mask] + 16.0 / 116.0
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    return np.stack([116.0 * y - 16.0, 500.0 * (x - y), 200.0 * (y - z)], axis=-1)


def nearest_index(lab: np.ndarray, palette_lab: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour (Euclidean in Lab, first index on ties) for each row."""
    lab = np.asarray(lab, dtype=np.float64).reshape(-1, 3)
    out = np.empty(len(lab), dtype=np.int64)
    # Chunked so a large image never needs an (N, P, 3) array bigger than a few MB.
    step = 16384
    for start in range(0, len(lab), step):
        diff = lab[start : start + step, None, :] - palette_lab[None, :, :]
        out[start : start + step] = np.einsum("npc,npc->np", diff, diff).argmin(axis=1)
    return out


def quantize_rgb(rgb_uint8: np.ndarray, palette_rgb: np.ndarray) -> np.ndarray:
    """Palette index of every pixel of an (..., 3) uint8 image."""
    rgb = np.asarray(rgb_uint8)
    palette_lab = srgb_to_lab(np.asarray(palette_rgb, dtype=np.float64) / 255.0)
    # Sprites repeat few colours: convert each distinct colour once.
    flat = rgb.reshape(-1, 3).astype(np.uint8)
    keys = (flat[:, 0].astype(np.uint32) << 16) | (flat[:, 1].astype(np.uint32) << 8) | flat[:, 2]
    uniq, inverse = np.unique(keys, return_inverse=True)
    uniq_rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=-1)
    idx = nearest_index(srgb_to_lab(uniq_rgb / 255.0), palette_lab)
    return idx[inverse.reshape(-1)].reshape(rgb.shape[:-1])
