"""``train --qat int4``: the rounding in the loop, the checkpoint on the int4 grid, and the int4 file that
then computes what the checkpoint computes (training/qat.py, quantize/recipes.py's row blocks)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from training.qat import FakeQuantModel, fake_quant, matrix_names, on_grid, rounded, row_scales, snapped  # noqa: E402


def _bf16_exact(x: torch.Tensor) -> bool:
    return bool(torch.equal(x, x.to(torch.bfloat16).float()))


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 40), seed=st.integers(0, 2**31 - 1),
       magnitude=st.sampled_from([1e-6, 1e-3, 0.05, 1.0, 300.0]))
def test_rounded_rows_lie_on_a_bfloat16_grid_with_their_largest_at_7(rows, cols, seed, magnitude):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * magnitude
    r = rounded(w, 4)
    s = row_scales(w, 4)
    assert _bf16_exact(s) and (s > 0).all()
    q = r / s
    assert torch.equal(q, torch.round(q)) and q.abs().max() <= 7
    nonzero = w.abs().amax(dim=1) > 0
    # The row's largest weight lands on ±7·s: a quantizer recomputing max|row| / 7 finds s again.
    assert torch.equal(r.abs().amax(dim=1)[nonzero], (7 * s[:, 0])[nonzero])
    assert torch.equal(row_scales(r, 4), s)
    assert torch.equal(rounded(r, 4), r)  # idempotent: a snapped checkpoint stays put


def test_fake_quant_rounds_forward_and_passes_the_gradient_straight_through():
    w = torch.randn(4, 9, requires_grad=True)
    out = fake_quant(w, 4)
    assert torch.equal(out.detach(), rounded(w.detach(), 4))
    (out * torch.arange(36.0).reshape(4, 9)).sum().backward()
    assert torch.equal(w.grad, torch.arange(36.0).reshape(4, 9))


def test_fake_quant_model_runs_the_rounded_matrices_and_snapped_is_that_model():
    from training.config import ModelConfig
    from training.model import PixelBytesLSTM

    torch.manual_seed(0)
    model = PixelBytesLSTM(ModelConfig(embed_size=24, hidden_size=32, num_layers=2))
    assert matrix_names(model) == ["sequence_model.weight_ih_l0", "sequence_model.weight_hh_l0",
                                   "sequence_model.weight_ih_l1", "sequence_model.weight_hh_l1", "fc.weight"]
    x = torch.randint(0, 151, (2, 7, 6))
    wrapped = FakeQuantModel(model, 4)
    hard = snapped(model, 4)
    assert not on_grid(model, 4) and on_grid(hard, 4)
    torch.testing.assert_close(wrapped(x), hard(x), rtol=0, atol=1e-6)
    assert not torch.allclose(wrapped(x), model(x), atol=1e-3)  # the rounding is really in the loop
    # The embedding and biases are not rounded.
    assert torch.equal(hard.embedding.weight, model.embedding.weight)
    assert torch.equal(hard.fc.bias, model.fc.bias)


def test_qat_bits_other_than_0_or_4_are_refused():
    from training.config import TrainConfig
    from training.errors import ConfigError

    assert TrainConfig(qat_bits=4).qat_bits == 4
    for bad in (3, 8, -1, True):
        with pytest.raises(ConfigError, match="qat_bits"):
            TrainConfig(qat_bits=bad)


def test_init_takes_a_checkpoint_whose_embedding_was_rounded_down_to_six_slots(tmp_path):
    """The upstream preset asks for E=128 and its checkpoints record 126 (6 × 21): --init of one is the same model."""
    from training.checkpoint import save_checkpoint
    from training.config import ModelConfig
    from training.model import PixelBytesLSTM
    from training.train import _initial_model

    asked = ModelConfig(embed_size=26, hidden_size=8, num_layers=1)
    save_checkpoint(PixelBytesLSTM(asked), tmp_path / "ck")
    _, model = _initial_model(tmp_path / "ck", asked)
    assert model.config.embed_size == 24


def test_cli_refuses_an_unknown_qat_choice(run_cli, tmp_path):
    code, _, err = run_cli("train", "--data", str(tmp_path), "-o", str(tmp_path / "o"), "--qat", "int3")
    assert code == 2 and "int3" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory):
    """A tiny model trained 40 steps with --qat int4 from a float init, and its int4 file."""
    from training.config import load_preset
    from training.synth import write_dataset
    from training.train import train

    root = tmp_path_factory.mktemp("qat")
    write_dataset(root / "data", 24, seed=0)
    model_cfg, cfg = load_preset("tiny")
    from dataclasses import replace

    cfg = replace(cfg, max_steps=40, eval_every=20, qat_bits=4, num_threads=1, epochs=1)
    result = train(root / "data", root / "ckpt", model_cfg, cfg, device="cpu", progress=False, log=lambda *a: None)
    from quantize.pipeline import quantize_checkpoint

    # No recipe named: a checkpoint trained for int4 gets int4.
    report = quantize_checkpoint(root / "ckpt", root / "int4.tflite", eval_steps=512, force=True)
    return root, result, report


def test_a_qat_checkpoint_is_on_the_grid_and_says_so(qat_run):
    import json

    from training.checkpoint import load_checkpoint

    root, result, _ = qat_run
    assert result["step"] == 40
    assert on_grid(load_checkpoint(root / "ckpt"), 4)
    assert json.loads((root / "ckpt" / "config.json").read_text())["pxby"]["qat"] == "int4"
    # last/ keeps the float weights underneath (what --resume continues from), not the rounded ones.
    from safetensors.numpy import load_file

    last = load_file(root / "ckpt" / "last" / "model.safetensors")
    assert any(not np.array_equal(v, np.asarray(rounded(torch.as_tensor(v), 4))) for k, v in last.items()
               if k.endswith(("weight_hh_l0", "weight_ih_l1", "fc.weight")))


def test_the_int4_file_of_a_qat_checkpoint_keeps_its_predictions(qat_run):
    """GPTQ finds every row already on its grid, so the file's integers are the checkpoint's exactly
    (the pipeline's check_weights) and only the run-time int8 activations differ."""
    from pxby_edge.manifest import read_manifest
    from pxby_edge.model_info import describe_model
    from pxby_edge.tflite_file import TFLiteFile
    from training.checkpoint import load_checkpoint

    root, _, report = qat_run
    assert report["recipe"] == "int4"
    assert report["new_token_top1_agreement"] >= 0.98
    assert report["mean_kl"] < 1e-3
    f = TFLiteFile.open(root / "int4.tflite")
    assert read_manifest(f).calibration["rounding"]["checkpoint_trained_for"] == "int4"
    model = load_checkpoint(root / "ckpt")
    params = dict(model.named_parameters())
    found = 0
    for t in f.subgraphs[0].tensors:
        if t.dtype != "int4":
            continue
        real = f.dequantized(t)
        found += sum(np.array_equal(real, params[n].detach().numpy()) for n in matrix_names(model))
    assert found == len(matrix_names(model))  # every matrix, bit for bit
    assert "checkpoint trained for int4" in describe_model(root / "int4.tflite")


@pytest.mark.parametrize("value, expected", [("int4", "int4"), ("none", None), ("int8", None), ("\x1b[2J", None),
                                             (4, None), (["int4"], None), (None, None)])
def test_only_what_train_qat_writes_picks_a_recipe(value, expected):
    from types import SimpleNamespace

    from quantize.pipeline import default_recipe, trained_recipe

    source = SimpleNamespace(pxby={} if value is None else {"qat": value})
    assert trained_recipe(source) == expected
    assert default_recipe(source) == (expected or "dynamic")
