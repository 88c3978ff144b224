"""Media writers: exact palette colours, atomic and non-destructive writes, the speaker filter."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile

from pxby_edge import atomic, media, readers, speaker
from pxby_edge.errors import MediaError, OutputExistsError
from pxby_edge.vocab import DEFAULT_PALETTE

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

PAL = np.asarray(DEFAULT_PALETTE, dtype=np.uint8)


def test_png_and_gif_keep_exact_colours(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, len(PAL), size=(6, 5)) for _ in range(3)]
    media.write_png(tmp_path / "s.png", frames, PAL, scale=3)
    media.write_gif(tmp_path / "s.gif", frames, PAL, scale=2)
    with Image.open(tmp_path / "s.png") as img:
        png = np.asarray(img.convert("RGB"))
    assert png.shape == (18, 45, 3)
    np.testing.assert_array_equal(png[::3, :15:3], PAL[frames[0]])
    with Image.open(tmp_path / "s.gif") as gif:
        assert gif.n_frames == 3
        for k in range(3):
            gif.seek(k)
            np.testing.assert_array_equal(np.asarray(gif.convert("RGB"))[::2, ::2], PAL[frames[k]])


def test_writers_refuse_to_overwrite(tmp_path):
    path = tmp_path / "t.txt"
    media.write_text(path, "one")
    with pytest.raises(OutputExistsError, match="--force"):
        media.write_text(path, "two")
    media.write_text(path, "two", overwrite=True)
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]  # no temp file left behind


def test_wav_round_trip(tmp_path):
    audio = np.stack([np.linspace(-1, 1, 100), np.zeros(100)])
    media.write_wav(tmp_path / "a.wav", audio, 8192)
    rate, data = wavfile.read(tmp_path / "a.wav")
    assert rate == 8192 and data.shape == (100, 2) and data.dtype == np.int16
    back, rate2 = readers.read_audio(tmp_path / "a.wav")
    np.testing.assert_allclose(back, audio, atol=1e-4)


def test_gameboy_filter_matches_the_upstream_dataset(upstream_dir):
    cry = np.load(upstream_dir / "bulbasaur_cry_stereo16k.npy")
    ours = speaker.gameboy_filter(cry[0], 16000)
    corr = np.corrcoef(ours, cry[1])[0, 1]
    assert corr > 0.99, corr


def test_gameboy_filter_is_a_band_pass():
    rate = 16000
    t = np.arange(rate) / rate
    low, mid = np.sin(2 * np.pi * 30 * t), np.sin(2 * np.pi * 1000 * t)
    out_low = speaker.gameboy_filter(low, rate, normalize=False)
    out_mid = speaker.gameboy_filter(mid, rate, normalize=False)
    assert np.std(out_low[2000:]) < 0.1 * np.std(out_mid[2000:])
    with pytest.raises(MediaError, match="band"):
        speaker.gameboy_filter(mid, rate, low_hz=3000, high_hz=100)


def test_mono_audio_gets_a_filtered_second_channel():
    x = np.sin(np.linspace(0, 200, 4000))
    stereo = speaker.tokenizer_audio(x[None], 8000)
    assert stereo.shape == (2, 4000)
    assert np.abs(stereo[0]).max() == pytest.approx(1.0)


def test_output_set_lands_whole_or_not_at_all(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError), atomic.OutputSet(out, ["x.txt", "y.txt"]) as s:
        media.write_text(s.folder / "x.txt", "one")
        raise RuntimeError("killed half way")
    assert sorted(os.listdir(tmp_path)) == []  # no folder, no parent, no hidden temporary
    with atomic.OutputSet(out, ["x.txt", "y.txt"]) as s:
        paths = [media.write_text(s.folder / n, n) for n in ("x.txt", "y.txt")]
        assert not out.exists()  # nothing lands before the commit
        s.commit()
    assert [s.final(p) for p in paths] == [str(out / "x.txt"), str(out / "y.txt")]
    assert sorted(os.listdir(out)) == ["x.txt", "y.txt"] and oct(out.stat().st_mode & 0o777) != "0o700"


def test_output_set_into_a_used_folder_keeps_other_files_and_needs_force(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    (tmp_path / "x.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="--force"):
        atomic.OutputSet(tmp_path, ["x.txt"])
    with atomic.OutputSet(tmp_path, ["x.txt"], overwrite=True) as s:
        media.write_text(s.folder / "x.txt", "new")
        assert (tmp_path / "x.txt").read_text() == "old"  # replaced only at the end
        s.commit()
    assert (tmp_path / "x.txt").read_text() == "new" and (tmp_path / "mine.txt").read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["mine.txt", "x.txt"]


def test_atomic_write_errors_name_the_users_path(tmp_path, monkeypatch):
    import errno

    def refuse(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied", str(tmp_path / ".t.txt.abc123"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as info:
        media.write_text(tmp_path / "t.txt", "x")
    assert info.value.filename == str(tmp_path / "t.txt")


def test_output_set_deletes_what_killed_runs_left(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".out.{dead.pid}.abc.partial").mkdir()  # a run killed before its commit
    (tmp_path / f".out.{os.getpid()}.abc.partial").mkdir()  # a live run's
    (tmp_path / f".outer.{dead.pid}.abc.partial").mkdir()  # another destination's
    with atomic.OutputSet(tmp_path / "out", ["x.txt"]) as s:
        media.write_text(s.folder / "x.txt", "x")
        s.commit()
    assert sorted(os.listdir(tmp_path)) == [f".out.{os.getpid()}.abc.partial", f".outer.{dead.pid}.abc.partial", "out"]
