"""Hostile inputs to training and quantization (issue 21, items 5-8): one `error:` line, exit 2, nothing
changed; a bad dataset item is skipped and counted; a diverging run stops before saving NaN.

    python -m pytest -q tests/test_hostile_training.py

The rows reuse ``assert_refused`` of tests/test_hostile_inputs.py (the folder is snapshotted before the
command and must be exactly as it was after it). Checkpoints here are real ones written by
``training.checkpoint.save_checkpoint`` and then tampered with, one field or file at a time; the
torch-free rows (``inspect`` of a device) live in test_hostile_inputs.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pxby_edge.cli import main  # noqa: E402
from tests.test_hostile_inputs import assert_refused, png_chunk, unwritable  # noqa: E402, F401 (a fixture)
from tests.test_train_kills import needs_strace  # noqa: E402
from training.checkpoint import save_checkpoint  # noqa: E402
from training.config import load_preset  # noqa: E402
from training.model import PixelBytesLSTM  # noqa: E402
from training.synth import write_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--config", "tiny", "--max-steps", "4", "--eval-every", "2", "--device", "cpu", "--threads", "1",
         "--no-progress", "--batch", "2", "--seq-len", "64"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("hd") / "D", 6, seed=0, size_px=12)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real tiny checkpoint (config.json with our pxby block, model.safetensors)."""
    folder = tmp_path_factory.mktemp("ck") / "ck"
    torch.manual_seed(0)
    save_checkpoint(PixelBytesLSTM(load_preset("tiny")[0]), folder,
                    {"data_slicing": {"image": 2, "audio": 8}, "audio_rate": 1024})
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """A finished short training run, to tamper with before --resume."""
    out = tmp_path_factory.mktemp("run") / "R"
    assert main(["train", "--data", str(data), "--out", str(out), *QUICK, "-q"]) == 0
    return out


def _copy(src: Path, tmp: Path, name: str) -> Path:
    shutil.copytree(src, tmp / name)
    return tmp / name


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# -- item 5: non-finite settings, NaN checkpoints, state.json ------------------------------------


@pytest.mark.parametrize("option,value,message", [
    ("--lr", "inf", "lr=inf"),
    ("--lr", "nan", "lr=nan"),
    ("--pad-weight", "inf", "pad_weight=inf"),
    ("--seed", "-1", "seed=-1"),
    ("--seed", str(2**64), f"seed={2**64}"),
    ("--threads", str(2**63), f"num_threads={2**63}"),
])
def test_train_refuses_a_bad_setting_up_front(option, value, message, data, tmp_path, capsys):
    assert_refused(capsys, tmp_path, ["train", "--data", str(data), "--out", "{tmp}/out", *QUICK, option, value],
                   message)


def test_train_refuses_init_from_a_nan_checkpoint(checkpoint, data, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    ck = _copy(checkpoint, tmp_path, "nan")
    state = load_file(ck / "model.safetensors")
    state["fc.bias"][3] = float("nan")
    save_file(state, ck / "model.safetensors")
    assert_refused(capsys, tmp_path, ["train", "--data", str(data), "--out", "{tmp}/out", *QUICK, "--init", str(ck)],
                   "NaN or infinite weights")


@pytest.mark.parametrize("name,tamper,message", [
    ("min-lr-nan", lambda r: _edit_json(r / "train_config.json", lambda d: d["train"].update(min_lr=float("nan"))),
     "min_lr=nan"),
    ("lr-string", lambda r: _edit_json(r / "train_config.json", lambda d: d["train"].update(lr="fast")), "lr='fast'"),
    ("train-config-list", lambda r: (r / "train_config.json").write_text("[1]"), "must hold a JSON object"),
    ("step-negative", lambda r: _edit_json(r / "last/state.json", lambda d: d.update(step=-1000)), "step must be"),
    ("batch-pos-huge", lambda r: _edit_json(r / "last/state.json", lambda d: d.update(batch_pos=10**9)), "batch_pos must be"),
    ("best-nan", lambda r: _edit_json(r / "last/state.json", lambda d: d.update(best_val_loss=float("nan"))),
     "best_val_loss"),
    ("file-list-gone", lambda r: _edit_json(r / "last/state.json", lambda d: d.pop("files")), "lists no files"),
    ("weights-truncated", lambda r: (r / "last/model.safetensors").write_bytes((r / "last/model.safetensors").read_bytes()[:999]),
     "not the file state.json lists"),
    ("optimizer-swapped", lambda r: shutil.copy(r / "last/model.safetensors", r / "last/optimizer.safetensors"),
     "not the file state.json lists"),
    ("state-json-fifo", lambda r: ((r / "last/state.json").unlink(), os.mkfifo(r / "last/state.json")),
     "not a regular file"),
    ("no-last", lambda r: shutil.rmtree(r / "last"), "nothing to resume"),
])
def test_resume_refuses_a_tampered_run(name, tamper, message, run, data, tmp_path, capsys):
    r = _copy(run, tmp_path, "R")
    tamper(r)
    assert_refused(capsys, tmp_path, ["train", "--data", str(data), "--out", str(r), *QUICK, "--max-steps", "6",
                                      "--resume"], message)


@pytest.mark.parametrize("eval_every", ["1", "50"])
def test_a_diverging_run_stops_with_one_line_and_saves_no_nan(eval_every, data, tmp_path, capsys, monkeypatch):
    """The loss turns NaN at the 3rd micro-batch (a fault injected into the real loop); the run must stop
    with one line at the next read of its device-side sums (a validation, or the progress line every
    25 steps), and every weights file it left must be finite: the last good state, never the NaN one."""
    from safetensors.torch import load_file

    import training.train as loop

    real, calls = loop.loss_and_counts, []

    def poisoned(logits, y, class_weight):
        loss, counts = real(logits, y, class_weight)
        if not torch.is_grad_enabled():  # a validation: left alone
            return loss, counts
        calls.append(1)
        return (loss * float("nan") if len(calls) >= 3 else loss), counts

    monkeypatch.setattr(loop, "loss_and_counts", poisoned)
    out = tmp_path / "out"
    code = main(["train", "--data", str(data), "--out", str(out), *QUICK, "--max-steps", "40",
                 "--eval-every", eval_every, "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: training diverged at step") and err.count("\n") == 1, err
    step = int(err.split("at step ")[1].split(":")[0])
    # eval_every 1: at once; else at the first read: the epoch's end (its validation) or step 25's progress line.
    assert step == 3 if eval_every == "1" else 3 <= step <= 25, err
    for path in out.rglob("*.safetensors"):
        assert all(bool(torch.isfinite(t).all()) for t in load_file(path).values()), path
    if eval_every == "1":  # steps 1 and 2 were good and saved; the resume set is step 2's
        assert json.loads((out / "last/state.json").read_text())["step"] == 2


# -- item 6: checkpoint config.json and parquet columns ------------------------------------------


def _config(change):
    return lambda ck: _edit_json(ck / "config.json", change)


def _deep_json(ck: Path) -> None:
    (ck / "config.json").write_text("[" * 100_000 + "]" * 100_000)


def _fifo_config(ck: Path) -> None:
    (ck / "config.json").unlink()
    os.mkfifo(ck / "config.json")


CHECKPOINT_TAMPERS = [
    ("hidden-100000", _config(lambda d: d.update(hidden_size=100000)), "hidden_size 100000 is outside"),
    ("hidden-1e9", _config(lambda d: d.update(hidden_size=1e9)), "hidden_size must be an integer"),
    ("hidden-1.5", _config(lambda d: d.update(hidden_size=1.5)), "hidden_size must be an integer"),
    ("vocab-1e9", _config(lambda d: d.update(vocab_size=10**9)), "vocab_size 1000000000 is outside"),
    ("embed-1e12", _config(lambda d: d.update(embed_size=10**12)), "embed_size 1000000000000 is outside"),
    ("layers-1e6", _config(lambda d: d.update(num_layers=10**6)), "num_layers 1000000 is outside"),
    ("params-too-many", _config(lambda d: d.update(hidden_size=60000, num_layers=8)), "parameters, more than"),
    ("objective-7", _config(lambda d: d.update(objective=7)), "objective index 7"),
    ("objective-list", _config(lambda d: d.update(objective=["x"])), "objective must be one of"),
    ("deep-json", _deep_json, "nested too deep"),
    ("fifo-config", _fifo_config, "not a regular file"),
    ("pxby-string", _config(lambda d: d.update(pxby="x")), "'pxby' must be a JSON object"),
    ("slicing-0", _config(lambda d: d["pxby"].update(data_slicing=0)), "data_slicing must be an object"),
    ("slicing-image-0", _config(lambda d: d["pxby"].update(data_slicing={"image": 0, "audio": 1})), "image must be an integer"),
    ("slicing-1e9", _config(lambda d: d["pxby"].update(data_slicing={"image": 1, "audio": 10**9})), "audio must be an integer"),
    ("audio-rate-fast", _config(lambda d: d["pxby"].update(audio_rate="fast")), "audio_rate must be a rate"),
    ("audio-rate-negative", _config(lambda d: d["pxby"].update(audio_rate=-8000)), "audio_rate must be a rate"),
    ("format-string", _config(lambda d: d["pxby"].update(format_version="x")), "format_version must be"),
    ("weights-truncated", lambda ck: (ck / "model.safetensors").write_bytes((ck / "model.safetensors").read_bytes()[:500]),
     "cannot read the weights"),
]


@pytest.mark.parametrize("name,tamper,message", CHECKPOINT_TAMPERS, ids=[c[0] for c in CHECKPOINT_TAMPERS])
def test_quantize_refuses_a_tampered_checkpoint(name, tamper, message, checkpoint, tmp_path, capsys):
    ck = _copy(checkpoint, tmp_path, "ck")
    tamper(ck)
    assert_refused(capsys, tmp_path, ["quantize", str(ck), "-o", "{tmp}/o.tflite"], message)


@pytest.mark.parametrize("name,tamper,message", CHECKPOINT_TAMPERS[:3] + CHECKPOINT_TAMPERS[9:11],
                         ids=[c[0] for c in CHECKPOINT_TAMPERS[:3] + CHECKPOINT_TAMPERS[9:11]])
def test_train_init_refuses_a_tampered_checkpoint(name, tamper, message, checkpoint, data, tmp_path, capsys):
    ck = _copy(checkpoint, tmp_path, "ck")
    tamper(ck)
    assert_refused(capsys, tmp_path, ["train", "--data", str(data), "--out", "{tmp}/out", *QUICK, "--init", str(ck)],
                   message)


PARQUET_COLUMNS = {
    "text-int": {"text": [1, 2]},
    "text-list": {"text": [["a"], ["b"]]},
    "image-int": {"text": ["a", "b"], "image": [3, 4]},
    "image-struct-of-int": {"text": ["a", "b"], "image": [{"bytes": 5}, {"bytes": 6}]},
    "audio-int": {"text": ["a", "b"], "audio": [7, 8]},
    "audio-array-strings": {"text": ["a", "b"], "audio": [{"array": ["x"], "sampling_rate": 8000}] * 2},
    "audio-rate-negative": {"text": ["a", "b"], "audio": [{"array": [0.1, 0.2], "sampling_rate": -8000}] * 2},
    "audio-array-nan": {"text": ["a", "b"], "audio": [{"array": [float("nan")] * 4, "sampling_rate": 8000}] * 2},
}


@pytest.mark.parametrize("name", PARQUET_COLUMNS)
def test_parquet_columns_of_the_wrong_type_skip_their_items(name, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(PARQUET_COLUMNS[name]), tmp_path / "bad.parquet")
    assert_refused(capsys, tmp_path, ["train", "--data", "{tmp}/bad.parquet", "--out", "{tmp}/out", *QUICK],
                   "no usable training item")


# -- item 7: unbounded dataset items and calibration files -----------------------------------------


def _hostile_items(folder: Path) -> None:
    """Beside the good items: a 30000×30000 PNG header, a 2100×2100 PNG (real pixels, over the bound),
    a FIFO as an image and one as a sound, a text linked to /dev/zero, a text of 17 MB."""
    import zlib

    images, text = folder / "images", folder / "text"
    ihdr = np.array([30000, 30000], ">u4").tobytes() + bytes([8, 0, 0, 0, 0])
    (images / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                                      + png_chunk(b"IDAT", zlib.compress(bytes(30001))) + png_chunk(b"IEND", b""))
    from PIL import Image

    Image.new("L", (2100, 2100)).save(images / "big.png")  # 4.4 M pixels: over tokenize's 4,194,304
    os.mkfifo(images / "pipe.png")
    os.mkfifo(folder / "audio" / "hum.wav")
    for stem in ("bomb", "big", "pipe", "hum"):
        (text / f"{stem}.txt").write_text("a creature")
    os.symlink("/dev/zero", text / "zero.txt")
    (text / "long.txt").write_text("x" * (17 << 20))


def test_hostile_dataset_items_are_skipped_and_counted(tmp_path):
    from training.data import load_streams

    data = write_dataset(tmp_path / "D", 4, seed=0, size_px=12)
    _hostile_items(data)
    streams = load_streams(data, {"image": 1, "audio": 4}, 0.0, cache_dir=tmp_path / "cache", require=("text",))
    assert len(streams.train) == 4  # the good items all train
    reasons = dict(streams.skipped_ids)
    assert set(reasons) == {"bomb", "big", "pipe", "hum", "zero", "long"}, reasons
    assert "unusable image" in reasons["bomb"] and "4,194,304" in reasons["big"], reasons
    assert reasons["pipe"].startswith("not a regular file") and reasons["zero"].startswith("not a regular file")
    assert reasons["long"].startswith("file too large") and reasons["hum"].startswith("not a regular file")
    assert "skipped 6" in streams.summary()


def _npz(**arrays):
    return lambda tmp: np.savez(tmp / "c.npz", **arrays)


def _npz_zip_bomb(tmp: Path) -> None:
    """A few hundred kB of zeros on disk that inflate to 384 MB of int64 ids."""
    import zipfile

    from tests.test_hostile_inputs import npy_header

    n = 48_000_000  # 384 MB of int64 ids, over the 256 MiB bound
    with zipfile.ZipFile(tmp / "c.npz", "w", zipfile.ZIP_DEFLATED) as zf, zf.open("input_ids.npy", "w", force_zip64=True) as fh:
        fh.write(npy_header((n // 6, 6)))
        block = bytes(1 << 24)
        for _ in range(n * 8 // len(block)):
            fh.write(block)


@pytest.mark.parametrize("name,make,message", [
    ("ids-999", _npz(input_ids=np.full((20, 6), 999)), "token ids outside 0..150"),
    ("ids-negative", _npz(input_ids=np.full((20, 6), -3)), "token ids outside 0..150"),
    ("ids-nan", _npz(input_ids=np.full((20, 6), np.nan)), "must be integer token ids"),
    ("ids-4d", _npz(input_ids=np.zeros((2, 2, 5, 6), np.int64)), "got shape (2, 2, 5, 6)"),
    ("ids-not-6", _npz(input_ids=np.zeros((5, 4), np.int64)), "got shape (5, 4)"),
    ("no-input-ids", _npz(labels=np.zeros(5, np.int64)), "not a token file with input_ids"),
    ("zip-bomb", _npz_zip_bomb, "would decompress to"),
    ("fifo", lambda tmp: os.mkfifo(tmp / "c.npz"), "not a regular file"),
])
def test_quantize_refuses_bad_calibration_tokens(name, make, message, checkpoint, tmp_path, capsys):
    make(tmp_path)
    assert_refused(capsys, tmp_path, ["quantize", str(checkpoint), "-o", "{tmp}/o.tflite", "--calib", "{tmp}/c.npz"],
                   message)


# -- item 8: quantize's outputs as one set ---------------------------------------------------------


@pytest.mark.parametrize("extra,message", [
    (["--report", "{tmp}/f/r.json"], "is a file, not a folder"),
    (["--report", "{tmp}/o.tflite"], "name the same file"),
    (["--onnx", "{tmp}/d"], "is a directory"),
])
def test_quantize_checks_every_output_before_converting(extra, message, checkpoint, tmp_path, capsys):
    (tmp_path / "f").write_text("a file")
    (tmp_path / "d").mkdir()
    assert_refused(capsys, tmp_path, ["quantize", str(checkpoint), "-o", "{tmp}/o.tflite", *extra], message)


@pytest.mark.usefixtures("unwritable")  # {tmp}/ro, which this process cannot write in
def test_quantize_refuses_an_unwritable_report_folder_before_converting(checkpoint, tmp_path, capsys):
    """Finding 8: `--report ro/r.json` failed only after the whole conversion, with the model written."""
    assert_refused(capsys, tmp_path, ["quantize", str(checkpoint), "-o", "{tmp}/o.tflite", "--report",
                                      "{tmp}/ro/r.json"], "permission denied")


SET_SCRIPT = """
import sys
from pxby_edge.atomic import FileSet
folder, tag = sys.argv[1], sys.argv[2]
names = ["m.tflite", "f.tflite", "m.onnx", "r.json"]
s = FileSet([f"{folder}/{n}" for n in names], overwrite=True)
for n in names:
    s.stage(f"{folder}/{n}", f"{tag} {n}".encode())
s.commit()
"""


@needs_strace
@pytest.mark.parametrize("n", range(1, 6))
def test_output_set_killed_at_any_rename_ends_whole(n, tmp_path):
    """The set of four is written as 'old', then again as 'new' killed at its N-th rename (1: the journal,
    2-5: the files). Whatever the kill left, the next FileSet for the same outputs leaves all four from one
    run and no temporary."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", SET_SCRIPT, str(tmp_path)]
    subprocess.run([*cmd, "old"], check=True, env=env)
    killed = subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=rename",
                             "-e", f"inject=rename:signal=SIGKILL:when={n}", *cmd, "new"], env=env)
    assert killed.returncode in (-9, 137)
    from pxby_edge.atomic import FileSet

    names = ["m.tflite", "f.tflite", "m.onnx", "r.json"]
    FileSet([tmp_path / name for name in names], overwrite=True).discard()
    tags = {(tmp_path / name).read_text().split()[0] for name in names}
    assert tags in ({"old"}, {"new"}), tags
    assert tags == ({"old"} if n == 1 else {"new"})  # the journal in place means the set is committed
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_a_run_over_hostile_items_trains_on_the_rest(tmp_path, capsys):
    """The same items through `train`: the run ends (exit 0) and says what it skipped; nothing hangs
    (the audio-rate scan and the reads meet the FIFOs too)."""
    data = write_dataset(tmp_path / "D", 4, seed=0, size_px=12)
    _hostile_items(data)
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "out"), *QUICK, "--max-steps", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "skipped 6" in out + err, out + err


def test_a_planted_journal_is_never_followed(tmp_path, capsys):
    """A journal beside -o naming someone's file as a 'temporary' would make quantize rename it over
    the output: refused with one line, and both files stay as they were."""
    (tmp_path / "victim").write_text("keep me")
    (tmp_path / ".o.tflite.set.json").write_text(json.dumps({"renames": [[str(tmp_path / "victim"),
                                                                           str(tmp_path / "o.tflite")]]}))
    assert_refused(capsys, tmp_path, ["quantize", "/nonexistent-checkpoint", "-o", "{tmp}/o.tflite"],
                   "not a temporary of")


def _sources(folder: Path) -> set:
    """Which checkpoint each of quantize's four outputs was made from (its weights' SHA-256)."""
    import onnx

    from pxby_edge.manifest import MANIFEST_METADATA_NAME, Manifest, read_manifest

    onnx_meta = {p.key: p.value for p in onnx.load(str(folder / "m.onnx")).metadata_props}
    return {read_manifest(folder / "m.tflite").checkpoint_sha256, read_manifest(folder / "f.tflite").checkpoint_sha256,
            Manifest.from_json(onnx_meta[MANIFEST_METADATA_NAME]).checkpoint_sha256,
            _sha_of_checkpoint(json.loads((folder / "r.json").read_text())["checkpoint"])}  # the report names its folder


def _sha_of_checkpoint(folder) -> str:
    import hashlib

    return hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()


@needs_strace
@pytest.mark.slow
def test_quantize_killed_at_every_rename_leaves_one_set(checkpoint, tmp_path):
    """Finding 8 with the real command: the four outputs of checkpoint A are in place; quantize of checkpoint
    B into them with --force is killed at each of its renames (the journal, then the four files). After
    the next quantize's first step (FileSet, which finishes a journal), all four come from one checkpoint:
    A when the kill came before the journal was in place, B from then on; no temporary is left."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    other = _copy(checkpoint, tmp_path, "B")
    torch.manual_seed(1)
    save_checkpoint(PixelBytesLSTM(load_preset("tiny")[0]), other, {"data_slicing": {"image": 2, "audio": 8}})
    names = ["m.tflite", "f.tflite", "m.onnx", "r.json"]

    def quantize(ck, out: Path, kill: int = 0):
        cmd = [sys.executable, "-c", "import sys; from pxby_edge.cli import main; sys.exit(main(sys.argv[1:]))",
               "quantize", str(ck), "-o", str(out / "m.tflite"), "--float", str(out / "f.tflite"), "--onnx",
               str(out / "m.onnx"), "--report", str(out / "r.json"), "--eval-steps", "32", "--calib-steps", "4",
               "--force", "-q"]
        if kill:
            cmd = ["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=rename",
                   "-e", f"inject=rename:signal=SIGKILL:when={kill}", *cmd]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    first = tmp_path / "A"
    assert quantize(checkpoint, first).returncode == 0
    shas = {"A": _sha_of_checkpoint(checkpoint), "B": _sha_of_checkpoint(other)}
    assert _sources(first) == {shas["A"]}
    from pxby_edge.atomic import FileSet

    for n in range(1, 6):
        out = tmp_path / f"k{n}"
        shutil.copytree(first, out)
        assert quantize(other, out, kill=n).returncode in (-9, 137), n
        FileSet([out / name for name in names], overwrite=True).discard()
        assert _sources(out) == {shas["A"] if n == 1 else shas["B"]}, n
        assert sorted(p.name for p in out.iterdir()) == sorted(names), n


def test_a_folder_of_calibration_files_is_bounded_in_total(tmp_path, monkeypatch):
    """Each .npz is bounded by load_npz; the folder's sum is bounded too (here lowered to 1 kB)."""
    import quantize.calibrate as calibrate
    from pxby_edge.errors import DatasetError

    for k in range(3):
        np.savez(tmp_path / f"{k}.npz", input_ids=np.ones((30, 6), np.int64))
    assert len(calibrate.npz_streams(tmp_path)) == 3
    monkeypatch.setattr(calibrate, "MAX_CALIB_BYTES", 1000)
    with pytest.raises(DatasetError, match="more than 0 MiB of contexts"):
        calibrate.npz_streams(tmp_path)
