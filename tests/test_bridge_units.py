"""Display, audio and link pieces of the firmware bridge, one invariant at a time (no I/O, no sleeps).

    .venv/bin/pytest tests/test_bridge_units.py
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as pr
from firmware_bridge.audio import AudioEncoder, prebuffer_samples, quantize
from firmware_bridge.device import DeviceCore, decode_tiles
from firmware_bridge.display import Layout, ScreenModel, TileDiff, encode_tiles, luminance, shades_of
from firmware_bridge.errors import CapabilityError
from firmware_bridge.link import HostSession, RttEstimator, check_capabilities
from firmware_bridge.stream import Streamer, synthetic_events
from firmware_bridge.virtual import VirtualLine, VirtualLink, run_until

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it


def test_pan_docs_tile_example():
    # Pan Docs, "Tile Data": bytes 3C 7E -> pixel colours 0 2 3 3 3 3 2 0
    tile = np.array([0x3C, 0x7E] + [0] * 14, dtype=np.uint8)
    assert decode_tiles(tile)[0, 0].tolist() == [0, 2, 3, 3, 3, 3, 2, 0]
    assert encode_tiles(decode_tiles(tile)[0])[0].tolist() == tile.tolist()


@settings(deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.randoms(use_true_random=False))
def test_tiles_round_trip(th, tw, rnd):
    screen = np.array([[rnd.randrange(4) for _ in range(8 * tw)] for _ in range(8 * th)], dtype=np.uint8)
    tiles = encode_tiles(screen)
    back = decode_tiles(tiles).reshape(th, tw, 8, 8).transpose(0, 2, 1, 3).reshape(8 * th, 8 * tw)
    assert np.array_equal(back, screen)


def test_shades_by_luminance_and_dither():
    lum = luminance([(255, 255, 255), (0, 0, 0), (128, 128, 128)])
    assert shades_of(lum[None, :2]).tolist() == [[0, 3]]
    grey = np.full((8, 8), lum[2])
    d = shades_of(grey, dither=True)
    assert set(np.unique(d)) <= {1, 2} and abs(d.mean() - (1 - lum[2]) * 3) < 0.25
    # the pattern is tied to screen coordinates: a sub-block computed alone matches
    assert np.array_equal(shades_of(grey[2:5, 3:7], dither=True, y0=2, x0=3), d[2:5, 3:7])


def test_layout_scales_by_integers_above_text():
    lay = Layout.fit(16, 16)
    assert (lay.scale, lay.text_y) == (6, 112) and lay.x == (160 - 96) // 2
    assert Layout.fit(158, 100, text_rows=0).scale == 1
    assert Layout.fit(400, 400).scale == 1


def test_row_by_row_sends_only_touched_tiles():
    model = ScreenModel([(255, 255, 255), (0, 0, 0)], text_rows=0, expected_height=16)
    diff = TileDiff(pr.MAP_W * pr.MAP_H)
    diff.changes(encode_tiles(model.render()), 64)
    for row in range(16):
        model.set_row(row, [row % 2] * 16)
        runs = diff.changes(encode_tiles(model.render()), 64)
        tiles = sum(len(data) // 16 for _, data in runs)
        lay = model.layout()
        # a sprite row is `scale` screen rows: at most two tile rows across the sprite width (the
        # first row also places the sprite and its outline)
        if row:
            assert tiles <= 2 * (-(-lay.width * lay.scale // 8) + 1)
    assert diff.changes(encode_tiles(model.render()), 64) == []


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=20), st.sampled_from([8000, 16000, 4000]))
def test_audio_encoder_streams_like_whole(cuts, rate):
    x = np.sin(np.arange(sum(cuts)) * 0.05)
    whole = AudioEncoder(rate)
    want = np.concatenate([whole.push(x), whole.flush()])
    parts = AudioEncoder(rate)
    got, i = [], 0
    for n in cuts:
        got.append(parts.push(x[i : i + n]))
        i += n
    got.append(parts.flush())
    assert np.array_equal(np.concatenate(got), want)
    assert len(want) == whole.expected_out(len(x))


def test_quantize_and_prebuffer():
    assert quantize(np.array([-1.0, 0.0, 1.0]), pr.AUDIO_U8).tolist() == [0, 128, 255]
    assert quantize(np.array([-1.0, 0.0, 1.0]), pr.AUDIO_U4).tolist() == [0, 8, 15]
    assert prebuffer_samples(20000, 8192) == 819  # faster than real time: only the margin
    half = prebuffer_samples(4096, 8192, total=16384)
    assert half == 8192 + 819  # half the sound must be ready before playing it
    assert prebuffer_samples(100, 8192, total=1000) == 1000


def test_capabilities_too_small_names_each():
    caps = pr.Capabilities(screen_w=128, screen_h=128, tile_slots=256)
    with pytest.raises(CapabilityError, match="screen width 128 \\(need 160\\).*tile slots 256 \\(need 360\\)"):
        check_capabilities(caps, {"screen_w": 160, "screen_h": 144, "tile_slots": 360})


def test_window_and_seq_wrap_over_virtual_line():
    device = DeviceCore()
    host = HostSession(seed=3, window=8)
    line = VirtualLine(921600)
    host.connect(0)
    run_until(host, device, line, lambda: host.state == "ready")
    host.next_seq = 0xFFF0  # wrap the 16-bit sequence mid-run
    device.expected = 0xFFF0
    for i in range(40):
        host.queue(pr.TILES, pr.pack(pr.TILES, bytes([i]) * 16, first_slot=i), pr.CH_GRAPHICS)
    run_until(host, device, line, lambda: host.backlog == 0)
    assert [int(device.tiles[i, 0]) for i in range(40)] == list(range(40))
    assert host.counters["retransmits"] == 0


def test_streams_exactly_through_faults_and_restart_on_a_virtual_line():
    # the pty test's scenario on simulated time: fast, and the same every run
    events = synthetic_events(frames=3, size=12, audio_s=0.5, seed=5)
    played = []
    device = DeviceCore(on_play=lambda o, s: played.append((o, s.copy())))
    line = VirtualLine(921600, seed=11, corrupt=0.01, drop=0.005)
    link = VirtualLink(device, line, seed=5, max_payload=40, line_bps=92160).connect()
    streamer = Streamer(link, audio_rate=8000)
    restarted = []
    for i, event in enumerate(events):
        streamer.feed(event)
        if i == len(events) // 2 and not restarted:
            restarted.append(line.now_ms)
            link.device = DeviceCore(boot_id=2, on_play=lambda o, s: played.append((o, s.copy())))
    streamer.finish(timeout_s=120)
    assert link.session.counters["device_resets"] >= 1
    assert link.session.ready_since - restarted[0] < 1000
    assert np.array_equal(link.device.screen, streamer.model.render())
    offsets = [o for o, _ in played]
    assert offsets == sorted(offsets)


class SlowDevice:
    """A DeviceCore whose every answer leaves 0–50 ms late (a random delay each, in order): a device
    busy drawing between frames, slow but never lossy."""

    def __init__(self, core: DeviceCore, seed: int, most_ms: int = 50):
        self.core, self.rng, self.most_ms = core, random.Random(seed), most_ms
        self.held: deque = deque()  # (due ms, bytes)
        self.now = 0
        self.delays: list[int] = []

    def _hold(self, now: int) -> None:
        self.now = now
        out = self.core.take_output()
        if out:
            delay = self.rng.randint(0, self.most_ms)
            self.delays.append(delay)
            due = max(now + delay, self.held[-1][0] if self.held else 0)  # a line keeps its order
            self.held.append((due, out))

    def feed(self, data: bytes, now: int) -> None:
        self.core.feed(data, now)
        self._hold(now)

    def tick(self, now: int) -> None:
        self.core.tick(now)
        self._hold(now)

    def take_output(self) -> bytes:
        out = bytearray()
        while self.held and self.held[0][0] <= self.now:
            out += self.held.popleft()[1]
        return bytes(out)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_slow_lossless_device_costs_no_retransmits(seed):
    """Every answer 0–50 ms late, nothing lost, time simulated: the timeout learns the device."""
    device = SlowDevice(DeviceCore(), seed)
    link = VirtualLink(device, VirtualLine(921600), seed=seed, line_bps=92160).connect()
    streamer = Streamer(link, audio_rate=8000)
    for event in synthetic_events(frames=3, size=16, audio_s=1.0, seed=seed):
        streamer.feed(event)
    streamer.finish(timeout_s=120)
    c = link.session.counters
    assert np.array_equal(device.core.screen, streamer.model.render())
    assert len(device.delays) > 100 and max(device.delays) >= 45
    assert c["frames_sent"] > 150 and (c["retransmits"], c["timeouts"]) == (0, 0), c


def test_rto_follows_rfc6298_with_backoff_floor_and_ceiling():
    est = RttEstimator(150, 30, 1000, warmup=2, recent=4)
    assert est.rto == 150  # nothing measured yet
    est.sample(10)
    assert (est.srtt, est.rttvar, est.rto) == (10, 5, 150)  # one sample: still the initial timeout
    est.sample(10)
    assert est.rto == 30  # srtt 10 + 4 × 3.75 = 25, below the floor
    est.timed_out()
    est.timed_out()
    assert est.rto == 120  # doubled twice, until a sample comes
    est.sample(40)
    assert est.rto == int(est.srtt + 4 * est.rttvar)
    for _ in range(40):
        est.sample(40)
    assert est.rto == 50  # the variance is gone, but 1.25 × the slowest recent answer stays
    est.sample(900)
    for _ in range(8):
        est.timed_out()
    assert est.rto == 1000


def test_u4_audio_and_text_arrive_exactly_without_faults():
    events = synthetic_events(frames=1, size=8, audio_s=0.3, seed=2, text="hi there")
    played = []
    device = DeviceCore(on_play=lambda o, s: played.append((o, s.copy())))
    link = VirtualLink(device, VirtualLine(115200), seed=1, line_bps=11520).connect()
    streamer = Streamer(link, audio_rate=8000, audio_format="u4")
    for event in events:
        streamer.feed(event)
    streamer.finish(timeout_s=60)
    link.wait(lambda: device.fill == 0 and not device.playing, 10, "playing out")
    enc = AudioEncoder(8000, 8192, pr.AUDIO_U4)
    levels = [e.level for e in events if type(e).__name__ == "AudioSample" and e.channel == 0]
    want = np.concatenate([enc.push(levels), enc.flush()])
    got = np.concatenate([s for _, s in played])
    assert played[0][0] == 0 and np.array_equal(got, want)
    assert device.counters["gaps"] == 0 and device.counters["underruns"] == 0
    assert device.text.decode() == "hi there"
    assert np.array_equal(device.screen, streamer.model.render())


def test_protocol_core_is_pure_and_commands_are_light():
    import subprocess
    import sys

    code = (
        "import sys, firmware_bridge.frame, firmware_bridge.link, firmware_bridge.device, firmware_bridge.stream; "
        "assert 'serial' not in sys.modules, 'the protocol core imported pyserial'; "
        "import firmware_bridge.commands"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    light = "import sys, firmware_bridge.commands; assert not {'numpy', 'serial', 'scipy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", light], check=True, timeout=60)


def test_halfblocks_draw_the_top_row_as_foreground_and_the_bottom_as_background():
    from firmware_bridge.display import DMG_PALETTE
    from firmware_bridge.terminal_view import halfblocks

    screen = np.array([[0, 3], [2, 1], [1, 1]], dtype=np.uint8)  # the odd last row has no partner: dropped
    (r0, g0, b0), (r1, g1, b1), (r2, g2, b2), (r3, g3, b3) = DMG_PALETTE
    want = (f"\x1b[38;2;{r0};{g0};{b0}m\x1b[48;2;{r2};{g2};{b2}m\u2580"
            f"\x1b[38;2;{r3};{g3};{b3}m\x1b[48;2;{r1};{g1};{b1}m\u2580\x1b[0m")
    assert halfblocks(screen) == want
    assert halfblocks(np.zeros((144, 160), dtype=np.uint8)).count("\n") == 71
