"""The queued-packet link ROM at real timing (mGBA clocked as ``spi://`` clocks): speed, the demo's
creature, and a port out of step with the host's bytes.

    python -m pytest -q tests/test_gameboy_realtime.py

Rates and times are emulated (frames of 1/59.73 s), so they do not depend on the machine's load.
docs/BENCHMARKS.md has the figures (python bench/bench_gameboy.py --mgba).
"""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge.gameboy import packets as gl
from firmware_bridge.gameboy import spi

pytest.importorskip("mgba.core", reason="mGBA is not installed (apt-get install libmgba0.10; pip install 'pxby-edge[mgba]')",
                    exc_type=ImportError)

from firmware_bridge.gameboy.mgba_link import FRAME_HZ, MgbaPort  # noqa: E402


def _vram(port, addr: int, n: int) -> bytes:
    mem = port.core.memory.u8
    return bytes(mem[a] for a in range(addr, addr + n))


def test_payload_rate_at_the_spi_default_is_over_3_kb_per_s():
    port = MgbaPort(hz=spi.DEFAULT_HZ, gap_us=spi.DEFAULT_GAP_US, seed=1, sound=False)
    host = port.host
    host.hello()
    port.run_until(lambda: host.drained, 60, "HELLO")
    start, resent, lost = port.ticks, host.counters["retransmits"], port.stats["lost_bytes"]
    data = [bytes((i * 7 + j) & 0xFF for j in range(gl.VRAM_CHUNK)) for i in range(40)]
    for i, chunk in enumerate(data):
        addr = 0x8000 + i * gl.VRAM_CHUNK
        host.send(gl.T_VRAM, bytes([addr & 0xFF, addr >> 8]) + chunk)
    port.run_until(lambda: host.drained, 600, "40 VRAM writes")
    seconds = (port.ticks - start) / FRAME_HZ
    assert 40 * (gl.VRAM_CHUNK + 2) / seconds > 3000
    assert _vram(port, 0x8000, 40 * gl.VRAM_CHUNK) == b"".join(data)
    # before HELLO's ACK bytes may be lost (the master starts while the ROM boots); not after it
    assert host.counters["retransmits"] == resent and port.stats["lost_bytes"] == lost
    port.close()


@pytest.mark.parametrize("hz,heals", [(8192, False), (65536, True)])
def test_a_port_out_of_step_with_the_host_falls_back_in_step(hz, heals):
    """The port counts 4 edges more than the host clocked (armed mid-byte, a glitch on SC): each byte it takes
    spans two of the host's. At 65536 Hz the serial interrupt's re-arm lands in a gap within a few bytes;
    at 8192 Hz (spi.HZ_MIN, 122 us a bit) it never would, and only the host's pause and the ROM's
    quiet-line re-arm put it back in step."""
    port = MgbaPort(hz=hz, gap_us=spi.GAP_MIN_US, jitter_us=100.0, seed=3, sound=False)
    host = port.host
    host.hello()
    port.run_until(lambda: host.drained, 200, "HELLO")
    # mid-byte, so the shift takes: a port just armed (no edge yet since the ROM wrote SB) starts its
    # count afresh at the next edge, which would undo it (where a frame ends depends on the ROM's timing)
    port.run_until(lambda: port.core.memory.u8[0xFF02] & 0x80 and 0 < port._gb_bits < 8, 50, "a byte under way")
    # the harness's count of edges the Game Boy's port has shifted since it was armed: 4 more than the
    # host has clocked of the current byte
    port._gb_bits = (port._gb_bits + 4) % 8
    host.send(gl.T_VRAM, bytes([0x00, 0x90]) + bytes(range(1, 33)))
    port.run_until(lambda: host.drained, 300, "a VRAM write")
    assert _vram(port, 0x9000, 32) == bytes(range(1, 33))
    if not heals:
        assert host.counters["pauses"] >= 1
        assert port.core.memory.u8[0xFF83] >= 1  # rom/hram.h REARMS: the watchdog realigned the port
    port.close()


def test_the_demo_creature_is_on_screen_within_2_5_s_of_hello():
    pytest.importorskip("ai_edge_litert", reason="the bundled model needs ai-edge-litert (pip install pxby-edge[pi])")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        import bench_gameboy
    finally:
        sys.path.pop(0)
    got = bench_gameboy.creature_figures(f"mgba://?hz={spi.DEFAULT_HZ}&gap_us={spi.DEFAULT_GAP_US}&jitter_us=100")
    assert got["final_screen_equals_simulator"]
    assert got["hello_to_creature_s"] <= 2.5
    assert np.isfinite(got["hello_to_creature_s"])
