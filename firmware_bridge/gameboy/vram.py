"""Screens of 2bpp tiles to Game Boy VRAM writes that change what is shown only at a flip.

    python -c "from firmware_bridge.gameboy.vram import VramPlanner; print(VramPlanner().slots_free())"

The host's screen is 20x18 tiles (``display.encode_tiles``), one tile per screen position, as the
simulator shows it. The Game Boy holds 384 tiles and two 32x32 maps with 8-bit entries. The
ROM reads the top rows' tiles with 0x8000 addressing and switches to 0x8800 addressing at line
68 (inside row 8), so rows 0-7 can show tiles 0..255, row 8 tiles 128..255 (the same in both
addressings), rows 9-17 tiles 128..383: 360 different tiles fit. A map entry is always
``slot & 0xFF``.

Atomic frames without double-buffering all tile data: a commit writes changed tiles only into
slots the shown map does not use, writes the hidden map, and flips. Identical tiles share one
slot (the blank background and the text area's empty cells are one tile each), so a changing
sprite always finds free slots; a commit that does not fit is split into two flips (counted).
"""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np

from firmware_bridge import protocol as pr
from firmware_bridge.gameboy import packets as gl

N_SLOTS = 384
N_POS = pr.MAP_W * pr.MAP_H
MAP_BASE = (0x9800, 0x9C00)
TILE_BASE = 0x8000
SPLIT_ROW = gl.LYC_LINE // pr.TILE_W  # row 8: the switch happens somewhere inside it
TILES_PER_WRITE = gl.VRAM_CHUNK // pr.TILE_BYTES

_POOL_TOP = tuple(range(0, 128)) + tuple(range(128, 256))
_POOL_SPLIT = tuple(range(128, 256))
_POOL_BOTTOM = tuple(range(256, 384)) + tuple(range(128, 256))
_IN_POOL = {id(p): frozenset(p) for p in (_POOL_TOP, _POOL_SPLIT, _POOL_BOTTOM)}


def pool_of(row: int) -> tuple[int, ...]:
    """Slots a screen row can show, preferred first (the shared 128..255 last, as they are scarce)."""
    if row < SPLIT_ROW:
        return _POOL_TOP
    return _POOL_SPLIT if row == SPLIT_ROW else _POOL_BOTTOM


class VramPlanner:
    """What the Game Boy's VRAM holds, as the host believes it; ``commit`` returns the packets."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """The ROM's state after HELLO: every tile blank, both maps all zero entries."""
        self.tiles = np.zeros((N_SLOTS, pr.TILE_BYTES), dtype=np.uint8)
        self.where: dict[bytes, set[int]] = defaultdict(set)
        self.where[bytes(pr.TILE_BYTES)] = set(range(N_SLOTS))
        rows = np.arange(N_POS) // pr.MAP_W
        start = np.where(rows > SPLIT_ROW, 256, 0)  # entry 0 reads slot 256 under 0x8800 addressing
        self.maps = np.stack([start, start]).astype(np.int64)
        self.front = 0
        self.bgp = gl.BGP_DEFAULT
        self._writes: dict[int, bytes] = {}  # slot -> tile bytes written since the last flip
        self.stats = {"flips": 0, "split_commits": 0, "torn_commits": 0, "tiles_written": 0, "map_bytes": 0}

    def shown(self) -> np.ndarray:
        """(144, 160) shades the shown map and tiles make, as the LCD draws them."""
        from firmware_bridge.device import decode_tiles

        pix = decode_tiles(self.tiles)[self.maps[self.front].reshape(pr.MAP_H, pr.MAP_W)]
        return pix.transpose(0, 2, 1, 3).reshape(pr.SCREEN_H, pr.SCREEN_W)

    def commit(self, screen_tiles: np.ndarray, bgp: int = gl.BGP_DEFAULT) -> list[tuple[int, bytes]]:
        """Packets ((type, payload)) that make the Game Boy show ``screen_tiles`` (360, 16) at once."""
        screen_tiles = np.asarray(screen_tiles, dtype=np.uint8).reshape(N_POS, pr.TILE_BYTES)
        packets: list[tuple[int, bytes]] = []
        while True:
            assign, done = self._assign(screen_tiles, set(self.maps[self.front].tolist()))
            if not done and np.array_equal(assign, self.maps[self.front]):
                # not one free slot where it is needed: let the positions that change anyway
                # overwrite each other's tiles (visible for one frame, counted), then anything
                self.stats["torn_commits"] += 1
                assign, done = self._assign(screen_tiles, self._stable_slots(screen_tiles))
                if not done:
                    assign, done = self._assign(screen_tiles, set())
            packets += self._flip(assign, bgp)
            if done:
                return packets
            self.stats["split_commits"] += 1

    def _stable_slots(self, want: np.ndarray) -> set[int]:
        front = self.maps[self.front]
        same = (self.tiles[front] == want).all(axis=1)
        return set(front[same].tolist())

    def _assign(self, want: np.ndarray, protected: set[int]) -> tuple[np.ndarray, bool]:
        """A slot for each position, writing only slots outside ``protected``; positions left when
        free slots run out keep the shown one."""
        front, back = self.maps[self.front], self.maps[1 - self.front]
        free = {id(p): deque(s for s in p if s not in protected) for p in (_POOL_TOP, _POOL_SPLIT, _POOL_BOTTOM)}
        used: set[int] = set()
        assign = front.copy()
        for pos in range(N_POS):
            pool = pool_of(pos // pr.MAP_W)
            key = want[pos].tobytes()
            slot = self._reuse(key, pool, (int(back[pos]), int(front[pos])))
            if slot is None:
                slot = self._allocate(free, pool, used)
                if slot is None:
                    return assign, False
                self._write(slot, key)
            assign[pos] = slot
            used.add(slot)
        return assign, True

    def _reuse(self, key: bytes, pool: tuple[int, ...], prefer: tuple[int, ...]):
        have = self.where.get(key)
        if not have:
            return None
        allowed = _IN_POOL[id(pool)]
        for slot in prefer:
            if slot in have and slot in allowed:
                return slot
        return min((s for s in have if s in allowed), default=None)

    def _allocate(self, free: dict, pool: tuple[int, ...], used: set[int]):
        # the pools overlap (128..255): a slot another pool's deque handed out is in ``used``
        q = free[id(pool)]
        while q:
            slot = q.popleft()
            if slot not in used:
                return slot
        return None

    def _write(self, slot: int, key: bytes) -> None:
        old = self.tiles[slot].tobytes()
        self.where[old].discard(slot)
        self.where[key].add(slot)
        self.tiles[slot] = np.frombuffer(key, dtype=np.uint8)
        self._writes[slot] = key

    def _flip(self, assign: np.ndarray, bgp: int) -> list[tuple[int, bytes]]:
        hidden = 1 - self.front
        packets = self._tile_packets()
        packets += self._map_packets(hidden, assign)
        packets += self._before_flip(hidden, assign)
        packets.append((gl.T_FLIP, bytes([hidden, bgp])))
        self.maps[hidden] = assign
        self.front = hidden
        self.bgp = bgp
        self.stats["flips"] += 1
        return packets

    def _before_flip(self, hidden: int, assign: np.ndarray) -> list[tuple[int, bytes]]:
        """More packets for the hidden map before it is shown (a Game Boy Color's colours: vram_cgb.py)."""
        return []

    def _tile_packets(self) -> list[tuple[int, bytes]]:
        slots = sorted(self._writes)
        self.stats["tiles_written"] += len(slots)
        writes, self._writes = self._writes, {}
        out = []
        i = 0
        while i < len(slots):
            j = i
            while j + 1 < len(slots) and slots[j + 1] == slots[j] + 1 and j + 1 - i < TILES_PER_WRITE:
                j += 1
            data = b"".join(writes[s] for s in slots[i : j + 1])
            out.append(vram_packet(TILE_BASE + slots[i] * pr.TILE_BYTES, data))
            i = j + 1
        return out

    def _map_packets(self, hidden: int, assign: np.ndarray) -> list[tuple[int, bytes]]:
        """One write per map row, from its first changed entry to its last."""
        new = assign.reshape(pr.MAP_H, pr.MAP_W)
        out = []
        for row, a, b in row_spans(self.maps[hidden], assign):
            entries = (new[row, a:b] & 0xFF).astype(np.uint8).tobytes()
            out.append(vram_packet(MAP_BASE[hidden] + row * 32 + a, entries))
            self.stats["map_bytes"] += len(entries)
        return out


def row_spans(old: np.ndarray, new: np.ndarray):
    """(row, first, end) of each map row where ``old`` and ``new`` (N_POS entries) differ: one write
    per row, from its first changed entry to its last."""
    old = old.reshape(pr.MAP_H, pr.MAP_W)
    new = new.reshape(pr.MAP_H, pr.MAP_W)
    for row in range(pr.MAP_H):
        cols = np.flatnonzero(old[row] != new[row])
        if cols.size:
            yield row, int(cols[0]), int(cols[-1]) + 1


def vram_packet(addr: int, data: bytes) -> tuple[int, bytes]:
    return gl.T_VRAM, bytes([addr & 0xFF, addr >> 8]) + data
