"""The bridge fed by the real generator (over the null backend): the events it yields reach the screen.

    .venv/bin/pytest tests/test_bridge_generate.py

The null backend (logits from a fixed random table, ``pxby_edge.backends.null``) stands in for a
model, so this checks the contract between ``pxby_edge.generate.Generator.events()`` and the
``Streamer``, and the non-synthetic path of ``pxby-edge stream``.
"""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge.device import DeviceCore
from firmware_bridge.stream import Streamer
from firmware_bridge.virtual import VirtualLine, VirtualLink

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

generate = pytest.importorskip("pxby_edge.generate", reason="the generation runtime is not in this install")


def table_backend(seed=0):
    from pxby_edge.backends.null import NullBackend

    return NullBackend(seed=seed, slicing={"image": 1, "audio": 2})


def _request(**kw):
    return generate.GenerationRequest(prompt="a blue", frames=2, width=10, height=10, audio_samples=800, seed=2,
                                      text_chars=20, **kw)


def test_generated_events_draw_the_sprite_and_play():
    gen = generate.Generator(table_backend(), _request())
    played = []
    device = DeviceCore(on_play=lambda o, s: played.append(len(s)))
    link = VirtualLink(device, VirtualLine(921600), seed=3, line_bps=92160).connect()
    streamer = Streamer(link, audio_rate=8000, audio_total=800)
    for event in gen.events():
        streamer.feed(event)
    streamer.finish(timeout_s=60)
    link.wait(lambda: device.fill == 0 and not device.playing, 10, "playing out")
    assert np.array_equal(device.screen, streamer.model.render())
    lay = streamer.model.layout()
    assert (lay.width, lay.height, lay.scale) == (10, 10, 11)
    sprite = device.screen[lay.y : lay.y + 10 * lay.scale, lay.x : lay.x + 10 * lay.scale]
    assert len(np.unique(sprite)) >= 2  # something was drawn there
    assert device.counters["commits"] >= 20  # a commit per row, per frame
    assert sum(played) == streamer.encoder.expected_out(800)


def test_stream_command_runs_the_generator(monkeypatch, running_simulator):
    from click.testing import CliRunner

    from firmware_bridge import commands, live

    def null_rounds(request_for, seeds, model=None, **_):
        return lambda k: live.generated_round(generate.GenerationRun(generate.Generator(table_backend(), _request()), "null"))

    monkeypatch.setattr(live, "generated_rounds", null_rounds)
    sim = running_simulator()
    result = CliRunner().invoke(commands.stream, ["--port", sim.transport.path, "--baud", "921600"])
    assert result.exit_code == 0, result.output
    assert "tiles in" in result.output and "screen updates" in result.output
    assert sim.capture.screen is not None and len(sim.capture.frames) >= 20


def test_stream_synthetic_refuses_generation_options():
    """--synthetic generates nothing: a generation option with it is a mistake said in one line, not ignored."""
    from pxby_edge.cli import main

    for extra in (["--backend", "onnx"], ["--prompt", "a cat", "--frames", "2"], ["my.tflite"]):
        result = main(["stream", "--synthetic", "--port", "/dev/null", *extra])
        assert result == 2, extra
    from click.testing import CliRunner

    from firmware_bridge import commands

    out = CliRunner().invoke(commands.stream, ["--synthetic", "--backend", "onnx", "--prompt", "x"])
    assert out.exit_code == 2 and "drop --prompt, --backend" in out.output
