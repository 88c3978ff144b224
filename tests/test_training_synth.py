"""The synthetic creature dataset: deterministic, symmetric, attributes visible in sprite, text and cry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.errors import DatasetError, OutputExistsError
from training.synth import (
    AUDIO_RATE,
    BACKDROPS,
    BACKGROUND,
    COLOURS,
    ELEMENTS,
    OUTLINE,
    SIZES,
    dominant_colour,
    make_item,
    write_dataset,
)


def test_deterministic_for_a_seed():
    a, b, c = make_item(5, seed=1), make_item(5, seed=1), make_item(5, seed=2)
    assert a.text == b.text and np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)
    assert not (a.text == c.text and np.array_equal(a.frames, c.frames))


@pytest.mark.parametrize("index", range(40))
def test_item_invariants(index):
    item = make_item(index, seed=0)
    f, h, w = item.frames.shape
    assert 2 <= f <= 4 and h == w == 24
    assert np.array_equal(item.frames, item.frames[:, :, ::-1]), "sprites are mirror-symmetric"
    assert len({fr.tobytes() for fr in item.frames}) > 1, "animated: frames differ"
    assert item.frames[:, 0, 0].tolist() == [BACKDROPS[item.colour]] * f, "the backdrop follows the colour word"
    assert (item.frames == OUTLINE).any()
    # The colour word is the dominant body colour; no other colour's ids appear at all.
    assert dominant_colour(item.frames) == item.colour
    others = [i for name, ids in COLOURS.items() if name != item.colour for i in ids]
    assert not np.isin(item.frames, others).any()
    assert item.text.startswith(f"a {item.size} {item.colour} {item.element} creature with ")
    assert item.text.endswith(f"it is {item.colour}.")
    assert item.audio.shape[0] == 2 and item.audio.dtype == np.float32
    assert item.audio.shape[1] == int(SIZES[item.size]["seconds"] * AUDIO_RATE)
    assert np.abs(item.audio).max() <= 1.0 + 1e-6


def test_palette_ids_are_disjoint():
    used = [i for ids in COLOURS.values() for i in ids]
    assert len(used) == len(set(used))
    others = [BACKGROUND, OUTLINE, *BACKDROPS.values(), *(e["accent"] for e in ELEMENTS.values())]
    assert len(others) == len(set(others)) and not set(used) & set(others)


def test_plain_backdrop_is_version_1():
    tinted, plain = make_item(7, seed=0), make_item(7, seed=0, backdrop="plain")
    assert (plain.frames[:, 0, 0] == BACKGROUND).all()
    body = tinted.frames != BACKDROPS[tinted.colour]
    assert np.array_equal(tinted.frames[body], plain.frames[body]) and tinted.text == plain.text
    with pytest.raises(DatasetError, match="backdrop"):
        make_item(0, backdrop="blue")


def test_cry_pitch_follows_size():
    """Bigger creatures call lower: the dominant frequency of the call falls with size."""

    def peak_hz(item):
        spec = np.abs(np.fft.rfft(item.audio[0]))
        return np.fft.rfftfreq(item.audio.shape[1], 1 / AUDIO_RATE)[spec.argmax()]

    by_size = {}
    for i in range(60):
        it = make_item(i, seed=3)
        if ELEMENTS[it.element]["contour"] in ("steady", "pulses"):
            by_size.setdefault(it.size, []).append(peak_hz(it))
    means = {k: np.mean(v) for k, v in by_size.items()}
    assert means["small"] > means["medium"] > means["large"]


def test_token_count_is_modest():
    from pxby_edge.tokenizer import ActionPixelBytesTokenizer

    tok = ActionPixelBytesTokenizer(data_slicing={"image": 1, "audio": 4})
    item = make_item(0, seed=0)
    n = len(tok(text=item.text, audio=item.audio)["input_ids"]) + item.frames[0].size * len(item.frames)
    assert 1000 < n < 5000


def test_write_dataset_layout_and_refusals(tmp_path):
    out = write_dataset(tmp_path / "d", 5, seed=0)
    meta = json.loads((out / "synth.json").read_text())
    assert [m["id"] for m in meta["items"]] == ["0000", "0001", "0002", "0003", "0004"]
    for sub, ext in (("text", "txt"), ("images", "gif"), ("audio", "wav")):
        assert len(list((out / sub).glob(f"*.{ext}"))) == 5
    assert (out / "text" / "0002.txt").read_text() == make_item(2, seed=0).text
    with pytest.raises(OutputExistsError):
        write_dataset(out, 3)
    write_dataset(out, 3, force=True)
    assert len(list((out / "text").iterdir())) == 3
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="holds files this command did not write"):
        write_dataset(tmp_path / "mine", 2, force=True)
    with pytest.raises(DatasetError):
        write_dataset(tmp_path / "zero", 0)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left behind"


def test_cli_synth(tmp_path):
    from pxby_edge.cli import main

    assert main(["dataset", "synth", "--n", "3", "--out", str(tmp_path / "s"), "--seed", "4"]) == 0
    assert (tmp_path / "s" / "images" / "0002.gif").is_file()
    assert main(["dataset", "synth", "--n", "3", "--out", str(tmp_path / "s")]) == 2
