"""Dataset sources, cached tokenization, windows, and bad inputs (skipped with a count, or a clear error)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from training import data as data_mod
from training.data import Windows, held_out_streams, is_held_out, iter_streams, load_streams, open_source
from training.errors import DatasetError
from training.synth import make_item, write_dataset

SLICING = {"image": 1, "audio": 4}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "synth", 8, seed=0)


def _copy(src, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(src, dst)
    return dst


def test_folder_streams_equal_the_tokenizer(synth_dir, tmp_path):
    from pxby_edge.tokenizer import ActionPixelBytesTokenizer

    tok = ActionPixelBytesTokenizer(data_slicing=SLICING)
    streams = list(iter_streams(synth_dir, SLICING, cache_dir=tmp_path / "cache"))
    assert [s.id for s in streams] == [f"{i:04d}" for i in range(8)]
    for i, s in enumerate(streams):
        item = make_item(i, seed=0)
        decoded = tok.decode(s.labels.astype(np.int64))
        assert decoded["text"] == item.text
        assert len(decoded["frame_ids"]) == len(item.frames)
        for got, want in zip(decoded["frame_ids"], item.frames):
            np.testing.assert_array_equal(got, want)
        assert s.input_ids.dtype == np.uint8 and s.input_ids.shape == (len(s.labels), 6)


def test_cache_is_used(synth_dir, tmp_path, monkeypatch):
    first = list(iter_streams(synth_dir, SLICING, cache_dir=tmp_path / "c"))
    assert len(list((tmp_path / "c").glob("*.npz"))) == 8

    def boom(*a, **k):
        raise AssertionError("tokenized again despite the cache")

    monkeypatch.setattr(data_mod, "tokenize_item", boom)
    second = list(iter_streams(synth_dir, SLICING, cache_dir=tmp_path / "c"))
    assert all(np.array_equal(a.input_ids, b.input_ids) for a, b in zip(first, second))
    # Another slicing is another key.
    monkeypatch.undo()
    other = list(iter_streams(synth_dir, {"image": 2, "audio": 4}, cache_dir=tmp_path / "c"))
    assert len(other[0]) < len(first[0])


def test_bad_items_are_skipped_with_a_count(synth_dir, tmp_path):
    d = _copy(synth_dir, tmp_path)
    (d / "images" / "0001.gif").unlink()  # item without image
    (d / "images" / "0002.gif").write_bytes(b"GIF89a this is not really a gif")  # corrupt GIF
    (d / "audio" / "0003.wav").unlink()
    (d / "audio" / "0003.ogg").write_bytes(b"OggS\x00 corrupt")  # corrupt OGG
    (d / "text" / "0004.txt").write_text("   \n")  # empty text
    with open(d / "images" / "0005.gif", "r+b") as fh:  # truncated GIF
        fh.truncate(40)
    s = load_streams(d, SLICING, val_fraction=0.0, cache_dir=tmp_path / "cache")
    assert [x.id for x in s.train] == ["0000", "0006", "0007"]
    assert s.n_skipped == 5
    reasons = dict(s.skipped_ids)
    assert reasons["0001"] == "no image"
    assert reasons["0002"].startswith("unusable image")
    assert reasons["0003"].startswith("corrupt audio")
    assert reasons["0004"] == "empty text"
    assert reasons["0005"].startswith("unusable image")
    assert "skipped 5" in s.summary()


def test_missing_and_unusable_sources(tmp_path):
    with pytest.raises(DatasetError, match="no dataset at"):
        open_source(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DatasetError, match="not a dataset folder"):
        open_source(tmp_path / "plain")
    (tmp_path / "bad" / "text").mkdir(parents=True)
    (tmp_path / "bad" / "text" / "0000.txt").write_text("")
    with pytest.raises(DatasetError, match="no usable training item"):
        load_streams(tmp_path / "bad", SLICING, cache_dir=tmp_path / "c")


def test_parquet_source(synth_dir, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    sf = pytest.importorskip("soundfile")
    rows = {"image": [], "audio": [], "text": []}
    for i in range(3):
        item = make_item(i, seed=0)
        rows["image"].append({"bytes": (synth_dir / "images" / f"{i:04d}.gif").read_bytes(), "path": None})
        buf = io.BytesIO()
        sf.write(buf, item.audio.T, item.sample_rate, format="OGG")  # as the upstream export stores cries
        rows["audio"].append({"bytes": buf.getvalue(), "path": None})
        rows["text"].append(item.text)
    rows["text"][2] = ""  # empty text: skipped
    pq.write_table(pa.table(rows), tmp_path / "train.parquet")
    s = load_streams(tmp_path / "train.parquet", SLICING, val_fraction=0.0, cache_dir=tmp_path / "c")
    assert len(s.train) == 2 and s.skipped["empty text"] == 1
    from pxby_edge.tokenizer import ActionPixelBytesTokenizer

    decoded = ActionPixelBytesTokenizer(data_slicing=SLICING).decode(s.train[1].labels.astype(np.int64))
    assert decoded["text"] == make_item(1, seed=0).text
    np.testing.assert_array_equal(decoded["frame_ids"][0], make_item(1, seed=0).frames[0])


def test_held_out_split_is_stable(synth_dir, tmp_path):
    ids = [f"{i:04d}" for i in range(2000)]
    frac = np.mean([is_held_out(i, 0.1) for i in ids])
    assert 0.08 < frac < 0.12
    s = load_streams(synth_dir, SLICING, val_fraction=0.5, cache_dir=tmp_path / "c")
    held = held_out_streams(synth_dir, SLICING, val_fraction=0.5, cache_dir=tmp_path / "c")
    assert [x.id for x in held] == [x.id for x in s.val]


def test_windows_cover_and_pad():
    n = 10
    ids = np.arange(n * 6, dtype=np.uint8).reshape(n, 6) % 151
    labels = np.arange(n, dtype=np.uint8)
    stream = data_mod.Stream("x", ids, labels)
    w = Windows([stream], seq_len=4, stride=3)
    starts = [int(s) for _, s in w.index]
    assert starts == [0, 3, 5]  # the last window ends at the item's end
    x, y = w.window(2)
    np.testing.assert_array_equal(x, ids[5:9])
    np.testing.assert_array_equal(y, ids[6:10])  # target: the next context
    short = Windows([stream], seq_len=16, stride=8)
    x, y = short.window(0)
    assert len(short) == 1 and (x[10:] == 0).all() and (y[9:] == -100).all()
    np.testing.assert_array_equal(y[:9], ids[1:])
    pred = Windows([stream], seq_len=16, stride=8, objective="predict")
    x, y = pred.window(0)
    assert y.shape == (16,) and (y[:10] == labels).all() and (y[10:] == -100).all()
    xb, yb = w.batch([0, 1])
    assert xb.shape == (2, 4, 6) and yb.shape == (2, 4, 6)
    heads = Windows([stream], seq_len=4, stride=3, head_repeat=2)
    assert [int(s) for _, s in heads.index] == [0, 3, 5, 0, 0]
