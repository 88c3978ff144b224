"""A Game Boy Color: the dual-mode ROM's palettes and attributes, the host's palette choice, the joypad
as the controller of an interactive session.

    python -m pytest -q tests/test_gameboy_colour.py             # the default set
    python -m pytest -q -m slow tests/test_gameboy_colour.py     # + the bundled model's seeds 0-9
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.gameboy import packets as gl
from firmware_bridge.gameboy import palettes

pyboy = pytest.importorskip("pyboy", reason="PyBoy is not installed (pip install pxby-edge[dev])")

from firmware_bridge.gameboy.controller import Controller, read_buttons  # noqa: E402
from firmware_bridge.gameboy.mgba_link import mgba_available  # noqa: E402
from firmware_bridge.gameboy.pyboy_link import PyBoyPort  # noqa: E402
from firmware_bridge.gameboy.run import GameBoyRun  # noqa: E402
from firmware_bridge.gameboy.vram import vram_packet  # noqa: E402
from firmware_bridge.stream import Round, Streamer, synthetic_events  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using SDL2 binaries:UserWarning")

# the Game Boy Color in both emulators: PyBoy, and mGBA clocked by a Pi-like master (gameboy/mgba_link.py)
COLOR_URLS = ["pyboy://cgb", pytest.param("mgba://?model=CGB", marks=pytest.mark.skipif(
    not mgba_available(), reason="mGBA is not installed (apt-get install libmgba0.10; pip install 'pxby-edge[mgba]')"))]


def _port(**opts) -> PyBoyPort:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return PyBoyPort(**opts)


def _rgb555(c):
    return int(c[0]) >> 3 | (int(c[1]) >> 3) << 5 | (int(c[2]) >> 3) << 10


# -- the host's palette choice ---------------------------------------------------------------------


def _screen_from(tile_sets, rng) -> np.ndarray:
    """A 144x160 RGB555 screen whose tile t shows colours drawn from ``tile_sets[t]`` only."""
    tiles = np.array([rng.choice(sorted(s), size=64) for s in tile_sets]).reshape(18, 20, 8, 8)
    return tiles.transpose(0, 2, 1, 3).reshape(144, 160)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_sets_that_pack_into_seven_palettes_show_every_pixel_exactly(n_groups, seed):
    rng = np.random.default_rng(seed)
    groups = [rng.choice(32768, size=4, replace=False) for _ in range(n_groups)]
    # each tile takes 1..4 colours of one group, or the text's fixed shades
    sets = []
    for _ in range(360):
        g = list(palettes.FIXED) if rng.random() < 0.2 else list(groups[rng.integers(n_groups)])
        sets.append(set(rng.choice(g, size=rng.integers(1, 5), replace=False).tolist()))
    screen = _screen_from(sets, rng)
    choice = palettes.choose(screen)
    assert choice.exact
    assert tuple(choice.palettes[0]) == palettes.FIXED
    assert np.array_equal(palettes.shown(choice), screen)


def test_more_sets_than_palettes_are_approximated_with_least_error_and_say_so():
    rng = np.random.default_rng(4)
    sets = [set(rng.choice(32768, size=3, replace=False).tolist()) for _ in range(40)]
    sets = [sets[i % 40] for i in range(300)] + [set(palettes.FIXED)] * 60  # the text area: fixed shades
    screen = _screen_from(sets, rng)
    choice = palettes.choose(screen)
    assert not choice.exact and choice.palettes.shape == (8, 4)
    shown = palettes.shown(choice)
    mask = np.ones(screen.shape, dtype=bool)
    exact, err = palettes.match(palettes.screen_rgb(shown), screen, mask)
    assert exact < 1.0 and err > 0
    assert np.array_equal(shown[-24:], screen[-24:])  # the last 60 tiles (text) stay exact in palette 0
    # the chosen palettes beat the first 7 packed groups taken as they come
    naive = palettes.Choice(np.array([palettes.FIXED] + [palettes._padded(s) for s in sets[:7]]),
                            np.zeros(360, dtype=np.int64), np.zeros((360, 16), dtype=np.uint8), False)
    naive.attrs, naive.tiles = palettes._assign(*palettes._tile_sets(screen), naive.palettes)
    naive_exact, naive_err = palettes.match(palettes.screen_rgb(palettes.shown(naive)), screen, mask)
    assert exact * 100 - err > naive_exact * 100 - naive_err


# -- the ROM on a CGB and on a DMG -------------------------------------------------------------------


@pytest.mark.parametrize("cgb", [False, True])
def test_the_rom_tells_its_model_and_shows_a_palette_and_attribute_only_on_a_color(cgb):
    port = _port(sound=False, cgb=cgb)
    host = port.host
    host.hello()
    host.ask(gl.Q_CLEAR)
    port.run_until(lambda: host.idle)
    assert host.replies[gl.Q_CLEAR] == int(cgb)
    tile = bytes([0xFF, 0x00] * 2 + [0x00, 0xFF] * 2 + [0xFF, 0xFF] * 2 + [0x00, 0x00] * 2)  # rows of 1, 2, 3, 0
    colours = [0x001F, 0x03E0, 0x7C00, 0x7FFF]  # red, green, blue, white
    host.send(*vram_packet(0x8010, tile))
    host.send(*vram_packet(0x9C00, bytes([1])))
    host.send(gl.T_ATTR, bytes([0x00, 0x9C, 5]))
    host.send(gl.T_PALETTE, bytes([5]) + np.array(colours, dtype="<u2").tobytes())  # palette 5 alone
    host.send(gl.T_FLIP, bytes([1, gl.BGP_DEFAULT]))
    port.run_until(lambda: host.drained)
    port.settle(2)
    assert host.counters["retransmits"] == 0
    rgb = np.asarray(port.pyboy.screen.ndarray)[:8, :8, :3]
    if cgb:
        got = [_rgb555(rgb[r, 0]) for r in (6, 0, 2, 4)]  # index 0, 1, 2, 3
        assert got == colours
        assert port.pyboy.memory[1, 0x9C00] == 5  # VRAM bank 1
    else:
        from firmware_bridge.gameboy.pyboy_link import shades_from_rgb

        assert [int(s) for s in shades_from_rgb(rgb)[::2, 0]] == [1, 2, 3, 0]  # BGP 0xE4: shades as before
    port.close()


FASTEST = "mgba://?model=CGB&hz=500000&gap_us=144&jitter_us=20&seed=3"  # spi.py's fastest accepted clocking


@pytest.mark.parametrize("url", COLOR_URLS + [pytest.param(FASTEST, marks=COLOR_URLS[1].marks)])
def test_a_synthetic_stream_on_a_color_is_exact_and_is_what_the_planner_meant(tmp_path, url):
    events = synthetic_events(frames=2, size=16, audio_s=0.25)
    with GameBoyRun(url, tmp_path) as run:
        streamer = Streamer(run.link, audio_rate=8000)
        for event in events:
            streamer.feed(event)
        streamer.finish()
        run.save()
        stats = run.counters()
        frames, shown = run.port.frames, run.link.shown
        assert len(frames) == len(shown) == stats["gb_flips"]
        for got, want in zip(frames, shown):  # every flip: the screen the host planned, never torn
            assert np.array_equal(palettes.screen_rgb_to555(got), palettes.screen_rgb_to555(want))
    assert stats["gb_colour"] and stats["gb_colour_exact"] == 1.0 and stats["gb_palette_approx_commits"] == 0
    from PIL import Image

    with Image.open(tmp_path / "gameboy" / "screen.png") as img:
        colours = {tuple(c) for c in np.asarray(img.convert("RGB")).reshape(-1, 3)}
    assert len(colours) > 4  # more than a DMG's 4 shades


def _demo_colour(tmp_path, seed: int) -> dict:
    pytest.importorskip("ai_edge_litert", reason="the bundled model needs ai-edge-litert (pip install pxby-edge[pi])")
    import json

    from pxby_edge.cli import main

    out = tmp_path / f"seed{seed}"
    assert main(["demo", "--to", "gameboy", "--port", "pyboy://cgb", "--seed", str(seed), "--out", str(out),
                 "--json"]) == 0
    return json.loads((out / "summary.json").read_text())["gameboy"]


def test_demo_on_a_color_writes_the_creature_in_its_colours(tmp_path):
    gb = _demo_colour(tmp_path, 0)
    assert gb["gb_colour"] and gb["gb_colour_exact"] >= 0.95


@pytest.mark.slow
def test_bundled_model_seeds_0_to_9_are_at_least_95_percent_exact(tmp_path):
    exact = [_demo_colour(tmp_path, seed)["gb_colour_exact"] for seed in range(10)]
    assert min(exact) >= 0.95, exact


# -- the joypad ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["pyboy://", pytest.param("mgba://", marks=COLOR_URLS[1].marks)])
def test_a_press_is_latched_until_read_and_counts_once_however_long_held(url):
    from firmware_bridge.transports import open_gameboy_port

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        port = open_gameboy_port(url)
    port.host.hello()
    port.run_until(lambda: port.host.drained)  # HELLO applied: the main loop polls the joypad again
    assert read_buttons(port) == frozenset()
    port.press("up", 2)
    port.press("b", 2)
    port.settle(10)  # released long before the read
    assert read_buttons(port) == {"up", "b"}
    assert read_buttons(port) == frozenset()
    port.press("a", 40)  # held across three reads
    port.settle(5)
    assert [read_buttons(port) for _ in range(3)] == [{"a"}, frozenset(), frozenset()]
    port.settle(40)
    port.press("a", 2)  # pressed again after its release
    port.settle(5)
    assert read_buttons(port) == {"a"}
    port.close()


def _loudness(port, start: int, end: int) -> float:
    """Standard deviation of what PyBoy played in frames start..end (the APU's DC offset left out)."""
    return float(np.std(np.concatenate(port.audio[start:end])))


@pytest.mark.parametrize("url", COLOR_URLS)
def test_the_game_boy_steers_the_session_a_b_up_down_start(tmp_path, url):
    """Round 0 streams; then B replays the cry, Down and Up move the prompt choice on the screen,
    Start pauses (no new creature past the pause), Start resumes, A starts round 1 at once."""
    script = {2: "b", 4: "down", 6: "down", 8: "up", 10: "start", 40: "start", 42: "a"}
    seen: dict = {}

    def on_poll(ctl):
        ctl.polls = getattr(ctl, "polls", 0) + 1
        port = ctl.run_.port
        seen[ctl.polls] = (port.rgb(), len(port.audio), ctl.round, ctl.paused, ctl.choice)
        button = script.get(ctl.polls)
        if button:
            port.press(button, 3)

    made: list = []

    def make_round(k, prompt):
        made.append((k, prompt))
        return Round(synthetic_events(frames=1, size=16, audio_s=0.2, seed=k, text=prompt), 8000, None)

    with GameBoyRun(url, tmp_path) as run:
        prompts = ["a first prompt", "a second prompt", "a third prompt"]
        ctl = Controller(run, make_round, prompts, pause_s=0.5, on_poll=on_poll)
        rounds = list(ctl.run(rounds=2))
        port = run.port
    assert [r["round"] for r in rounds] == [0, 1]
    # the first Down chose prompt 1; the second prompt 2; Up back to 1; A then made round 1 with it
    assert made == [(0, "a first prompt"), (1, "a second prompt")]
    events = [what for _, what in ctl.log]
    assert events == ["creature", "cry", "prompt 1", "prompt 2", "prompt 1", "pause", "resume", "creature"]
    # B: the cry sounds again (silence before the press, sound after it)
    assert _loudness(port, seen[1][1], seen[2][1]) < 1e-3 < 0.01 < _loudness(port, seen[2][1], seen[4][1])
    # the prompt list is drawn in the text area, the choice marked; the sprite above it untouched
    text_rows = slice(112, 144)
    after_down, after_up = seen[7][0], seen[9][0]
    assert not np.array_equal(seen[3][0][text_rows], after_down[text_rows])
    assert not np.array_equal(after_down[text_rows], after_up[text_rows])
    assert np.array_equal(seen[3][0][:104], after_up[:104])
    # Start paused it for 30 polls (far past pause_s) with no new creature; A ended the wait
    assert all(seen[p][3] for p in range(12, 40)) and all(seen[p][2] == 0 for p in seen)
    assert not seen[12][0][text_rows].tolist() == seen[9][0][text_rows].tolist()  # "paused" is shown


def test_stream_loop_to_a_game_boy_runs_the_session_until_sigterm_and_keeps_its_folder(tmp_path):
    """What the service does: `stream --to gameboy --loop`; systemd's SIGTERM ends it cleanly (exit 0)
    with gameboy/ written for the round on the screen."""
    import json
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pxby_edge.cli", "stream", "--synthetic", "--to", "gameboy", "--port", "pyboy://",
         "--loop", "--pause", "30", "--seed", "3", "--json", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        first = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)  # while it waits for a button (30 s before the next creature)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert first["round"] == 0 and first["seed"] == 3 and first["gb_retransmits"] == 0
    assert first["prompt"].startswith("a small blue water creature")
    assert rest.strip() == "" and "error" not in err
    for name in ("screen.png", "screen.gif", "audio.wav"):
        assert (tmp_path / "gameboy" / name).stat().st_size > 0


DROP_IN = Path(__file__).resolve().parent.parent / "deploy" / "pxby-edge-gameboy.conf"


def test_the_game_boy_drop_in_runs_the_interactive_session_with_options_stream_has():
    import shlex

    from firmware_bridge.commands import stream

    lines = [ln.split("=", 1)[1] for ln in DROP_IN.read_text().splitlines() if ln.startswith("ExecStart=")]
    assert lines[0] == ""  # the template's ExecStart is reset, not added to
    args = shlex.split(lines[1].replace("%I", "spidev0.0"))
    ctx = stream.make_context("stream", args[2:])
    assert ctx.params["loop"] and ctx.params["to"] == "gameboy"
    assert ctx.params["port"] == "spi:///dev/spidev0.0" and ctx.params["out_dir"] == "/var/lib/pxby-edge-spidev0.0"
    assert "StateDirectory=pxby-edge-%I" in DROP_IN.read_text()  # the one place ProtectSystem=strict lets it write


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or not Path("/usr/lib/systemd/system/sysinit.target").is_file(),
                    reason="systemd-analyze and the system's units are not installed here (apt-get install systemd)")
def test_systemd_analyze_verify_passes_on_the_unit_with_the_game_boy_drop_in(tmp_path):
    import subprocess

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "usr" / "lib" / "systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", tmp_path / "usr" / "lib" / "systemd" / "system", symlinks=True)
    units = tmp_path / "etc" / "systemd" / "system"
    (units / "pxby-edge@spidev0.0.service.d").mkdir(parents=True)
    shutil.copy(root / "deploy" / "pxby-edge@.service", units)
    shutil.copy(DROP_IN, units / "pxby-edge@spidev0.0.service.d" / "gameboy.conf")
    exe = tmp_path / "opt" / "pxby-edge" / "bin" / "pxby-edge"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={tmp_path}", "pxby-edge@spidev0.0.service"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_the_cli_line_says_when_palettes_were_approximated():
    from firmware_bridge.gameboy.run import gameboy_line as describe

    stats = {"gb_flips": 2, "gb_packets": 9, "gb_bytes": 900, "gb_payload_bytes": 300, "gb_sound_frames": 0,
             "gb_retransmits": 0, "gb_err_checksum": 0, "gb_timeouts": 0, "gb_colour": True, "gb_colour_exact": 0.9,
             "gb_colour_error": 12.34, "gb_palette_approx_commits": 1, "gb_colour_commits": 2}
    assert "90.0% of the sprite's pixels exact (1 of 2 screens needed more than 8 palettes" in describe(stats)
    assert "needed more" not in describe(dict(stats, gb_palette_approx_commits=0))


def test_a_session_on_a_dead_link_ends_with_one_error_naming_the_causes():
    from firmware_bridge.errors import LinkError

    port = _port(sound=False)
    port.host.hello()
    port.run_until(lambda: port.host.drained)
    port.unplugged = True  # nothing answers: the host reads what a floating line reads
    assert read_buttons(port) is None
    with pytest.raises(LinkError, match="no answer to the joypad query .*dead link"):
        Controller(None, lambda k, prompt: None)._pressed(port)
    port.close()
