"""Lines a user did not ask for stay off the terminal (issue 22 item 9): libraries' notices a user cannot act on.

    .venv/bin/python -m pytest tests/test_stray_lines.py

The progress bars of train and quantize (drawn only on a terminal) are checked in their own tests
(test_training_train.py, test_quantize_pipeline.py); `ports` and `--port` in test_ports.py.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_pyboy_starts_without_the_sdl2_notice():
    pytest.importorskip("pyboy")
    code = "from firmware_bridge.gameboy.pyboy_link import PyBoyPort; PyBoyPort(sound=False).pyboy.stop(save=False)"
    # pysdl2-dll sets PYSDL2_DLL_PATH when imported, and announces itself only when it was unset before
    env = {k: v for k, v in os.environ.items() if k != "PYSDL2_DLL_PATH"}
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_bench_int8_row_without_onnxruntime_preprocessing_advice(models, tmp_path, caplog):
    pytest.importorskip("onnxruntime.quantization")
    from pxby_edge.bench import onnx_int8_model

    logging.getLogger().setLevel(logging.WARNING)
    with caplog.at_level(logging.WARNING):
        made = onnx_int8_model(models.float, tmp_path)
    assert made is not None and made.with_suffix(".onnx").is_file()
    assert [r.getMessage() for r in caplog.records if "pre-processing" in r.getMessage()] == []
