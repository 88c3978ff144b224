"""A Game Boy as the handheld: the link ROM in PyBoy against the simulator, faults, start timings, sound, spi://.

    python -m pytest -q tests/test_gameboy.py            # the default, fast set
    python -m pytest -q -m slow tests/test_gameboy.py    # + the 20-run start-timing sweep
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.gameboy import apu
from firmware_bridge.gameboy import packets as gl
from firmware_bridge.gameboy.vram import VramPlanner, pool_of

pyboy = pytest.importorskip("pyboy", reason="PyBoy is not installed (pip install pxby-edge[dev])")

from gameboy_checks import demo_screens, planner_vram, simulator_screen  # noqa: E402

from firmware_bridge.gameboy.pyboy_link import LineFaults, PyBoyPort  # noqa: E402
from firmware_bridge.gameboy.session import connect  # noqa: E402
from firmware_bridge.stream import Streamer, synthetic_events  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using SDL2 binaries:UserWarning")


def _to_gameboy(events, audio_rate, *, faults=None, boot_frames=0, lead_bytes=0, sound_method="registers",
                audio_total=None):
    """Stream ``events`` to the ROM in PyBoy; (port, link) after everything is on the Game Boy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        port = PyBoyPort(faults=faults, boot_frames=boot_frames)
    # the host starts talking at an arbitrary point of the ROM's frame: idle bytes first
    port.run_until(lambda: port.peer.exchanges >= lead_bytes)
    link = connect(port, sound_method=sound_method)
    streamer = Streamer(link, audio_rate=audio_rate, audio_total=audio_total)
    for event in events:
        streamer.feed(event)
    streamer.finish()
    return port, link


def _vram(port) -> np.ndarray:
    mem = port.pyboy.memory
    return np.array([mem[a] for a in range(0x8000, 0xA000)], dtype=np.uint8)


@pytest.fixture(scope="module")
def synthetic():
    events = synthetic_events(frames=2, size=16, audio_s=0.25)
    return events, simulator_screen(events, 8000)


# -- link layer -------------------------------------------------------------------------------------


def test_vectors_encode_as_documented():
    for v in gl.VECTORS:
        wire = bytes.fromhex(v["wire"])
        if len(wire) >= 6 and wire[2] + 6 == len(wire) and "checksum" not in v["name"]:
            assert bytes(gl.fletcher(wire[1:-2])) == wire[-2:], v["name"]


def test_protocol_md_lists_the_vectors_the_rom_is_checked_against():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    rows = doc[doc.index("| vector | wire (hex) | answer |"):].splitlines()[2 : 2 + len(gl.VECTORS)]
    for v, row in zip(gl.VECTORS, rows):
        assert row == f"| {v['name']} | `{v['wire']}` | `0x{v['answer']:02x}` {gl.status_name(v['answer'])} |"


def _settled(status: int) -> bool:
    """An error, or an ACK once the ROM has applied every packet it queued."""
    return status & 0xC0 == gl.ST_ERR or status & (gl.ST_ACK | gl.ST_APPLIED) == gl.ST_ACK | gl.ST_APPLIED


@pytest.mark.parametrize("cgb", [False, True], ids=["dmg", "cgb"])
def test_rom_answers_every_vector_with_the_documented_status(cgb):
    class Scripted:
        def __init__(self):
            self.out: list[int] = []
            self.seen: list[int] = []

        def exchange(self, status):
            self.seen.append(status)
            return self.out.pop(0) if self.out else gl.IDLE

        def take_pause(self):
            return 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        port = PyBoyPort(sound=False, cgb=cgb)
    script = port.peer.host = Scripted()
    for v in gl.VECTORS:
        script.out = list(bytes.fromhex(v["wire"])) + [gl.IDLE] * 4
        script.seen.clear()
        port.run_until(lambda: not script.out and len(set(script.seen[-3:])) == 1 and _settled(script.seen[-1]),
                       200, v["name"])
        assert script.seen[-1] == v["answer"], f"{v['name']}: {gl.status_name(script.seen[-1])}"
    mem = port.pyboy.memory
    assert [mem[0x8010 + i] for i in range(16)] == list(range(16))  # the VRAM vector landed
    # the ATTR vector: VRAM bank 1 on a Color; on a DMG (no bank 1) nothing, the map entry it shares stays 0
    assert (mem[1, 0x9C00] == 3) if cgb else (mem[0x9C00] == 0)
    port.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.binary(max_size=gl.MAX_LEN)), max_size=6),
       st.integers(0, gl.SEQ_MOD - 1), st.integers(0, 2**32 - 1))
def test_host_delivers_each_packet_once_in_order_whatever_the_status_noise(packets, seq0, seed):
    """Against a minimal model of the ROM's receiver that answers through a noisy status line."""
    rnd = random.Random(seed)
    host = gl.LinkHost(seq=seq0)
    for ptype, payload in packets:
        host.send(ptype, payload)
    got, buf, status, expect = [], bytearray(), gl.ST_READY, seq0
    for _ in range(200_000):
        if host.idle:
            break
        noisy = status ^ rnd.randrange(1, 256) if rnd.random() < 0.05 else status
        byte = host.exchange(noisy)
        if rnd.random() < 0.02:
            continue  # dropped on the way
        buf.append(byte)
        while buf and buf[0] != gl.SYNC:
            buf.pop(0)
        if len(buf) >= 4 and len(buf) >= buf[2] + 6:
            body, check = bytes(buf[1 : buf[2] + 4]), bytes(buf[buf[2] + 4 : buf[2] + 6])
            del buf[: buf[2] + 6]
            if bytes(gl.fletcher(body)) != check:
                status = gl.ST_ERR | gl.ERR_CHECKSUM
            elif body[0] == expect:
                got.append((body[2], body[3:]))
                expect = (expect + 1) % gl.SEQ_MOD
                status = gl.ST_ACK | body[0]
            else:
                status = gl.ST_ACK | body[0]
    assert host.idle
    assert got == [(t, p) for t, p in packets]


# -- screen ---------------------------------------------------------------------------------------


def test_planner_keeps_every_row_in_the_slots_its_addressing_reaches():
    rng = np.random.default_rng(1)
    planner = VramPlanner()
    for _ in range(4):
        tiles = rng.integers(0, 256, size=(360, 16), dtype=np.uint8)
        tiles[rng.random(360) < 0.2] = 0
        planner.commit(tiles)
        shown = planner.maps[planner.front]
        assert all(shown[p] in pool_of(p // 20) for p in range(360))
        assert np.array_equal(planner.tiles[shown], tiles)
    assert planner.stats["split_commits"] >= 1  # ~290 distinct tiles twice do not fit in 384 slots


def test_gameboy_screen_equals_the_simulator_and_no_frame_is_torn(synthetic):
    events, simulated = synthetic
    port, link = _to_gameboy(events, 8000)
    assert np.array_equal(port.shades(), simulated)
    assert np.array_equal(_vram(port), planner_vram(link.planner))  # no VRAM write lost
    reference = {s.tobytes() for s in link.reference}
    assert len(port.frames) == link.planner.stats["flips"] >= 30
    assert all(f.tobytes() in reference for f in port.frames)  # every shown frame is a whole commit
    port.close()


def test_faults_on_the_cable_are_repaired_and_counted(synthetic):
    events, simulated = synthetic
    faults = LineFaults(corrupt=0.01, drop=0.005, seed=5)
    port, link = _to_gameboy(events, 8000, faults=faults)
    assert np.array_equal(port.shades(), simulated)
    assert np.array_equal(_vram(port), planner_vram(link.planner))
    c = link.counters()
    assert c["gb_line_corrupted"] > 50 and c["gb_line_dropped"] > 20
    assert c["gb_retransmits"] > 0 and c["gb_retransmits"] == c["gb_err_checksum"] + c["gb_timeouts"] + sum(
        c[f"gb_err_{n}"] for n in ("length", "type", "sequence", "overrun", "payload", "no session"))
    port.close()


TIMINGS = [(boot, lead) for boot in range(5) for lead in (0, 17, 33, 50)]  # 20 starts


@pytest.mark.parametrize("boot,lead", [TIMINGS[0], TIMINGS[-3]])
def test_start_timing_representatives(synthetic, boot, lead):
    _check_start(synthetic, boot, lead)


@pytest.mark.slow
@pytest.mark.parametrize("boot,lead", TIMINGS)
def test_start_timing_sweep(synthetic, boot, lead):
    _check_start(synthetic, boot, lead)


def _check_start(synthetic, boot, lead):
    events, simulated = synthetic
    port, link = _to_gameboy(events[:300], 8000, boot_frames=boot * 7, lead_bytes=lead)
    assert np.array_equal(_vram(port), planner_vram(link.planner))
    assert np.array_equal(port.shades(), link.planner.shown())
    port.close()


# -- sound ----------------------------------------------------------------------------------------


def test_the_cry_plays_and_apu_registers_are_closer_than_wave_ram():
    """The documented measure (apu.compare): log-spectral distance to the reference the simulator
    plays (the Game Boy-filtered sound at 8192 Hz), and envelope correlation."""
    events = synthetic_events(frames=1, size=8, audio_s=0.6)
    scores = {}
    for method in apu.METHODS:
        port, link = _to_gameboy(events, 8000, sound_method=method)
        reference = np.concatenate(link.played) / 127.5 - 1.0
        scores[method] = apu.compare(reference, np.concatenate(port.audio[link.sound_start:]), port.sample_rate)
        port.close()
    noise = apu.log_spectral_distance(reference, np.random.default_rng(0).normal(size=reference.size))
    assert scores["registers"]["lsd_db"] < scores["wave"]["lsd_db"] < noise
    assert scores["registers"]["lsd_db"] < 0.7 * noise  # the chirp is there, not just something


# -- spi:// ---------------------------------------------------------------------------------------


class FakeSpiDev:
    """spidev's interface with a receiver model behind it: every packet whole is acknowledged."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.rx = bytearray()
        self.status = gl.ST_READY
        self.packets: list[tuple[int, bytes]] = []
        self.mode = self.max_speed_hz = self.bits_per_word = None
        self.lsbfirst = True

    def xfer2(self, data, speed_hz=0, delay_usecs=0):
        self.calls.append((list(data), speed_hz, delay_usecs))
        answer = self.status
        self.rx += bytes(data)
        while self.rx and self.rx[0] != gl.SYNC:
            self.rx.pop(0)
        if len(self.rx) >= 4 and len(self.rx) >= self.rx[2] + 6:
            n = self.rx[2]
            body = bytes(self.rx[1 : n + 4])
            assert bytes(gl.fletcher(body)) == bytes(self.rx[n + 4 : n + 6])
            self.packets.append((body[2], body[3:]))
            self.status = gl.ST_ACK | body[0]
            del self.rx[: n + 6]
        return [answer]


def test_spi_port_clocks_one_paced_byte_per_transfer_in_mode_3():
    from firmware_bridge.gameboy.spi import SpiPort

    fake = FakeSpiDev()
    port = SpiPort.from_url("spi:///dev/spidev0.1?hz=100000&gap_us=150", opener=lambda bus, dev: fake)
    assert (fake.mode, fake.max_speed_hz, fake.bits_per_word, fake.lsbfirst) == (3, 100000, 8, False)
    sent = [(gl.T_HELLO, b""), (gl.T_VRAM, bytes([0, 0x80]) + bytes(range(128))), (gl.T_FLIP, bytes([1, 0xE4]))]
    for ptype, payload in sent:
        port.host.send(ptype, payload)
    port.run_until(lambda: port.host.idle, 5000)
    assert fake.packets == sent
    assert all(len(data) == 1 and hz == 100000 and gap == 150 for data, hz, gap in fake.calls)
    wire = b"".join(bytes(d) for d, _, _ in fake.calls)
    assert gl.encode_packet(1, gl.T_VRAM, sent[1][1]) in wire


@pytest.mark.parametrize("url", ["spi:///dev/spidev0", "spi:///dev/spidev0.0?speed=1", "spi://x?hz=fast"])
def test_bad_spi_urls_say_what_is_valid(url):
    from firmware_bridge.errors import PortError
    from firmware_bridge.gameboy.spi import parse_spi_url

    with pytest.raises(PortError, match="spi:///dev/spidevB.D|valid: hz, gap_us"):
        parse_spi_url(url)


# -- the demo's creature --------------------------------------------------------------------------


def test_demo_creature_on_the_gameboy_equals_the_simulator(tmp_path):
    """The same seed streamed once to the simulator on a pty, once to the ROM in PyBoy."""
    pytest.importorskip("ai_edge_litert", reason="the bundled model needs ai-edge-litert (pip install pxby-edge[pi])")
    from PIL import Image

    simulated, shown = demo_screens(tmp_path)
    assert np.array_equal(shown, simulated)
    assert (simulated == 3).sum() > 500  # a creature and its text are drawn, not a blank screen
    with Image.open(tmp_path / "gb" / "gameboy" / "screen.gif") as gif:
        assert gif.n_frames >= 20  # row by row
    assert (tmp_path / "gb" / "gameboy" / "audio.wav").is_file()


def test_stream_command_to_gameboy_writes_its_folder_and_keeps_it(tmp_path):
    from click.testing import CliRunner

    from firmware_bridge import commands

    args = ["--synthetic", "--port", "pyboy://", "--out", str(tmp_path)]
    result = CliRunner().invoke(commands.stream, args)
    assert result.exit_code == 0, result.output
    assert "frames flipped" in result.output and "retransmits 0" in result.output
    for name in ("screen.png", "screen.gif", "audio.wav"):
        assert (tmp_path / "gameboy" / name).stat().st_size > 0
    before = (tmp_path / "gameboy" / "screen.png").read_bytes()
    again = CliRunner().invoke(commands.stream, args)
    assert again.exit_code != 0 and "--force" in str(again.exception)
    assert (tmp_path / "gameboy" / "screen.png").read_bytes() == before
    wrong = CliRunner().invoke(commands.stream, ["--synthetic", "--to", "gameboy", "--port", "/dev/ttyUSB9"])
    assert wrong.exit_code != 0 and "pyboy://" in str(wrong.exception)


def test_several_packets_a_frame_and_the_watchdog_rearms_a_port_left_unarmed():
    """Small packets are queued and acknowledged before earlier ones are applied (more than one a
    frame); a port left unarmed with no serial request pending (what a lost interrupt leaves) is
    re-armed by the main loop and the packets still all land."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        port = PyBoyPort(sound=False)
    host, mem = port.host, port.pyboy.memory
    host.hello()
    port.run_until(lambda: host.drained, 200)
    per_frame = []
    for i in range(40):
        host.send(gl.T_VRAM, bytes([i * 16 & 0xFF, 0x80 + (i * 16 >> 8)]) + bytes([i + 1]) * 16)
    while not host.drained:
        before = host.counters["packets"]
        port.tick()
        per_frame.append(host.counters["packets"] - before)
        if len(per_frame) == 3:
            mem[0xFF02], mem[0xFF0F] = 0, mem[0xFF0F] & 0xF7  # SC idle, no serial request: a lost one
        assert len(per_frame) < 300
    assert max(per_frame) >= 2
    assert mem[REARMS] >= 1
    assert [mem[0x8000 + 16 * i] for i in range(40)] == list(range(1, 41))
    port.close()


REARMS = 0xFF83  # rom/hram.h: times the watchdog re-armed the port
SESSION_OPEN = 0xFF93  # rom/hram.h: SESSION, set by the serial interrupt when it accepts a HELLO


def test_a_game_boy_reset_mid_stream_is_redrawn(synthetic):
    """The ROM forgets its session and its VRAM (as after a power cycle) halfway through the sprite."""
    events, simulated = synthetic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        port = PyBoyPort()
    link = connect(port)
    streamer = Streamer(link, audio_rate=8000)
    for i, event in enumerate(events):
        if i == 200:
            link.flush()
            mem = port.pyboy.memory
            mem[SESSION_OPEN] = 0
            for a in range(0x8000, 0xA000):
                mem[a] = 0
        streamer.feed(event)
    streamer.finish()
    assert link.counters()["gb_recoveries"] == 1
    assert np.array_equal(port.shades(), simulated)
    assert np.array_equal(_vram(port), planner_vram(link.planner))
    port.close()
