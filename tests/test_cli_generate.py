"""`pxby-edge generate` on the bundled model: prompt sources, the progress bar's total, the output folder."""

from __future__ import annotations

import io
import json

import pytest

from pxby_edge.backends.null import NullBackend
from pxby_edge.cli import main
from pxby_edge.generate import GenerationRequest, Generator, audio_rate_of, default_model_path, run_generation
from pxby_edge.manifest import read_manifest

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

SHORT = ["--closed-prompt", "--frames", "1", "--width", "6", "--height", "4", "--audio-seconds", "0.01"]


@pytest.fixture(scope="module")
def rate():
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install pxby-edge[pi])")
    return audio_rate_of(read_manifest(default_model_path()))


@pytest.mark.usefixtures("rate")
@pytest.mark.parametrize("source", ["stdin", "file"])
def test_prompt_from_stdin_or_a_file(source, tmp_path, monkeypatch, capsys):
    prompt = "a red fire creature. it is red."
    if source == "stdin":
        monkeypatch.setattr("sys.stdin", io.StringIO(prompt + "\n"))
        args = ["--prompt", "-"]
    else:
        (tmp_path / "p.txt").write_text(prompt + "\n", encoding="utf-8")
        args = ["--prompt-file", str(tmp_path / "p.txt")]
    code = main(["generate", *args, *SHORT, "--out", str(tmp_path / "o"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (tmp_path / "o" / "text.txt").read_text() == prompt  # a closed prompt is the whole text
    assert json.loads(out)["outputs"][0] == str(tmp_path / "o" / "text.txt")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(frames=1, width=8, height=8, audio_seconds=0.02, seed=0),
        dict(frames=2, width=5, height=3, audio_seconds=0.01, seed=3),
        dict(frames=1, width=4, height=4, audio_seconds=0.01, seed=1, modalities=("text", "image")),
    ],
)
def test_progress_total_is_the_planned_length(kwargs, rate):
    run = run_generation(GenerationRequest(prompt="a red creature", complete_text=False, **kwargs))
    expected = run.generator.expected_tokens()
    summary = run.complete()
    assert summary["stop_reason"] == "plan"
    assert expected == summary["tokens"] + summary["prompt_tokens"]


def test_progress_total_without_a_length_is_the_budget():
    def total(request):
        return Generator(NullBackend(), request).expected_tokens()

    assert total(GenerationRequest(max_tokens=1234)) == 1234  # the model decides the sprite's size
    assert total(GenerationRequest(max_tokens=50, frames=1, width=8, height=8)) == 50


def test_the_progress_bar_counts_the_run(capsys):
    """``GenerationRun.events(progress=True)`` draws its bar on stderr and ends it at the steps it ran."""
    from pxby_edge.generate import GenerationRun

    run = GenerationRun(Generator(NullBackend(), GenerationRequest(max_tokens=600)), "null")
    events = list(run.events(progress=True, desc="testing"))
    err = capsys.readouterr().err
    assert events and "testing" in err and "tok" in err
    assert run.summary()["tokens"] == len(run.generator.step_ns)


def test_tokenize_takes_out_like_the_other_commands(tmp_path, capsys):
    for flag in ("--out", "-o", "--output"):
        target = tmp_path / f"t{flag.strip('-')}.npz"
        assert main(["tokenize", "--text", "hi", flag, str(target)]) == 0, capsys.readouterr().err
        assert target.is_file()
