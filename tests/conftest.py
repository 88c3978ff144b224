"""Shared test fixtures: where the upstream reference files are, the project's own test models, ``run_cli``
(a command in this process) and ``running_simulator`` (a handheld on a pty); under CI=true, the skip policy
of tests/ci_skips.py.

Only tests that compare against the upstream reference use ``upstream_dir`` (they skip, saying why, when
../shared is absent). Every other test builds what it needs with the project's own code: ``models`` is a
small checkpoint saved by ``training`` and the model files ``quantize`` makes from it, built once and
cached under .cache/ by a key of the sources that shape them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from ci_skips import pytest_configure, pytest_sessionfinish, pytest_terminal_summary  # noqa: F401 (hooks)


def pytest_sessionstart(session):
    """Run one mGBA frame before any test imports torch.

    The mgba wheel's bindings call back into Python (``extern "Python"``, a frame-ended callback), and cffi
    sets that up on the first such call. When torch was imported first in the same process, that first call
    spun forever inside cffi's start-up (``_cffi_carefully_make_gil``): the whole suite hung in its first
    mGBA test after the torch tests, while each file alone passed. Making the first call here, before any
    test module loads torch, avoids it. The runtime never imports torch, so only a test process meets this.
    """
    try:
        import mgba.core
        import mgba.log
    except ImportError:
        return  # no mGBA here: its tests skip (or fail under CI) on their own
    from firmware_bridge.gameboy import ROM_PATH

    mgba.log.silence()
    core = mgba.core.load_path(str(ROM_PATH))
    if core is not None:
        core.reset()
        core.run_frame()

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT.parent / "shared" / "fixtures" / "upstream"
# The test checkpoint: upstream's tiny shape (E=24, H=32, L=2), seeded random weights, the default slicing.
TEST_MODEL = {"embed_size": 24, "hidden_size": 32, "num_layers": 2}
TEST_SLICING = {"image": 1, "audio": 4}


@pytest.fixture(scope="session")
def upstream_dir() -> Path:
    """The upstream fixture folder (../shared/fixtures/upstream); skips when it is absent."""
    if not (UPSTREAM / "vocab.json").is_file():
        pytest.skip(f"upstream fixtures not found at {UPSTREAM} (the shared/ folder beside the checkout)")
    return UPSTREAM


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*args)`` -> (exit status, stdout, stderr) of ``pxby-edge ARGS``, run in this process."""
    from pxby_edge.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def running_simulator():
    """``running_simulator(transport=None, **kw)`` -> a started ``Simulator`` (on a new pty unless ``transport``);
    stopped, and its transport closed, once, when the test ends."""
    from firmware_bridge.simulator import PtyTransport, Simulator

    started = []

    def start(transport=None, **kw):
        sim = Simulator(transport if transport is not None else PtyTransport(), **kw)
        started.append(sim)
        return sim.start()

    yield start
    for sim in started:
        sim.stop()
        sim.transport.close()


BUILD = """
import json, sys
from pathlib import Path

import numpy as np
import torch

from quantize.calibrate import synthetic_streams
from quantize.pipeline import quantize_checkpoint
from training.checkpoint import KEY_SLICING, save_checkpoint
from training.config import ModelConfig
from training.model import PixelBytesLSTM

out, model, slicing = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
torch.manual_seed(0)
ckpt = save_checkpoint(PixelBytesLSTM(ModelConfig(**model)), out / "ckpt", {KEY_SLICING: slicing})
stages = []
quantize_checkpoint(ckpt, out / "int8.tflite", recipe="int8", float_out=out / "float.tflite",
                    onnx_out=out / "float.onnx", report_out=out / "report.json", calib_steps=16, eval_steps=256,
                    force=True, progress=stages.append)
(out / "stages.json").write_text(json.dumps(stages))
quantize_checkpoint(ckpt, out / "int8_b2.tflite", recipe="int8", batch=2, float_out=out / "float_b2.tflite",
                    onnx_out=out / "float_b2.onnx", calib_steps=8, eval_steps=16, force=True)
quantize_checkpoint(ckpt, out / "int8_untied.tflite", recipe="int8", tie_state=False, calib_steps=16,
                    eval_steps=16, force=True)
quantize_checkpoint(ckpt, out / "int4.tflite", recipe="int4", eval_steps=16, force=True)
# Teacher-forced contexts (2 items x 40 positions, text into sprite) that no calibration stream holds.
streams = synthetic_streams(2, slicing, seed=7)
np.savez(out / "contexts.npz", input_ids=np.stack([s[40:80] for s in streams]))
"""

# What shapes the files: the exporter and pipeline, the checkpoint writer and model, the synthetic data and
# tokenizer (calibration and contexts), the manifest, and this file.
_KEY_SOURCES = ("quantize", "training/model.py", "training/checkpoint.py", "training/config.py", "training/synth.py",
                "pxby_edge/manifest.py", "pxby_edge/tokenizer.py", "pxby_edge/vocab.py", "tests/conftest.py")


def _cache_key() -> str:
    import ai_edge_litert
    import torch

    h = hashlib.sha256()
    for rel in _KEY_SOURCES:
        path = ROOT / rel
        for p in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(p.relative_to(ROOT).as_posix().encode())
            h.update(p.read_bytes() if p.is_file() else b"")
    h.update(f"{torch.__version__} {getattr(ai_edge_litert, '__version__', '')}".encode())
    return h.hexdigest()[:16]


def _build(out: Path) -> None:
    """In a child process: the converters print, warn and leave files open, none of which this
    process (warnings are errors here) should inherit."""
    proc = subprocess.run([sys.executable, "-c", BUILD, str(out), json.dumps(TEST_MODEL), json.dumps(TEST_SLICING)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"building the test models failed:\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> SimpleNamespace:
    """A checkpoint saved by ``training`` and what ``quantize`` makes of it: int8 + float + ONNX + report at
    batch 1, int8 + float + ONNX at batch 2, an int8 file with untied state grids, an int4 file; contexts to
    feed them."""
    pytest.importorskip("torch", reason="building the test models needs torch (pip install -e '.[quantize]')")
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install -e '.[pi]')")
    # Our own cache folder (gitignored), not pytest's: CI runs with the cache plugin off.
    cached = ROOT / ".cache" / "pxby-test-models" / _cache_key()
    if not (cached / "done").is_file():
        pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install -e '.[quantize]')")
        pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is not installed (pip install -e '.[quantize]')")
        build = tmp_path_factory.mktemp("build")
        _build(build)
        (build / "done").write_text("ok")
        cached.parent.mkdir(parents=True, exist_ok=True)
        if cached.exists():
            shutil.rmtree(cached)
        shutil.copytree(build, cached)
    out = tmp_path_factory.mktemp("models")
    shutil.copytree(cached, out, dirs_exist_ok=True)  # a copy per session: a test cannot spoil the cache
    # A .tflite beside a .onnx of the same stem: auto/onnx find each other by name.
    return SimpleNamespace(root=out, ckpt=out / "ckpt", io=out / "contexts.npz", report=out / "report.json",
                           stages=json.loads((out / "stages.json").read_text()),
                           float=out / "float.tflite", int8=out / "int8.tflite", onnx=out / "float.onnx",
                           float_b2=out / "float_b2.tflite", int8_b2=out / "int8_b2.tflite",
                           onnx_b2=out / "float_b2.onnx", int8_untied=out / "int8_untied.tflite",
                           int4=out / "int4.tflite")


def read_pty(fd: int) -> bytes:
    """Everything a child writes to its end of a pty, until it closes it (read while the child runs: a
    full pty must not stall it)."""
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end of the pty
            return out
        if not chunk:
            return out
        out += chunk
