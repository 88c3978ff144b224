"""Tokenizer parity with the upstream ActionPixelBytesTokenizer (fixtures made by upstream)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from pxby_edge.errors import TokenizerError
from pxby_edge.tokenizer import ActionPixelBytesTokenizer
from pxby_edge.vocab import (
    DEFAULT_ACTION_STATE,
    DEFAULT_BYTES,
    DEFAULT_PALETTE,
    Vocab,
    generate_action_space,
    generate_palette,
)

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it


def load(upstream_dir, name):
    data = np.load(upstream_dir / name)
    return {k: data[k] for k in ("input_ids", "labels")}


def assert_same(out, ref):
    for key in ("input_ids", "labels"):
        assert out[key].dtype == np.int64
        np.testing.assert_array_equal(out[key], ref[key].astype(np.int64), err_msg=key)


def test_vocab_equals_upstream(upstream_dir):
    ref = json.loads((upstream_dir / "vocab.json").read_text())
    assert Vocab().to_dict() == ref
    assert Vocab.from_dict(ref) == Vocab()


def test_text_fixture(upstream_dir):
    text = (upstream_dir / "bulbasaur.txt").read_text(encoding="utf-8")
    assert_same(ActionPixelBytesTokenizer()(text=text), load(upstream_dir, "text_only.npz"))


@pytest.mark.parametrize("png,npz", [("Bulbasaur.png", "bulbasaur_image_s1.npz"), ("ditto.png", "ditto_image_s1.npz")])
def test_image_fixtures(upstream_dir, png, npz):
    with Image.open(upstream_dir / png) as img:
        assert_same(ActionPixelBytesTokenizer()(image=img), load(upstream_dir, npz))


def test_audio_fixture(upstream_dir):
    cry = np.load(upstream_dir / "bulbasaur_cry_stereo16k.npy")
    assert_same(ActionPixelBytesTokenizer()(audio={"array": cry}), load(upstream_dir, "cry_audio_s1.npz"))
    # A bare array is accepted as well as upstream's dict.
    assert_same(ActionPixelBytesTokenizer()(audio=cry), load(upstream_dir, "cry_audio_s1.npz"))


def test_all_modalities_sliced_fixture(upstream_dir):
    text = (upstream_dir / "bulbasaur.txt").read_text(encoding="utf-8")
    cry = np.load(upstream_dir / "bulbasaur_cry_stereo16k.npy")
    tok = ActionPixelBytesTokenizer(data_slicing={"image": 2, "audio": 2})
    with Image.open(upstream_dir / "Bulbasaur.png") as img:
        out = tok(text=text, image=img, audio={"array": cry})
    assert_same(out, load(upstream_dir, "bulbasaur_all_s2.npz"))


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "RGB"])
def test_image_modes_and_animated_gif(mode):
    palette = np.asarray(DEFAULT_PALETTE, dtype=np.uint8)
    rng = np.random.default_rng(0)
    frames_idx = rng.integers(0, len(palette), size=(3, 5, 6))
    images = [Image.fromarray(palette[f]) for f in frames_idx]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=100)
    with Image.open(io.BytesIO(buf.getvalue())) as gif:
        assert gif.n_frames == 3
        out = ActionPixelBytesTokenizer()(image=gif)
    assert out["input_ids"].shape == (3 * 5 * 7, 6)
    ids = out["labels"].reshape(3, 5, 7)
    assert (ids[:, :, -1] == np.where(np.arange(5) == 4, 2, 1)).all()
    # Exact palette colours survive the GIF: every pixel maps back to its own index.
    np.testing.assert_array_equal(ids[:, :, :-1] - len(DEFAULT_BYTES), frames_idx)
    converted = images[0].convert(mode)
    single = ActionPixelBytesTokenizer()(image=converted)
    assert single["labels"].shape == (5 * 7, 1)


def test_custom_lists_like_upstream_generators():
    tok = ActionPixelBytesTokenizer(PALETTE=generate_palette(16), ACTION_STATE=generate_action_space(8))
    assert tok.vocab_size == len(DEFAULT_BYTES) + 16 + 8
    out = tok(audio=np.array([[0.0, 1.0, -1.0], [1.0, 0.0, 0.5]]))
    assert out["labels"].max() < tok.vocab_size
    assert out["labels"][:6, 0].min() >= len(DEFAULT_BYTES) + 16


def test_text_lowercases_drops_non_ascii_and_maps_unknown_to_zero():
    out = ActionPixelBytesTokenizer()(text="Pokémon #1")
    ids = out["labels"][:, 0].tolist()
    v = Vocab()
    assert ids == [v.byte_id(c) for c in b"pokemon "] + [0, v.byte_id(ord("1")), 2]


def test_decode_round_trip(upstream_dir):
    text = (upstream_dir / "bulbasaur.txt").read_text(encoding="utf-8")
    cry = np.load(upstream_dir / "bulbasaur_cry_stereo16k.npy")
    tok = ActionPixelBytesTokenizer()
    with Image.open(upstream_dir / "Bulbasaur.png") as img:
        out = tok(text=text, image=img, audio={"array": cry})
        ids = tok.image_ids(img)[0] - len(DEFAULT_BYTES)
    dec = tok.decode(out["labels"])
    assert dec["text"] == "bulbasaur is a grass/poison-type pokemon. a strange seed was planted on its back at birth; the plant sprouts and grows with this pokemon!"
    assert len(dec["frame_ids"]) == 1
    np.testing.assert_array_equal(dec["frame_ids"][0], ids)
    assert dec["frames"][0].shape == (25, 22, 3)
    assert dec["audio"].shape == (2, cry.shape[1])
    levels = tok.audio_ids(cry) - len(DEFAULT_BYTES) - len(DEFAULT_PALETTE)
    np.testing.assert_allclose(dec["audio"], np.asarray(DEFAULT_ACTION_STATE, dtype=np.float32)[levels])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "at least one"),
        ({"text": 5}, "must be a str"),
        ({"audio": np.zeros((2, 10))}, "silent"),
        ({"audio": np.zeros((3, 10))}, "shape"),
        ({"audio": np.array([[np.nan, 1.0]])}, "NaN"),
    ],
)
def test_bad_inputs_raise_tokenizer_error(kwargs, match):
    with pytest.raises(TokenizerError, match=match):
        ActionPixelBytesTokenizer()(**kwargs)


def test_bad_slicing_is_refused():
    with pytest.raises(ValueError, match="unknown data_slicing"):
        ActionPixelBytesTokenizer(data_slicing={"video": 2})
    with pytest.raises(ValueError, match=">= 1"):
        ActionPixelBytesTokenizer(data_slicing={"image": 0})
