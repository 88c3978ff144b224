"""The link ROM clocked the way a Raspberry Pi clocks it: mGBA with a master that sends a byte every
(8 bits at hz + gap_us + jitter) whether or not the ROM re-armed its port (``mgba://``,
firmware_bridge/gameboy/mgba_link.py), beside PyBoy, which waits for the ROM. At the default
``spi://`` setting and at each corner of the range ``spi://`` accepts: HELLO, HELLO storms, a whole
stream and the demo against the simulator, line faults and power cycles, a pulled cable, another
host's HELLO.

    python -m pytest -q tests/test_gameboy_timing.py            # the default set
    python -m pytest -q -m slow tests/test_gameboy_timing.py    # + 3 x 1,000 HELLOs and the corners' demos
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from firmware_bridge.errors import LinkTimeout, PortError
from firmware_bridge.gameboy import packets as gl
from firmware_bridge.gameboy import spi

pytest.importorskip("mgba.core", reason="mGBA is not installed (apt-get install libmgba0.10; pip install 'pxby-edge[mgba]')",
                    exc_type=ImportError)

from gameboy_checks import demo_screens, planner_vram, simulator_screen  # noqa: E402

from firmware_bridge.device import DeviceCore  # noqa: E402
from firmware_bridge.gameboy.mgba_link import MgbaPort, parse_mgba_url  # noqa: E402
from firmware_bridge.gameboy.pyboy_link import LineFaults  # noqa: E402
from firmware_bridge.gameboy.session import DEAD_LINK_S, connect  # noqa: E402
from firmware_bridge.stream import Streamer, synthetic_events  # noqa: E402
from firmware_bridge.virtual import VirtualLine, VirtualLink  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using SDL2 binaries:UserWarning")

DEFAULT = (spi.DEFAULT_HZ, spi.DEFAULT_GAP_US)
FASTEST_GAP = max(spi.GAP_MIN_US, math.ceil(spi.BYTE_MIN_US - 8e6 / spi.HZ_MAX))
CORNERS = [(spi.HZ_MIN, spi.GAP_MIN_US), (spi.HZ_MIN, spi.GAP_MAX_US), (spi.HZ_MAX, FASTEST_GAP),
           (spi.HZ_MAX, spi.GAP_MAX_US)]
JITTER_US = 100.0  # a Pi's xfer2 call and scheduling add 0..100 us to each gap


def setting(hz_gap, slow=False):
    hz, gap = hz_gap
    return pytest.param(hz, gap, marks=[pytest.mark.slow] if slow else [], id=f"hz{hz}-gap{gap}")


ALL_SETTINGS = [setting(DEFAULT)] + [setting(c) for c in CORNERS]


def _port(hz, gap, **opts) -> MgbaPort:
    opts.setdefault("jitter_us", JITTER_US)
    return MgbaPort(hz=hz, gap_us=gap, **opts)


def _vram(port) -> np.ndarray:
    if isinstance(port, MgbaPort):
        mem = port.core.memory.u8
        return np.array([mem[a] for a in range(0x8000, 0xA000)], dtype=np.uint8)
    mem = port.pyboy.memory
    return np.array([mem[a] for a in range(0x8000, 0xA000)], dtype=np.uint8)


def _pyboy_port(**opts):
    pytest.importorskip("pyboy", reason="PyBoy is not installed (pip install pxby-edge[dev])")
    from firmware_bridge.gameboy.pyboy_link import PyBoyPort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return PyBoyPort(**opts)


def _stream(port, events, at=None):
    """Stream ``events`` to ``port``; ``at`` maps an event index to what happens to the link just before it."""
    link = connect(port)
    streamer = Streamer(link, audio_rate=8000)
    for i, event in enumerate(events):
        if at and i in at:
            at[i](port, link)
        streamer.feed(event)
    streamer.finish()
    return link


@pytest.fixture(scope="module")
def synthetic():
    events = synthetic_events(frames=2, size=16, audio_s=0.25)
    return events, simulator_screen(events, 8000)


# -- spi:// and mgba:// options -----------------------------------------------------------------


@pytest.mark.parametrize("query,message", [
    ("hz=2000000", f"outside {spi.HZ_MIN}..{spi.HZ_MAX}"), ("hz=0", f"outside {spi.HZ_MIN}..{spi.HZ_MAX}"),
    ("hz=-5", f"outside {spi.HZ_MIN}..{spi.HZ_MAX}"), ("hz=4000", f"outside {spi.HZ_MIN}..{spi.HZ_MAX}"),
    ("gap_us=-1", f"outside {spi.GAP_MIN_US}..{spi.GAP_MAX_US}"), ("gap_us=10", f"outside {spi.GAP_MIN_US}.."),
    (f"gap_us={spi.GAP_MAX_US + 1}", f"..{spi.GAP_MAX_US}"), (f"hz=500000&gap_us={FASTEST_GAP - 1}", "us per byte"),
])
def test_spi_refuses_timing_the_rom_cannot_take_with_one_line(capsys, tmp_path, query, message):
    from pxby_edge.cli import main

    url = f"spi:///dev/spidev0.0?{query}"
    with pytest.raises(PortError, match=message):
        spi.parse_spi_url(url)
    code = main(["stream", "--synthetic", "--port", url, "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in out + err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("hz,gap", [DEFAULT, *CORNERS])
def test_spi_accepts_the_default_and_every_corner(hz, gap):
    assert spi.parse_spi_url(f"spi:///dev/spidev0.0?hz={hz}&gap_us={gap}")[2:] == (hz, gap)
    assert parse_mgba_url(f"mgba://?hz={hz}&gap_us={gap}") == {"hz": hz, "gap_us": gap}


@pytest.mark.parametrize("url", ["mgba://x", "mgba://?speed=1", "mgba://?hz=fast", "mgba://?model=GBA",
                                 "mgba://?jitter_us=-1", "mgba://?hz=0"])
def test_bad_mgba_urls_are_refused(url):
    with pytest.raises(PortError, match="mgba://|model|jitter_us|hz="):
        parse_mgba_url(url)


def test_spi_summary_says_the_screen_is_what_the_host_wrote():
    from firmware_bridge.gameboy.run import gameboy_line

    line = gameboy_line({"gb_flips": 1, "gb_packets": 2, "gb_bytes": 3, "gb_payload_bytes": 4, "gb_sound_frames": 0,
                     "gb_retransmits": 0, "gb_err_checksum": 0, "gb_timeouts": 0, "gb_screen": "believed"})
    assert "what the host believes it wrote" in line
    assert spi.SpiPort(_NullSpi()).believed


class _NullSpi:
    def xfer2(self, data, hz, gap):
        return [0xFF]


# -- the master clocks on schedule ----------------------------------------------------------------


class _UnarmedPort(MgbaPort):
    """The port held unarmed (SC bit 7 clear at every edge) while ``hold`` is set: a ROM that stopped
    re-arming, whatever its watchdog would do."""

    hold = False

    def _edge_now(self):
        if self.hold:
            self.gb.memory.io[0x02] = 0x7E
        super()._edge_now()


def test_master_clocks_on_schedule_and_a_byte_clocked_unarmed_is_lost():
    """The master keeps its schedule whatever the port does; while SC bit 7 is clear every byte it clocks
    is lost and it reads the SO line's level (0x00 or 0xFF)."""
    hz, gap = DEFAULT
    port = _UnarmedPort(hz=hz, gap_us=gap, sound=False)
    port.settle(60)
    per_byte_s = 8 / hz + gap * 1e-6
    assert port.stats["bytes"] == pytest.approx(port.elapsed_s / per_byte_s, rel=0.01)  # from a random phase
    assert port.stats["completions"] > 0.95 * port.stats["bytes"]
    before = dict(port.stats)
    port.hold = True
    port.settle(2)
    clocked = port.stats["bytes"] - before["bytes"]
    assert clocked > 150 and port.stats["lost_bytes"] - before["lost_bytes"] >= clocked - 1
    assert port.stats["completions"] - before["completions"] <= 1 and port.host.last_status in (0x00, 0xFF)
    port.hold = False
    port.settle(30)
    assert port.stats["completions"] - before["completions"] > 100  # armed again: bytes reach the ROM
    assert port.host.last_status not in (0x00, 0xFF)


# -- HELLO ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("hz,gap", ALL_SETTINGS)
@pytest.mark.parametrize("seed", [2, 3])
def test_hello_is_acknowledged_within_30_frames(hz, gap, seed):
    """The Game Boy is on (booted 10 frames) when the host starts clocking, at a random point of a frame."""
    port = _port(hz, gap, sound=False, seed=seed, boot_frames=10)
    port.host.hello()
    port.run_until(lambda: port.host.idle, max_frames=30, what="HELLO")
    assert port.host.acked == {gl.T_HELLO: 1}


def _hello_storm(hz, gap, seed, n, stop_at_death=True):
    """``n`` HELLOs, each sent once the one before is applied, with jittered byte timing; the HELLOs not
    applied in 300 frames (5 s: the link is dead), each followed by a power cycle so the count goes on."""
    port = _port(hz, gap, sound=False, seed=seed, boot_frames=10)
    deaths = 0
    for _ in range(n):
        port.host.hello()
        try:
            port.run_until(lambda: port.host.drained, max_frames=300, what="HELLO")  # applied, not only queued
        except LinkTimeout:
            deaths += 1
            if stop_at_death:
                break
            port.host = gl.LinkHost()
            port.power_cycle()
    return deaths, port


@pytest.mark.parametrize("hz,gap", [setting(DEFAULT), setting((DEFAULT[0], 300))])
def test_200_jittered_hellos_never_kill_the_link(hz, gap):
    deaths, port = _hello_storm(hz, gap, seed=2, n=200)
    assert deaths == 0
    assert port.host.acked[gl.T_HELLO] == 200


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("hz,gap", ALL_SETTINGS)
def test_1000_jittered_hellos_never_kill_the_link(hz, gap, seed):
    deaths, port = _hello_storm(hz, gap, seed=seed, n=1000, stop_at_death=False)
    assert deaths == 0
    assert port.host.acked[gl.T_HELLO] == 1000


# -- a whole stream, the demo ----------------------------------------------------------------------


def _check_stream(port, synthetic, **at):
    events, simulated = synthetic
    link = _stream(port, events, **at)
    assert np.array_equal(port.shades(), simulated)
    assert np.array_equal(_vram(port), planner_vram(link.planner))  # no VRAM write lost
    return link


@pytest.mark.parametrize("hz,gap", [setting(DEFAULT)] + [setting(c, slow=True) for c in CORNERS])
def test_stream_ends_with_the_simulators_screen(synthetic, hz, gap):
    port = _port(hz, gap, seed=3)
    link = _check_stream(port, synthetic)
    reference = {s.tobytes() for s in link.reference}
    assert port.frames and all(f.tobytes() in reference for f in port.frames)  # every shown frame whole


@pytest.mark.parametrize("hz,gap", [setting(DEFAULT)] + [setting(c, slow=True) for c in CORNERS])
def test_demo_creature_equals_the_simulator(tmp_path, hz, gap):
    pytest.importorskip("ai_edge_litert", reason="the bundled model needs ai-edge-litert (pip install pxby-edge[pi])")
    simulated, shown = demo_screens(tmp_path, "--port", f"mgba://?hz={hz}&gap_us={gap}&jitter_us={JITTER_US:g}")
    assert (simulated == 3).sum() > 500
    assert np.array_equal(shown, simulated)


# -- faults, power cycles ---------------------------------------------------------------------------


def _power_cycle(port, link):
    port.power_cycle()


def _fault_run(port, synthetic):
    link = _check_stream(port, synthetic, at={150: _power_cycle, 400: _power_cycle})
    c = link.counters()
    assert c["gb_line_corrupted"] > 50 and c["gb_line_dropped"] > 20
    assert c["gb_recoveries"] >= 2  # each power cycle: a new session, the newest screen redrawn
    return c


def test_faults_and_power_cycles_in_pyboy(synthetic):
    port = _pyboy_port(faults=LineFaults(corrupt=0.01, drop=0.005, seed=5))
    _fault_run(port, synthetic)
    port.close()


@pytest.mark.parametrize("hz,gap", [setting(DEFAULT)] + [setting(c, slow=True) for c in CORNERS])
def test_faults_and_power_cycles_in_mgba(synthetic, hz, gap):
    port = _port(hz, gap, seed=6, faults=LineFaults(corrupt=0.01, drop=0.005, seed=6))
    c = _fault_run(port, synthetic)
    assert port.stats["power_cycles"] == 2 and c["gb_retransmits"] > 0


def _stray_edge(port, link):
    port.extra_edge()


@pytest.mark.parametrize("hz,gap", [setting(DEFAULT), setting((spi.HZ_MIN, spi.GAP_MIN_US)),
                                    setting((spi.HZ_MAX, FASTEST_GAP))])
def test_a_stray_clock_edge_mid_stream_is_brought_back_in_step(synthetic, hz, gap):
    """One extra edge (the clock pin rising to mode 3's idle level, a glitch) slips every later byte by a
    bit until the ROM's re-arm or the host's pause puts the boundary back; the stream ends whole."""
    port = _port(hz, gap, seed=9)
    link = _check_stream(port, synthetic, at={120: _stray_edge, 300: _stray_edge})
    assert port._extra_edges == 0 and link.counters()["gb_retransmits"] > 0


# -- a dead link, another host's HELLO (issue 21, finding 3) ----------------------------------------


def _unplug(port, link):
    port.unplugged = True


@pytest.mark.parametrize("emulator", ["pyboy", "mgba"])
def test_a_pulled_cable_ends_the_stream_in_bounded_time(synthetic, emulator):
    port = _pyboy_port() if emulator == "pyboy" else _port(131072, 300, seed=7)
    with pytest.raises(LinkTimeout, match="no answer from the Game Boy"):
        _stream(port, synthetic[0], at={200: _unplug})
    # the error came DEAD_LINK_S after the pull, not 100,000 frames later
    assert port.elapsed_s < 60 + DEAD_LINK_S


def test_a_pulled_cable_ends_an_spi_stream_in_bounded_time(synthetic, monkeypatch):
    """spi:// with the cable pulled: the Pi reads 0xFF for every byte (MISO floats high). The host's
    resync pauses are counted, not slept, so the test takes no real time."""
    monkeypatch.setattr(spi.time, "sleep", lambda s: None)
    port = spi.SpiPort(_NullSpi(), url="spi:///dev/spidev0.0")
    with pytest.raises(LinkTimeout, match=r"no answer from the Game Boy on spi:///dev/spidev0.0 .*0xff"):
        _stream(port, synthetic[0])
    assert DEAD_LINK_S < port.elapsed_s < DEAD_LINK_S + 1


def test_a_link_that_answers_but_takes_nothing_ends_in_bounded_time(synthetic):
    """Every byte garbled both ways: the Game Boy answers (its status bytes arrive, mangled) but no packet
    ever gets through; the stream ends once STALL_S of port time and STALL_BYTES have passed without one
    (the host's pauses after timeouts clock no bytes), instead of resending for ever."""
    from firmware_bridge.gameboy.session import STALL_S

    port = _port(*DEFAULT, seed=10, faults=LineFaults(corrupt=1.0, seed=10))
    with pytest.raises(LinkTimeout, match="answers but took no packet"):
        _stream(port, synthetic[0])
    assert STALL_S < port.elapsed_s < 2 * STALL_S


def test_a_pulled_cable_is_one_error_line_from_the_stream_command(capsys, tmp_path, monkeypatch):
    from firmware_bridge import transports
    from pxby_edge.cli import main

    opened = []
    real_open = transports.open_gameboy_port

    def unplugged_port(url, **opts):
        port = real_open(url, **opts)
        port.unplugged = True
        opened.append(port)
        return port

    monkeypatch.setattr(transports, "open_gameboy_port", unplugged_port)
    code = main(["stream", "--synthetic", "--port", "mgba://?gap_us=300", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "no answer from the Game Boy" in err and "0xff" in err and "Traceback" not in out + err
    assert opened[0].elapsed_s < DEAD_LINK_S + 1


def test_the_devices_catch_all_lets_the_owners_link_error_through():
    """A frame's own failure is counted and refused; the owner's LinkTimeout (its Game Boy died behind
    ``on_commit``) reaches the stream instead of being swallowed frame after frame."""
    def dead(screen, frame):
        raise LinkTimeout("the Game Boy: no answer")

    link = VirtualLink(DeviceCore(on_commit=dead), VirtualLine(921600), seed=3, line_bps=92160).connect()
    streamer = Streamer(link, audio_rate=8000)
    with pytest.raises(LinkTimeout, match="no answer"):
        for event in synthetic_events(frames=1, size=8, audio_s=0.1):
            streamer.feed(event)
        streamer.finish()
    assert link.device.counters.get("handler_errors", 0) == 0


def _foreign_hello(port, link):
    """Between two of our packets, another host opens its own session on the Game Boy (a seq far from
    ours: the ROM clears its screen), then goes quiet. (Clocked in the middle of one of our packets, it
    would only garble both: a checksum error, which the resend repairs.)"""
    port.run_until(lambda: port.host.idle)
    seq = (port.host.seq + 60) % gl.SEQ_MOD
    port.inject(gl.encode_packet(seq, gl.T_HELLO) + bytes(8))


@pytest.mark.parametrize("emulator", ["pyboy", "mgba"])
def test_a_foreign_hello_mid_stream_is_recovered(synthetic, emulator):
    port = _pyboy_port() if emulator == "pyboy" else _port(131072, 300, seed=8)
    link = _check_stream(port, synthetic, at={250: _foreign_hello})
    assert link.counters()["gb_recoveries"] >= 1
