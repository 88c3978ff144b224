"""End to end on the session's test checkpoint (tests/conftest.py ``models``: saved by ``training``, quantized
once): quantize writes the files it says, the manifest describes each file exactly, the float TFLite and ONNX
steps equal PyTorch, and bad inputs fail in one line before any work."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")

from pxby_edge import cli  # noqa: E402
from pxby_edge.manifest import MANIFEST_METADATA_NAME, Manifest, read_manifest  # noqa: E402
from pxby_edge.tflite_file import TFLiteFile  # noqa: E402

REQUIRED = ("recipe", "float_bytes", "quant_bytes", "new_token_accuracy_float", "new_token_accuracy_quant",
            "all_slot_accuracy_float", "all_slot_accuracy_quant", "new_token_top1_agreement", "mean_kl",
            "state_cosine_4096", "convert_seconds")


@pytest.fixture(scope="module")
def built(models):
    """The report, the files and the progress stages of the session's int8 + float + ONNX quantize run."""
    paths = {"quant": models.int8, "float": models.float, "onnx": models.onnx, "report": models.report}
    return json.loads(models.report.read_text()), paths, models.stages


def _torch_logits(ckpt, ctx: np.ndarray) -> np.ndarray:
    """The checkpoint's own PyTorch forward over one item's contexts (T, 6) -> (T, 6, V)."""
    from training.checkpoint import load_checkpoint

    with torch.no_grad():
        return load_checkpoint(ckpt)(torch.as_tensor(ctx.astype(np.int64))[None])[0].numpy()


def test_report_has_the_agreed_keys(built):
    report, paths, stages = built
    from quantize.pipeline import STAGES

    assert tuple(stages) == STAGES
    on_disk = json.loads(paths["report"].read_text())
    for key in REQUIRED:
        assert key in on_disk, key
    for key in REQUIRED[3:9]:
        assert 0.0 <= on_disk[key] <= 1.0 or key == "mean_kl"
    assert on_disk["float_tflite_top1_agreement"] == 1.0
    assert on_disk["max_abs_logit_diff_float_tflite"] < 1e-4
    assert on_disk["quant_bytes"] < on_disk["float_bytes"]
    assert read_manifest(paths["quant"]).fidelity == on_disk


def test_manifest_describes_each_file(built, models):
    _, paths, _ = built
    for key, recipe in (("quant", "int8"), ("float", "float")):
        f = TFLiteFile.open(paths[key])
        m = read_manifest(f)
        assert m.recipe == recipe and m.objective == "autoregressive" and m.batch == 1 and m.slots == 6
        assert [s.name for s in m.inputs] == ["context", "h0", "c0"]
        assert [s.name for s in m.outputs] == ["logits", "h1", "c1"]
        tensors = f.subgraphs[0].tensors
        for spec in m.inputs + m.outputs:
            t = tensors[spec.index]
            assert (t.name, t.shape, t.dtype, t.scale, t.zero_point) == (
                spec.tensor, spec.shape, spec.dtype, spec.scale, spec.zero_point)
        assert Manifest.from_json(m.to_json()) == m
        sha = __import__("hashlib").sha256((models.ckpt / "model.safetensors").read_bytes())
        assert m.checkpoint_sha256 == sha.hexdigest()
    quant = read_manifest(paths["quant"])
    for name in ("h0", "c0"):
        assert quant.input(name).dtype == "int8" and quant.input(name).scale > 0
    for name in ("h1", "c1", "logits"):
        assert quant.output(name).dtype == "int8" and quant.output(name).scale > 0
    assert quant.calibration["calib_steps"] == 16


def test_float_tflite_and_onnx_equal_pytorch(built, models):
    from quantize.fidelity import TFLiteStep

    _, paths, _ = built
    ctx = np.load(models.io)["input_ids"][0].astype(np.int32)
    want = _torch_logits(models.ckpt, ctx)
    got = TFLiteStep(paths["float"].read_bytes()).run(ctx)
    assert np.abs(got - want).max() < 1e-4

    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    meta = Manifest.from_json(sess.get_modelmeta().custom_metadata_map[MANIFEST_METADATA_NAME])
    assert meta.recipe == "float" and [s.name for s in meta.inputs] == ["context", "h0", "c0"]
    h = c = np.zeros((2, 1, 32), np.float32)
    out = []
    for t in range(len(ctx)):
        logits, h, c = sess.run(["logits", "h1", "c1"], {"context": ctx[t: t + 1], "h0": h, "c0": c})
        out.append(logits[0])
    assert np.abs(np.stack(out) - want).max() < 1e-4


def test_quantized_file_runs_and_mostly_agrees(built, models):
    from quantize.fidelity import TFLiteStep

    _, paths, _ = built
    ctx = np.load(models.io)["input_ids"][0].astype(np.int32)
    want = _torch_logits(models.ckpt, ctx)
    got = TFLiteStep(paths["quant"].read_bytes()).run(ctx)
    assert (got.argmax(-1) == want.argmax(-1)).mean() > 0.5


def _bad_checkpoint(tmp_path, ckpt, name, **config):
    folder = tmp_path / name
    shutil.copytree(ckpt, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(config)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_bad_inputs_fail_in_one_line(tmp_path, models, run_cli):
    out = tmp_path / "o.tflite"
    ckpt = models.ckpt
    corrupt = _bad_checkpoint(tmp_path, ckpt, "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"\x00not safetensors at all")
    bad_json = _bad_checkpoint(tmp_path, ckpt, "badjson")
    (bad_json / "config.json").write_text("{nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    empty_npz = tmp_path / "npz"
    empty_npz.mkdir()
    np.savez(empty_npz / "a.npz", input_ids=np.zeros((0, 6), np.int16))
    exists = tmp_path / "exists.tflite"
    exists.write_bytes(b"keep me")
    cases = [
        ((tmp_path / "missing", "-o", out), "no such checkpoint"),
        ((corrupt, "-o", out), "cannot read the weights"),
        ((bad_json, "-o", out), "config.json"),
        ((_bad_checkpoint(tmp_path, ckpt, "bi", bidirection=True), "-o", out), "bidirectional"),
        ((_bad_checkpoint(tmp_path, ckpt, "diff", objective="diffusion"), "-o", out), "diffusion"),
        ((ckpt, "-o", out, "--calib", empty), "not a dataset folder"),
        ((ckpt, "-o", out, "--calib", empty_npz), "no token streams"),
        ((ckpt, "-o", out, "--calib", tmp_path / "nothing"), "no calibration data"),
        ((ckpt, "-o", exists), "already exists"),
    ]
    for args, message in cases:
        rc, _, err = run_cli("quantize", *args)
        assert rc == 2, (args, err)
        assert err.startswith("error:") and err.count("\n") == 1, err
        assert message in err, (message, err)
    assert exists.read_bytes() == b"keep me" and not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["dynamic", "a16w8", "mixed"])
def test_cli_every_recipe(recipe, models, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    rc = cli.main(["quantize", str(models.ckpt), "-o", str(out), "--recipe", recipe,
                   "--calib-steps", "8", "--eval-steps", "128", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.err == ""  # stderr is no terminal: no bar, not even its bare "quantize" label (issue 22 item 9)
    report = json.loads(captured.out)
    assert report["recipe"] == recipe and read_manifest(out).recipe == recipe
    state = read_manifest(out).input("c0")
    assert (state.dtype == "int16") == (recipe == "a16w8")
    assert (state.dtype == "float32") == (recipe in ("dynamic", "mixed"))


@pytest.mark.slow
def test_batch_export(models, tmp_path):
    from quantize.fidelity import TFLiteStep
    from quantize.pipeline import quantize_checkpoint

    out = tmp_path / "b.tflite"
    quantize_checkpoint(models.ckpt, out, recipe="dynamic", batch=3, eval_steps=64,
                        onnx_out=tmp_path / "b.onnx")
    m = read_manifest(out)
    assert m.batch == 3 and m.input("context").shape == (3, 6) and m.input("h0").shape == (2, 3, 32)
    s = TFLiteStep(out.read_bytes())
    assert s.step(np.ones((3, 6), np.int32)).shape == (3, 6, 151)
