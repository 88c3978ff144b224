"""A colour screen to Game Boy Color tiles: 8 background palettes of 4 colours and a palette per tile.

    python -c "from firmware_bridge.gameboy.palettes import FIXED; print(FIXED)"

A CGB shows each 8x8 tile through one of 8 palettes of 4 RGB555 colours. Palette 0 is fixed (the
4 shades of the text, the frame and the background, as white to black) so the text never changes
colour; the sprite's tiles get palettes 1..7 (or palette 0 where its colours fit it). Each tile
needs the set of colours it shows; sets that fit in one palette together are packed first-fit
(largest first), and while that needs no more than 7 palettes every pixel is exact. When it needs
more, ``choose`` picks the 7 palettes (among the packed groups and the tiles' own sets) that
minimise the summed colour error, ΔE in CIE Lab over every pixel, by greedy choice then swaps
(k-medoids): ``Choice.exact`` is then False and the summary says how many commits it happened to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_bridge.display import encode_tiles

N_PALETTES = 8
N_COLOURS = 4
WHITE = 0x7FFF
# palette 0: shades 0..3 of the host's screen (background, -, outline, text ink), light to dark
FIXED = (WHITE, 21 | 21 << 5 | 21 << 10, 10 | 10 << 5 | 10 << 10, 0)


def rgb555(rgb) -> np.ndarray:
    """(..., 3) 0..255 colours rounded to RGB555 (r | g << 5 | b << 10), as the CGB stores them."""
    c = (np.asarray(rgb, dtype=np.int64)[..., :3] * 31 + 127) // 255
    return c[..., 0] | c[..., 1] << 5 | c[..., 2] << 10


def expand555(c) -> np.ndarray:
    """RGB555 values -> (..., 3) 0..255 (each 5-bit channel scaled by 255/31)."""
    c = np.asarray(c, dtype=np.int64)
    return np.stack([c & 31, (c >> 5) & 31, (c >> 10) & 31], axis=-1) * 255 // 31


def screen_rgb(c) -> np.ndarray:
    """RGB555 values -> (..., 3) uint8 as PyBoy draws them (each channel times 8)."""
    c = np.asarray(c, dtype=np.int64)
    return (np.stack([c & 31, (c >> 5) & 31, (c >> 10) & 31], axis=-1) << 3).astype(np.uint8)


def lab555(c) -> np.ndarray:
    from pxby_edge.colour import srgb_to_lab

    return srgb_to_lab(expand555(c) / 255.0)


@dataclass
class Choice:
    palettes: np.ndarray  # (8, 4) RGB555
    attrs: np.ndarray  # (n_tiles,) palette of each tile
    tiles: np.ndarray  # (n_tiles, 16) 2bpp tile data: each pixel's index in its tile's palette
    exact: bool  # every pixel shows its own colour


def _tile_sets(screen: np.ndarray):
    """Per 8x8 tile (row-major): its distinct colours and how many pixels show each."""
    h, w = screen.shape
    t = screen.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    out = []
    for pix in t:
        cols, counts = np.unique(pix, return_counts=True)
        out.append((frozenset(cols.tolist()), dict(zip(cols.tolist(), counts.tolist()))))
    return t, out


def _pack(sets: list[frozenset]) -> list[frozenset]:
    """First-fit decreasing: groups of at most 4 colours, each set inside one group."""
    groups: list[frozenset] = []
    for s in sorted(set(sets), key=lambda s: (-len(s), sorted(s))):
        best = None
        for i, g in enumerate(groups):
            u = g | s
            if len(u) <= N_COLOURS and (best is None or len(u) < len(groups[best] | s)):
                best = i
        if best is None:
            groups.append(s)
        else:
            groups[best] = groups[best] | s
    return groups


class _Costs:
    """ΔE of each tile shown through each candidate palette (summed over its pixels)."""

    def __init__(self, candidates: list[tuple], counts: list[dict]):
        colours = sorted({c for cand in candidates for c in cand} | {c for d in counts for c in d})
        index = {c: i for i, c in enumerate(colours)}
        lab = lab555(np.array(colours))
        dist = np.sqrt(((lab[:, None, :] - lab[None, :, :]) ** 2).sum(axis=2))
        self.cost = np.zeros((len(candidates), len(counts)))
        for j, d in enumerate(counts):
            cols = np.array([index[c] for c in d])
            n = np.array(list(d.values()), dtype=np.float64)
            for i, cand in enumerate(candidates):
                best = dist[np.ix_(cols, [index[c] for c in cand])].min(axis=1)
                self.cost[i, j] = float(best @ n)

    def total(self, chosen: list[int]) -> float:
        return float(self.cost[chosen].min(axis=0).sum())


def _medoids(costs: _Costs, fixed: int, k: int) -> list[int]:
    """``k`` candidates (besides ``fixed``, always in) minimising the summed error: greedy, then swaps."""
    n = costs.cost.shape[0]
    chosen = [fixed]
    while len(chosen) < k + 1 and len(chosen) < n:
        rest = [i for i in range(n) if i not in chosen]
        chosen.append(min(rest, key=lambda i: costs.total(chosen + [i])))
    best = costs.total(chosen)
    for _ in range(20):  # each round keeps the best single swap; converges in a few
        swap = None
        for pos in range(1, len(chosen)):
            for cand in range(n):
                if cand in chosen:
                    continue
                trial = chosen[:pos] + [cand] + chosen[pos + 1 :]
                t = costs.total(trial)
                if t < best - 1e-9:
                    best, swap = t, trial
        if swap is None:
            break
        chosen = swap
    return chosen


def _stable_order(groups: list[tuple], previous) -> list[tuple]:
    """Palettes 1..7 in the slots they had before where they are unchanged, so attributes change less."""
    slots: list = [None] * (N_PALETTES - 1)
    rest = []
    prev = [tuple(p) for p in previous[1:]] if previous is not None else []
    for g in groups:
        if g in prev and slots[prev.index(g)] is None:
            slots[prev.index(g)] = g
        else:
            rest.append(g)
    for i in range(len(slots)):
        if slots[i] is None:
            slots[i] = rest.pop(0) if rest else prev[i] if i < len(prev) else FIXED
    return slots


def _padded(group) -> tuple:
    cols = sorted(group)
    return tuple(cols + [cols[-1]] * (N_COLOURS - len(cols))) if cols else FIXED


def choose(screen: np.ndarray, previous=None) -> Choice:
    """Palettes, attributes and tile data that show the (H, W) RGB555 ``screen``; ``previous``
    palettes keep their slots where they still serve."""
    pixels, sets = _tile_sets(np.asarray(screen, dtype=np.int64))
    fixed = frozenset(FIXED)
    need = [s for s, _ in sets if not s <= fixed]
    groups = _pack(need)
    exact = len(groups) <= N_PALETTES - 1
    if exact:
        chosen = [_padded(g) for g in groups]
    else:
        candidates = [FIXED] + sorted({_padded(g) for g in groups} | {_padded(s) for s in need})
        costs = _Costs(candidates, [d for _, d in sets])
        chosen = [candidates[i] for i in _medoids(costs, 0, N_PALETTES - 1)[1:]]
    palettes = np.array([FIXED] + _stable_order(chosen, previous), dtype=np.int64)
    attrs, tiles = _assign(pixels, sets, palettes)
    return Choice(palettes, attrs, tiles, exact)


def _assign(pixels: np.ndarray, sets, palettes: np.ndarray):
    """Each tile's best palette (exact when one holds all its colours) and its pixels' indices."""
    lab_pal = lab555(palettes)  # (8, 4, 3)
    attrs = np.zeros(len(pixels), dtype=np.int64)
    index = np.zeros(pixels.shape, dtype=np.uint8)
    for t, (s, _) in enumerate(sets):
        fits = [p for p in range(N_PALETTES) if s <= set(palettes[p].tolist())]
        lab = lab555(pixels[t])
        if fits:
            p = fits[0]
        else:
            err = [np.sqrt(((lab[:, None] - lab_pal[p][None]) ** 2).sum(axis=2)).min(axis=1).sum() for p in range(N_PALETTES)]
            p = int(np.argmin(err))
        attrs[t] = p
        d = ((lab[:, None] - lab_pal[p][None]) ** 2).sum(axis=2)
        exact = pixels[t][:, None] == palettes[p][None]
        index[t] = np.where(exact.any(axis=1), exact.argmax(axis=1), d.argmin(axis=1))
    # a column of tiles: encode_tiles reads 8x8 blocks row-major, here one block per tile
    return attrs, encode_tiles(index.reshape(-1, 8))


def shown(choice: Choice, screen_shape=(144, 160)) -> np.ndarray:
    """(H, W) RGB555 the tiles and palettes of ``choice`` make, as the CGB draws them."""
    from firmware_bridge.device import decode_tiles

    idx = decode_tiles(choice.tiles).astype(np.int64)  # (n, 8, 8)
    pix = choice.palettes[choice.attrs[:, None, None], idx]
    h, w = screen_shape
    return pix.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)


def colour_screen(model, shades: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB555 screen, mask of the sprite's drawn pixels) for a ``ScreenModel`` whose render() is
    ``shades``: the sprite in its own colours, everything else (all of it without a model) in the
    fixed palette's shades."""
    screen = np.asarray(FIXED, dtype=np.int64)[np.asarray(shades)]
    mask = np.zeros(screen.shape, dtype=bool)
    lay = model.layout() if model is not None else None
    if lay is None:
        return screen, mask
    sprite = np.full((len(model.rows), lay.width), -1, dtype=np.int64)
    for r, row in enumerate(model.rows):
        if row is not None:
            sprite[r, : len(row)] = row
    pal = rgb555(model.palette_rgb)
    colours = np.where(sprite >= 0, pal[np.clip(sprite, 0, len(pal) - 1)], WHITE)  # unknown: the background
    big = np.repeat(np.repeat(colours, lay.scale, axis=0), lay.scale, axis=1)
    known = np.repeat(np.repeat(sprite >= 0, lay.scale, axis=0), lay.scale, axis=1)
    h = min(big.shape[0], lay.text_y - lay.y)
    w = min(big.shape[1], screen.shape[1] - lay.x)
    screen[lay.y : lay.y + h, lay.x : lay.x + w] = big[:h, :w]
    mask[lay.y : lay.y + h, lay.x : lay.x + w] = known[:h, :w]
    return screen, mask


def match(shown_rgb: np.ndarray, want: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(fraction of ``mask``'s pixels whose shown colour is ``want`` exactly in RGB555, mean ΔE
    (CIE76, Lab) of the others, 0 when none): how true a Game Boy Color's screen is to the sprite."""
    got = screen_rgb_to555(shown_rgb)[mask]
    want = np.asarray(want, dtype=np.int64)[mask]
    if not got.size:
        return 1.0, 0.0
    wrong = got != want
    if not wrong.any():
        return 1.0, 0.0
    err = np.sqrt(((lab555(got[wrong]) - lab555(want[wrong])) ** 2).sum(axis=-1))
    return float(1.0 - wrong.mean()), float(err.mean())


def screen_rgb_to555(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) screen colours as PyBoy draws a CGB's (``screen_rgb``) back to RGB555."""
    c = np.asarray(rgb, dtype=np.int64)[..., :3] >> 3
    return c[..., 0] | c[..., 1] << 5 | c[..., 2] << 10
