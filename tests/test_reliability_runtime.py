"""The runtime side of the reliability review (issue 21): a handheld's memory stays flat, ``--force`` replaces only
what the command made, no planted link is followed, ``bench --plot`` checks its path before measuring.

    .venv/bin/python -m pytest tests/test_reliability_runtime.py
    .venv/bin/python -m pytest -m slow tests/test_reliability_runtime.py -k soak   # 10 minutes (PXBY_SOAK_S)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import simulator
from firmware_bridge.simulator import Capture

CLI = [sys.executable, "-c", "import sys; from pxby_edge import cli; sys.exit(cli.main())"]
ROOT = Path(__file__).resolve().parent.parent


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _one_error_line(run) -> str:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


# -- 1. memory --------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_capture", [False, True])
def test_a_capture_keeps_a_bounded_past(tmp_path, with_capture, monkeypatch):
    monkeypatch.setattr(simulator, "GIF_FRAMES", 50)
    monkeypatch.setattr(simulator, "KEPT_AUDIO_SAMPLES", 1000)
    monkeypatch.setattr(simulator, "RECENT_AUDIO_SAMPLES", 1000)
    cap = Capture(tmp_path / "cap" if with_capture else None)
    cap._png_at = float("inf")  # no periodic screen.png: only the bookkeeping is under test
    rng = np.random.default_rng(0)
    for i in range(400):
        cap.on_commit(rng.integers(0, 4, (144, 160), dtype=np.uint8), i)
        cap.on_play(i * 64, np.full(64, i % 256, dtype=np.uint8))
    assert cap.commits == 400 and cap.played == 400 * 64 and cap.gaps == 0
    assert len(cap.frames) == (50 if with_capture else simulator.RECENT_FRAMES)
    assert 1000 - 64 < sum(len(s) for _, s in cap.chunks) <= 1000  # the newest samples, whole chunks
    assert cap.chunks[-1][0] == 399 * 64
    if with_capture:
        from PIL import Image

        cap.save()
        with Image.open(tmp_path / "cap" / "screen.gif") as gif:
            assert gif.n_frames == 50  # the last 50 commits
        assert np.array_equal(np.asarray(Image.open(tmp_path / "cap" / "screen.png").convert("RGB")),
                              cap.palette[cap.screen])


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


@pytest.mark.slow
@pytest.mark.timeout(int(os.environ.get("PXBY_SOAK_S", "600")) + 240)
def test_soak_the_handheld_keeps_its_memory_flat(tmp_path):
    """`stream --loop` into `handheld --pty` for PXBY_SOAK_S seconds (10 minutes): RSS grows by under 10 MB."""
    seconds = int(os.environ.get("PXBY_SOAK_S", "600"))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               XDG_RUNTIME_DIR=str(tmp_path))
    hh = subprocess.Popen([*CLI, "handheld", "--pty", "--seconds", str(seconds + 120)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
    stream = None
    try:
        port = hh.stdout.readline().strip().removeprefix("port: ")
        stream = subprocess.Popen([*CLI, "stream", "--port", port, "--loop", "--pause", "0.5", "--frames", "3",
                                   "--width", "24", "--height", "24", "--audio-seconds", "0.5", "--backend", "numpy"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(60)  # warmed up: imports done, the first rounds drawn, the allocator's pools grown
        start = _rss_kb(hh.pid)
        samples = []
        deadline = time.monotonic() + seconds - 60
        while time.monotonic() < deadline:
            time.sleep(10)
            assert stream.poll() is None, stream.stderr.read()
            samples.append(_rss_kb(hh.pid))
        growth_mb = (max(samples) - start) / 1024
        print(f"handheld RSS {start / 1024:.1f} MB after warm-up, max {max(samples) / 1024:.1f} MB "
              f"over {seconds} s: +{growth_mb:.1f} MB; every 10 s (MB): {[round(s / 1024, 1) for s in samples]}")
        assert growth_mb < 10, samples
    finally:
        for proc in (stream, hh):
            if proc is not None:
                proc.terminate()
                proc.communicate(timeout=30)  # waits, and closes the pipes


# -- 2. --force replaces only what the command made -------------------------------------------------


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory) -> Path:
    ds = tmp_path_factory.mktemp("synth") / "ds"
    run = _cli("dataset", "synth", "--n", "3", "--out", str(ds))
    assert run.returncode == 0, run.stderr
    return ds


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["current folder", "parent folder", "foreign file", "foreign item", "not a dataset",
                                  "a link"])
def test_synth_force_never_deletes_what_it_did_not_make(tmp_path, synth_dataset, case):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(synth_dataset, ds)
    (ds / "mine.txt").write_text("the user's own notes")
    cwd, out, expect = ds, ".", "is the current folder or one of its parents"
    if case == "parent folder":
        (ds / "sub").mkdir()
        cwd, out = ds / "sub", ".."
    elif case == "foreign file":
        cwd, out, expect = tmp_path, "ds", r"holds files this command did not write \(mine.txt\)"
    elif case == "foreign item":
        (ds / "mine.txt").unlink()
        (ds / "images" / "holiday.gif").write_bytes(b"GIF89a")
        cwd, out, expect = tmp_path, "ds", r"holds files this command did not write \(images/holiday.gif\)"
    elif case == "not a dataset":
        (ds / "synth.json").unlink()
        cwd, out, expect = tmp_path, "ds", "holds files this command did not write"
    elif case == "a link":
        (tmp_path / "link").symlink_to(ds)
        cwd, out, expect = tmp_path, "link", "not a folder this command wrote"
    before = _snapshot(tmp_path)
    run = _cli("dataset", "synth", "--n", "2", "--out", out, "--force", cwd=cwd)
    assert re.search(expect, _one_error_line(run)), run.stderr
    assert _snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp folder left


def test_synth_force_replaces_its_own_dataset_whole(tmp_path, synth_dataset):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(synth_dataset, ds)
    run = _cli("dataset", "synth", "--n", "5", "--out", "ds", "--force", "--seed", "3", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (ds / "text").iterdir()) == [f"{i:04d}.txt" for i in range(5)]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # the old copy moved aside and deleted


# -- 4. no planted link is followed -----------------------------------------------------------------


def _plant(folder: Path, names, victim: Path) -> None:
    for name in names:
        (folder / name).symlink_to(victim)


def test_the_capture_folder_follows_no_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"root-owned file")
    cap_dir = tmp_path / "cap"
    cap_dir.mkdir()
    # the names the capture used to write first, and the final names themselves
    _plant(cap_dir, ["screen.tmp.png", "screen.tmp.gif", "audio.tmp.wav", "screen.png", "screen.gif", "audio.wav"],
           victim)
    cap = Capture(cap_dir)
    cap.on_commit(np.zeros((144, 160), dtype=np.uint8), 0)
    cap.on_play(0, np.full(100, 128, dtype=np.uint8))
    written = cap.save()
    assert victim.read_bytes() == b"root-owned file"
    for name in ("screen.png", "screen.gif", "audio.wav"):
        assert str(cap_dir / name) in written and not (cap_dir / name).is_symlink()


def test_bench_plot_follows_no_planted_link(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib (the [train] extra)")
    from pxby_edge.bench import plot_rows

    victim = tmp_path / "victim"
    victim.write_bytes(b"root-owned file")
    _plant(tmp_path, [f".b.png.{os.getpid()}.tmp.png", "b.tmp.png"], victim)
    rows = [{"name": "numpy", "tokens_per_s": 1000.0, "batch": 1}]
    plot_rows(rows, tmp_path / "b.png")
    assert victim.read_bytes() == b"root-owned file"
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- 9. bench --plot checks its path first; the ONNX int8 rows write nothing beside the model -----------


@pytest.mark.parametrize("plot, expect", [("plotfile", "name an image file ending in .png, .svg, .pdf"),
                                          ("folder.png/", "is a directory"),
                                          ("exists.png", "already exists; pass --force")])
def test_bench_plot_is_refused_before_measuring(tmp_path, plot, expect):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "exists.png").write_bytes(b"mine")
    t0 = time.monotonic()
    run = _cli("bench", "--backend", "numpy", "--tokens", "50", "--plot", plot.rstrip("/"), cwd=tmp_path)
    assert expect in _one_error_line(run)
    assert "measuring" not in run.stderr and time.monotonic() - t0 < 60  # a refusal, not a measurement
    assert (tmp_path / "exists.png").read_bytes() == b"mine"


def test_onnx_int8_rows_write_nothing_beside_the_model(tmp_path):
    pytest.importorskip("onnxruntime.quantization", reason="the ONNX int8 rows need onnxruntime and onnx")
    import shutil

    from pxby_edge.backends.onnx import onnx_path_for
    from pxby_edge.bench import onnx_int8_model
    from pxby_edge.generate import default_model_path

    model = default_model_path()
    install = tmp_path / "install"  # stands in for a package folder this user cannot write
    install.mkdir()
    shutil.copy(model, install / model.name)
    shutil.copy(onnx_path_for(model), install / onnx_path_for(model).name)
    before = sorted(p.name for p in install.iterdir())
    work = tmp_path / "work"
    out = onnx_int8_model(install / model.name, work)
    assert out is not None and out.is_file() and out.with_suffix(".onnx").is_file()
    assert sorted(p.name for p in install.iterdir()) == before


@pytest.mark.parametrize("command", ["generate", "detokenize"])
def test_an_output_folder_follows_no_planted_link(tmp_path, run_cli, command):
    """The output sets (generate, detokenize, demo) build in a fresh hidden folder and rename: a link planted under
    an output's final name is replaced (with --force), never written through."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"root-owned file")
    out = tmp_path / "out"
    out.mkdir()
    names = ["text.txt", "sprite.png", "sprite.gif", "audio.wav", "tokens.npz", "summary.json"]
    _plant(out, names, victim)
    if command == "generate":
        code, _, err = run_cli("generate", "--seed", "3", "--backend", "numpy", "--out", out, "--force")
    else:
        code, _, err = run_cli("generate", "--seed", "3", "--backend", "numpy", "--out", tmp_path / "gen")
        assert code == 0, err
        code, _, err = run_cli("detokenize", tmp_path / "gen" / "tokens.npz", "--out", out, "--force")
    assert code == 0, err
    assert victim.read_bytes() == b"root-owned file"
    written = [p for p in out.iterdir() if not p.is_symlink()]
    assert written and all(p.is_file() for p in written)
