"""A simulated serial line and clock, to run a host and a device against each other without I/O.

    python bench/bench_link.py --baud 115200

``VirtualLine`` moves bytes at ``baud / 10`` bytes per second (8N1) in each direction, and can
corrupt, drop and inject bytes from a seeded generator. ``run_until`` steps a ``HostSession``
and a ``DeviceCore`` one simulated millisecond at a time, so a benchmark at 115200 baud or a
test of many seconds of link time runs as fast as the CPU allows and gives the same answer
every time.
"""

from __future__ import annotations

import random
from typing import Callable, Optional

from firmware_bridge.link import HostSession, PumpedLink


class Direction:
    """One direction of a line: a byte queue drained at the line rate, with optional faults."""

    def __init__(self, baud: Optional[int], rng: random.Random, corrupt: float = 0.0, drop: float = 0.0):
        self.bytes_per_ms = None if baud is None else baud / 10.0 / 1000.0
        self.rng = rng
        self.corrupt = corrupt
        self.drop = drop
        self.buf = bytearray()
        self.budget = 0.0

    def write(self, data: bytes) -> None:
        self.buf += data

    def step(self) -> bytes:
        """Bytes that finish arriving during the next millisecond."""
        if not self.buf:
            self.budget = 0.0  # an idle line does not save up capacity
            return b""
        if self.bytes_per_ms is None:
            n = len(self.buf)
        else:
            self.budget += self.bytes_per_ms
            n = min(int(self.budget), len(self.buf))
            self.budget -= n
        out = bytes(self.buf[:n])
        del self.buf[:n]
        if self.corrupt or self.drop:
            out = self._faults(out)
        return out

    def _faults(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            r = self.rng.random()
            if r < self.drop:
                continue
            if r < self.drop + self.corrupt:
                b ^= 1 << self.rng.randrange(8)
            out.append(b)
        return bytes(out)


class VirtualLine:
    """Host <-> device, full duplex, at one baud rate."""

    def __init__(self, baud: Optional[int] = 115200, *, seed: int = 0, corrupt: float = 0.0, drop: float = 0.0):
        rng = random.Random(seed)
        self.baud = baud
        self.to_device = Direction(baud, rng, corrupt, drop)
        self.to_host = Direction(baud, rng, corrupt, drop)
        self.now_ms = 0


def run_until(host, device, line: VirtualLine, done: Callable[[], bool], *, limit_ms: int = 600_000,
              each_ms: Optional[Callable[[int], None]] = None) -> int:
    """Step host, line and device by 1 ms until ``done()``; returns the simulated ms it took."""
    start = line.now_ms
    while not done():
        if line.now_ms - start > limit_ms:
            raise TimeoutError(f"not done after {limit_ms} simulated ms")
        line.now_ms += 1
        now = line.now_ms
        data = line.to_device.step()
        if data:
            device.feed(data, now)
        else:
            device.tick(now)
        line.to_device.write(host.poll(now))
        back = line.to_host.step()
        if back:
            host.receive(back, now)
        line.to_host.write(device.take_output())
        if each_ms is not None:
            each_ms(now)
    return line.now_ms - start


class VirtualLink(PumpedLink):
    """A ``PumpedLink`` whose port is a ``VirtualLine`` to a ``DeviceCore``: each pump is 1 simulated ms."""

    def __init__(self, device, line: Optional[VirtualLine] = None, **session_opts):
        self.device = device
        self.line = line or VirtualLine(None)
        self.session = HostSession(**session_opts)
        self.url = "virtual://"
        self.baud = self.line.baud
        self.each_ms: Optional[Callable[[int], None]] = None

    def clock(self) -> int:
        return self.line.now_ms

    def pump(self, block: bool = True) -> None:
        line, now = self.line, self.line.now_ms + 1
        line.now_ms = now
        data = line.to_device.step()
        if data:
            self.device.feed(data, now)
        else:
            self.device.tick(now)
        line.to_device.write(self.session.poll(now))
        back = line.to_host.step()
        if back:
            self.session.receive(back, now)
        line.to_host.write(self.device.take_output())
        if self.each_ms is not None:
            self.each_ms(now)
