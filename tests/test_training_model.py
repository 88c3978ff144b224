"""The PyTorch model and checkpoint IO: upstream parity, round trips, streaming, configs."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from training.checkpoint import config_json, load_checkpoint, read_pxby, save_checkpoint  # noqa: E402
from training.config import ModelConfig, TrainConfig, load_preset, preset_names  # noqa: E402
from training.errors import CheckpointError, ConfigError  # noqa: E402
from training.model import PixelBytesLSTM, ensure_streamable  # noqa: E402

TINY = ModelConfig(embed_size=24, hidden_size=32, num_layers=2)


@pytest.mark.parametrize("folder", ["tiny_autoregressive", "tiny_autoregressive_bin"])
def test_upstream_checkpoint_matches_reference_logits(upstream_dir, folder):
    io = np.load(upstream_dir / "tiny_autoregressive_io.npz")
    model = load_checkpoint(upstream_dir / folder)
    assert not model.training
    with torch.no_grad():
        logits = model(torch.as_tensor(io["input_ids"]).long())  # (2, 40, 6, 151)
    assert logits.shape == io["logits"].shape
    np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-5, rtol=0)


def test_saved_checkpoint_loads_back_identically(tmp_path):
    torch.manual_seed(0)
    model = PixelBytesLSTM(TINY).eval()
    x = torch.randint(0, 151, (2, 17, 6))
    pxby = {"data_slicing": {"image": 1, "audio": 4}}
    save_checkpoint(model, tmp_path / "ck", pxby)
    back = load_checkpoint(tmp_path / "ck")
    with torch.no_grad():
        assert torch.equal(model(x), back(x))
    assert read_pxby(tmp_path / "ck")["data_slicing"] == {"image": 1, "audio": 4}
    assert sorted(back.state_dict()) == sorted(model.state_dict())


def test_saved_config_has_upstream_keys(tmp_path, upstream_dir):
    """What we write carries every key upstream's config.json has (so from_pretrained can read it)."""
    model = PixelBytesLSTM(TINY)
    ours = config_json(model)
    ref = json.loads((upstream_dir / "tiny_autoregressive" / "config.json").read_text())
    assert set(ref) - {"transformers_version"} <= set(ours)
    for key in ("embed_size", "hidden_size", "num_layers", "objective", "pxby_dim", "pxby_emb", "vocab_size", "dtype"):
        assert ours[key] == ref[key], key
    ref_keys = set(load_checkpoint(upstream_dir / "tiny_autoregressive").state_dict())
    assert set(model.state_dict()) == ref_keys


@pytest.mark.parametrize("objective,shape", [("autoregressive", (3, 5, 6, 151)), ("predict", (3, 5, 151))])
def test_objectives_and_step_equal_forward(objective, shape):
    torch.manual_seed(1)
    model = PixelBytesLSTM(ModelConfig(embed_size=24, hidden_size=16, num_layers=2, objective=objective)).eval()
    x = torch.randint(0, 151, (3, 5, 6))
    with torch.no_grad():
        full = model(x)
        assert full.shape == shape
        state = None
        for t in range(5):
            logits, state = model.step(x[:, t], state)
            torch.testing.assert_close(logits, full[:, t], atol=1e-6, rtol=1e-5)


def test_padding_embedding_is_zero():
    model = PixelBytesLSTM(TINY)
    assert torch.count_nonzero(model.embedding.weight[0]) == 0


@pytest.mark.parametrize("kw,word", [({"bidirection": True}, "bidirectional"), ({"objective": "diffusion"}, "diffusion")])
def test_non_streamable_checkpoints_load_but_refuse_streaming(tmp_path, kw, word):
    model = PixelBytesLSTM(ModelConfig(embed_size=12, hidden_size=8, num_layers=1, **kw))
    save_checkpoint(model, tmp_path / "ck")
    back = load_checkpoint(tmp_path / "ck")  # inspection works
    assert back.config == model.config
    with pytest.raises(CheckpointError, match=word):
        ensure_streamable(back)
    with pytest.raises(CheckpointError, match=word):
        load_checkpoint(tmp_path / "ck", streamable=True)
    with pytest.raises(CheckpointError):
        back.step(torch.zeros(1, 6, dtype=torch.long))


def test_bidirectional_forward_shape():
    model = PixelBytesLSTM(ModelConfig(embed_size=12, hidden_size=8, num_layers=1, bidirection=True))
    assert model(torch.zeros(2, 4, 6, dtype=torch.long)).shape == (2, 4, 6, 151)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path / "empty")
    save_checkpoint(PixelBytesLSTM(TINY), tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["hidden_size"] = 40
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read the weights"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="neither"):
        load_checkpoint(tmp_path / "ck")


def test_config_refuses_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown model config keys"):
        ModelConfig.from_dict({"hiden_size": 3})
    with pytest.raises(ConfigError, match="unknown training config keys"):
        TrainConfig.from_dict({"learning_rate": 3})
    with pytest.raises(ConfigError, match="objective"):
        ModelConfig(objective="nope")
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"model": {}, "optim": {}}))
    with pytest.raises(ConfigError, match="top-level"):
        load_preset(bad)
    with pytest.raises(ConfigError, match="unknown preset"):
        load_preset("enormous")


def test_presets():
    assert {"small", "upstream", "tiny"} <= set(preset_names())
    small, _ = load_preset("small")
    n = PixelBytesLSTM(small).num_parameters()
    assert 300_000 <= n <= 500_000
    upstream, tcfg = load_preset("upstream")
    assert PixelBytesLSTM(upstream).num_parameters() == pytest.approx(3.88e6, rel=0.01)
    assert tcfg.pad_weight == pytest.approx(1 / 120)
