"""`pxby-edge demo` end to end on the bundled model: simulator on a pty, outputs in the folder."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from scipy.io import wavfile

from pxby_edge.cli import main
from pxby_edge.generate import default_model_path

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it


@pytest.fixture(scope="module")
def bundled():
    path = default_model_path()
    if not path.is_file():
        pytest.fail(f"the bundled model {path} is missing")
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install pxby-edge[pi])")
    return path


def test_demo_streams_to_the_simulated_handheld(bundled, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["demo", "--out", str(out), "--frames", "2", "--audio-seconds", "0.1", "--seed", "3", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    for name in ("text.txt", "sprite.png", "sprite.gif", "audio.wav", "summary.json", "handheld/screen.png", "handheld/screen.gif"):
        assert (out / name).is_file(), name
    assert summary["streamed"] == ["text", "image", "audio"] and summary["seed"] == 3
    assert [seg["modality"] for seg in summary["segments"][0]] == ["text", "image", "audio"]
    assert summary["handheld"]["crc_errors"] == 0 and summary["handheld"]["commits"] >= 2
    # the whole cry was played before the demo ended, and handheld/audio.wav holds it all
    assert summary["handheld"]["capture_played"] == summary["link"]["audio_samples_sent"] > 0
    rate, played = wavfile.read(out / "handheld" / "audio.wav")
    gen_rate, generated = wavfile.read(out / "audio.wav")
    assert len(played) == summary["link"]["audio_samples_sent"]
    assert abs(len(played) / rate - len(generated) / gen_rate) < 0.01
    with Image.open(out / "handheld" / "screen.gif") as gif:
        assert gif.n_frames >= 3  # the sprite appears row by row, not all at once
    with Image.open(out / "sprite.gif") as gif:
        assert gif.n_frames == 2
    # A second run into the same folder is refused without --force, and nothing is touched.
    before = (out / "summary.json").read_bytes()
    code = main(["demo", "--out", str(out)])
    assert code == 2 and "--force" in capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == before
