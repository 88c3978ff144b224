"""`pxby-edge tokenize` then `detokenize` on a sprite, a text and a cry made here; errors are one line.

Parity with the upstream tokenizer on its own files is tests/test_tokenizer.py's; these inputs are made by
the test so the command line is tested from a clone alone."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile

from pxby_edge.tokenizer import ActionPixelBytesTokenizer

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it


TEXT = "A Large Red Fire Creature, with wings: it is red (100%)! Café/crème; [ok]"


def _inputs(tmp_path):
    """A 22x25 sprite of palette colours, a text with accents and punctuation, a (2, N) cry at 16 kHz."""
    from pxby_edge import speaker
    from pxby_edge.vocab import Vocab

    rng = np.random.default_rng(3)
    palette = Vocab().palette_array().astype(np.uint8)
    sprite = palette[rng.integers(0, len(palette), size=(25, 22))]
    Image.fromarray(sprite, "RGB").save(tmp_path / "sprite-in.png")
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    t = np.arange(3000) / 16000
    cry = (np.sin(2 * np.pi * 440 * t * (1 + t)) * np.exp(-4 * t)).astype(np.float32)
    np.save(tmp_path / "cry.npy", np.stack([cry, speaker.gameboy_filter(cry, 16000)]).astype(np.float32))
    return tmp_path / "text.txt", tmp_path / "sprite-in.png", tmp_path / "cry.npy"


def test_tokenize_detokenize_round_trip(tmp_path, run_cli):
    text_file, image, audio = _inputs(tmp_path)
    out = tmp_path / "item.npz"
    code, stdout, err = run_cli("tokenize", "--text-file", str(text_file), "--image", str(image), "--audio", str(audio),
                                "--out", str(out))
    assert code == 0, err
    code, stdout, err = run_cli("detokenize", str(out), "--out", str(tmp_path / "d"), "--scale", "1")
    assert code == 0, err
    text = (tmp_path / "d" / "text.txt").read_text()
    assert text == TEXT.lower().replace("é", "e").replace("è", "e")  # NFKD, ASCII: accents drop, letters stay
    tok = ActionPixelBytesTokenizer()
    with Image.open(image) as img:
        expected = tok.image_ids(img)[0]
    with Image.open(tmp_path / "d" / "sprite.png") as img:
        back = tok.image_ids(img)[0]
    np.testing.assert_array_equal(back, expected)  # same palette ids
    rate, wav = wavfile.read(tmp_path / "d" / "audio.wav")
    assert rate == 16000 and wav.ndim == 2 and wav.shape[1] == 2
    assert wav.shape[0] == np.load(audio).shape[1]


def test_mono_ogg_gets_two_channels(tmp_path, run_cli):
    sf = pytest.importorskip("soundfile", reason="soundfile is not installed (needed for OGG)")
    t = np.arange(22050) / 44100
    sf.write(tmp_path / "cry.ogg", (0.5 * np.sin(2 * np.pi * 600 * t)).astype(np.float32), 44100,
             format="OGG", subtype="VORBIS")
    out = tmp_path / "c.npz"
    code, _, err = run_cli("tokenize", "--audio", str(tmp_path / "cry.ogg"), "--slicing-audio", "4", "-o", str(out))
    assert code == 0, err
    labels = np.load(out)["labels"][:, 0]
    assert labels[-2:].tolist() == [1, 2]  # the stereo separator row


@pytest.mark.parametrize(
    "args,message",
    [
        (["tokenize", "--image", "/no/such.png", "-o", "{tmp}/x.npz"], "no such image"),
        (["tokenize", "-o", "{tmp}/x.npz"], "nothing to tokenize"),
        (["tokenize", "--text", "a", "--text-file", "{tmp}/t.txt", "-o", "{tmp}/x.npz"], "not both"),
        (["tokenize", "--image", "{tmp}/t.txt", "-o", "{tmp}/x.npz"], "cannot read image"),
        (["tokenize", "--audio", "{tmp}/t.txt", "-o", "{tmp}/x.npz"], "not an audio file"),
        (["detokenize", "{tmp}/t.txt", "--out", "{tmp}/o"], "cannot read"),
        (["detokenize", "{tmp}/none.npz", "--out", "{tmp}/o"], "no such token file"),
    ],
)
def test_errors_are_one_line(tmp_path, run_cli, args, message):
    (tmp_path / "t.txt").write_text("hello")
    code, _, err = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert code == 2
    assert err.count("\n") == 1 and message in err, err


def test_a_text_given_as_audio_is_not_answered_with_soundfile_advice(tmp_path):
    """The Pi install has no soundfile: the reader is chosen by the file's bytes, not its name."""
    (tmp_path / "t.txt").write_text("hello")
    (tmp_path / "t.ogg").write_bytes(b"OggS" + bytes(60))
    code = (
        "import sys; sys.modules['soundfile'] = None; from pxby_edge.cli import main;"
        f"rc1 = main(['tokenize', '--audio', {str(tmp_path / 't.txt')!r}, '-o', {str(tmp_path / 'x.npz')!r}]);"
        f"rc2 = main(['tokenize', '--audio', {str(tmp_path / 't.ogg')!r}, '-o', {str(tmp_path / 'y.npz')!r}]);"
        "sys.exit(10 * rc1 + rc2)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 22, proc.stderr
    first, second = proc.stderr.splitlines()
    assert "not an audio file" in first and "soundfile" not in first
    assert "needs soundfile" in second  # a real OGG: there the advice is right
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "y.npz").exists()


def test_existing_output_needs_force(tmp_path, run_cli):
    out = tmp_path / "x.npz"
    out.write_bytes(b"keep me")
    code, _, err = run_cli("tokenize", "--text", "hi", "-o", str(out))
    assert code == 2 and "--force" in err
    assert out.read_bytes() == b"keep me"
    code, _, err = run_cli("tokenize", "--text", "hi", "-o", str(out), "--force")
    assert code == 0


def test_help_lists_the_commands_without_loading_torch():
    code = (
        "import sys; from pxby_edge.cli import main; rc = main(['--help']);"
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("tokenize", "detokenize"):
        assert name in proc.stdout
