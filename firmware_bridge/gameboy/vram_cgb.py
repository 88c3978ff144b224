"""``VramPlanner`` for a Game Boy Color: tiles as before, plus tile attributes and palettes per flip.

    python -c "from firmware_bridge.gameboy.vram_cgb import CgbPlanner; print(CgbPlanner().palettes[0])"

The hidden map's attributes (VRAM bank 1, the same addresses as the map: bits 0-2 the palette) are
written like its entries, one packet per map row from the first changed entry to the last, and the
palettes that changed in one T_PALETTE just before the FLIP: the ROM applies them in the
VBlank that shows the new map, so a frame never mixes old palettes and new tiles.
"""

from __future__ import annotations

import numpy as np

from firmware_bridge import protocol as pr
from firmware_bridge.gameboy import packets as gl
from firmware_bridge.gameboy.palettes import N_COLOURS, N_PALETTES, WHITE, Choice, shown
from firmware_bridge.gameboy.vram import MAP_BASE, N_POS, VramPlanner, row_spans


class CgbPlanner(VramPlanner):
    """``commit_colour(choice)`` returns the packets that show a ``palettes.Choice`` at once."""

    def reset(self) -> None:
        """After HELLO the ROM has white palettes and zero attributes in both maps."""
        super().reset()
        self.attrs = np.zeros((2, N_POS), dtype=np.int64)
        self.palettes = np.full((N_PALETTES, N_COLOURS), WHITE, dtype=np.int64)
        self._want: Choice | None = None
        self.stats.update(attr_bytes=0, palette_writes=0)

    def commit_colour(self, choice: Choice) -> list[tuple[int, bytes]]:
        self._want = choice
        return self.commit(choice.tiles)

    def _before_flip(self, hidden: int, assign: np.ndarray) -> list[tuple[int, bytes]]:
        want = self._want
        if want is None:
            return []
        # a split commit shows some positions' old tiles for one flip: they keep their old palette
        done = (self.tiles[assign] == want.tiles).all(axis=1)
        attrs = np.where(done, want.attrs, self.attrs[self.front])
        out = self._attr_packets(hidden, attrs)
        self.attrs[hidden] = attrs
        changed = np.flatnonzero((want.palettes != self.palettes).any(axis=1))
        if changed.size:
            # only the palettes that changed (from the first to the last): the ROM writes them in the
            # VBlank of the flip, where a few bytes fit whatever the serial interrupt takes of it
            a, b = int(changed[0]), int(changed[-1]) + 1
            self.palettes = want.palettes.copy()
            out.append((gl.T_PALETTE, bytes([a]) + self.palettes[a:b].astype("<u2").tobytes()))
            self.stats["palette_writes"] += 1
        return out

    def _attr_packets(self, hidden: int, attrs: np.ndarray) -> list[tuple[int, bytes]]:
        new = attrs.reshape(pr.MAP_H, pr.MAP_W)
        out = []
        for row, a, b in row_spans(self.attrs[hidden], attrs):
            addr = MAP_BASE[hidden] + row * 32 + a
            out.append((gl.T_ATTR, bytes([addr & 0xFF, addr >> 8]) + new[row, a:b].astype(np.uint8).tobytes()))
            self.stats["attr_bytes"] += b - a
        return out

    def shown_colour(self) -> np.ndarray:
        """(144, 160) RGB555 the shown map, its attributes and the palettes make."""
        front = self.maps[self.front]
        return shown(Choice(self.palettes, self.attrs[self.front], self.tiles[front], True))
