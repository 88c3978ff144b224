"""GPTQ rounding: a hand-checked case, never worse than nearest on the output error, the quantizer keeps
the chosen integers in the file, and the pipeline's ``rounding`` option (report, manifest, CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("training.model")

from quantize.rounding import (  # noqa: E402
    QMAX,
    check_weights,
    gptq_round,
    gptq_weights,
    matmul_inputs,
    max_pins,
    nearest_round,
    replace_weights,
    row_scales,
)


def test_hand_case_moves_the_error_onto_the_correlated_column():
    # Two inputs that are always equal: only w1 + w2 matters. Nearest gives 1 + 1 (error 0.6);
    # GPTQ rounds w1 to 1 and lowers w2 by that error (0.7 - 0.3 = 0.4), which rounds to 0 (error 0.4).
    w = np.array([[0.7, 0.7]])
    h = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert nearest_round(w, np.ones(1)).tolist() == [[1, 1]]
    assert gptq_round(w, h, np.ones(1), damp=1e-6, act_order=False).tolist() == [[1, 0]]


def test_uncorrelated_inputs_give_nearest_rounding():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 12))
    s = row_scales(w)
    h = np.diag(rng.uniform(0.5, 2.0, 12))
    assert np.array_equal(gptq_round(w, h, s), nearest_round(w, s))


def test_smaller_output_error_than_nearest_and_rows_keep_their_scale():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 24)) @ rng.normal(size=(24, 24))  # correlated inputs
    w = rng.normal(size=(40, 24)) * 0.1
    s = row_scales(w)
    q = gptq_round(w, x.T @ x, s, pinned=max_pins(w))
    near = nearest_round(w, s)

    def err(qq):
        return float(np.linalg.norm((w - qq * s[:, None]) @ x.T))

    assert err(q) < 0.7 * err(near)
    assert np.abs(q).max() <= QMAX
    assert np.array_equal(np.abs(q)[max_pins(w)], np.full(40, QMAX))  # so max|q·s| / 127 is s again
    assert np.array_equal(row_scales(q * s[:, None]), s)


def _tiny_model(seed: int = 0):
    from training.config import ModelConfig
    from training.model import PixelBytesLSTM

    torch.manual_seed(seed)
    return PixelBytesLSTM(ModelConfig(embed_size=24, hidden_size=32, num_layers=2)).eval()


def _streams(n: int = 3, length: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 151, size=(length, 6)).astype(np.int32) for _ in range(n)]


def test_matmul_inputs_are_what_each_matmul_sees():
    from quantize.step import StepModule

    model = _tiny_model()
    s = _streams(1, 30)[0]
    xs = matmul_inputs(model, [s])
    assert xs["x0"].shape == (29, 24) and xs["h0"].shape == xs["x1"].shape == xs["top"].shape == (29, 32)
    step = StepModule(model).eval()
    h, c = step.initial_state(1)
    with torch.no_grad():
        for t in range(3):
            assert np.allclose(xs["h0"][t], h[0, 0].numpy(), atol=1e-5)
            assert np.allclose(xs["h1"][t], h[1, 0].numpy(), atol=1e-5)
            _, h, c = step(torch.as_tensor(s[t:t + 1]), h, c)
            assert np.allclose(xs["x1"][t], h[0, 0].numpy(), atol=1e-5)
            assert np.allclose(xs["top"][t], h[1, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize("recipe", ["dynamic", "mixed"])
def test_quantizer_keeps_the_chosen_integers(recipe):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    from pxby_edge.tflite_file import TFLiteFile
    from quantize.calibrate import Streams, calibration_samples
    from quantize.export import export_tflite
    from quantize.recipes import quantize_tflite
    from quantize.step import StepModule

    model = _tiny_model(1)
    streams = _streams()
    rounded = gptq_weights(model, streams)
    assert len(rounded.ints) == 5 and rounded.summary["positions"] == 3 * 199
    step = StepModule(model).eval()
    float_bytes = export_tflite(step)
    state = model.state_dict()
    patched = replace_weights(float_bytes, {k: state[k].numpy() for k in rounded.ints},
                              {k: rounded.weights(k) for k in rounded.ints})
    assert len(patched) == len(float_bytes) and patched != float_bytes
    samples = calibration_samples(step, Streams(streams, "random"), 8)[0] if recipe != "dynamic" else []
    quant = quantize_tflite(patched, recipe, samples, pre_rounded=True)
    assert check_weights(quant, rounded) == 5
    # Read back: the dequantized weights are our grid values.
    f = TFLiteFile(quant)
    deq = [f.dequantized(t) for t in f.subgraphs[0].tensors if t.dtype == "int8" and len(t.shape) == 2]
    fc = rounded.weights("fc.weight")
    assert any(d.shape == fc.shape and np.allclose(d, fc, rtol=1e-6, atol=0) for d in deq)
    # A different set of integers is told apart.
    rounded.ints["fc.weight"] = rounded.ints["fc.weight"].copy()
    rounded.ints["fc.weight"][0, 0] += 1 if rounded.ints["fc.weight"][0, 0] < QMAX else -1
    with pytest.raises(Exception, match="fc.weight"):
        check_weights(quant, rounded)


def test_pipeline_rounding_option(tmp_path, capsys):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    from pxby_edge import cli
    from pxby_edge.manifest import read_manifest
    from training.checkpoint import save_checkpoint

    ckpt = save_checkpoint(_tiny_model(2), tmp_path / "ckpt")
    npz = tmp_path / "calib.npz"
    np.savez(npz, input_ids=np.stack(_streams(2, 150, seed=5)))
    reports = {}
    for rounding in ("gptq", "nearest"):
        out = tmp_path / f"{rounding}.tflite"
        rc = cli.main(["quantize", str(ckpt), "-o", str(out), "--rounding", rounding, "--calib", str(npz),
                       "--eval-steps", "64", "--json"])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        reports[rounding] = json.loads(captured.out)
        m = read_manifest(out)
        assert m.recipe == "dynamic" and m.calibration["rounding"]["method"] == rounding
        assert m.fidelity["rounding"] == rounding
    assert reports["gptq"]["calibrate_seconds"] >= 0 and reports["gptq"]["rounding_seconds"] > 0
    assert reports["gptq"]["quant_bytes"] == reports["nearest"]["quant_bytes"]
    # The float reference is the same model both ways.
    assert reports["gptq"]["new_token_accuracy_float"] == reports["nearest"]["new_token_accuracy_float"]
