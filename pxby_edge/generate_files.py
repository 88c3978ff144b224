"""Generation into a folder, whole or not at all: what ``pxby-edge generate`` does.

    python -c "from pxby_edge.generate_files import generate_files; from pxby_edge.generate import GenerationRequest; print(generate_files(GenerationRequest(max_tokens=300), out_dir='/tmp/g', overwrite=True))"

The folder is checked before the model is even opened (a run must not fail only after it
generated everything), the set is written into a hidden sibling folder and moved into place at the
end (``media.OutputSet``), so a run killed at any moment leaves the folder as it was.
"""

from __future__ import annotations

from typing import Callable, Optional

from pxby_edge import events as ev
from pxby_edge.generate import (
    OUTPUT_NAMES,
    GenerationRequest,
    audio_rate_of,
    default_model_path,
    run_generation,
)
from pxby_edge.media import OutputSet

# The events that carry one token each (a row end stands for its 1 or 2), for counting progress.
_TOKEN_EVENTS = (ev.TextChar, ev.Pixel, ev.RowEnd, ev.AudioSample)


def output_names(batch: int) -> list[str]:
    """The files one generation writes: OUTPUT_NAMES, once per lane (``lane{k}_`` before each) when batched."""
    if batch == 1:
        return list(OUTPUT_NAMES)
    return [f"lane{k}_{name}" for k in range(batch) for name in OUTPUT_NAMES]


def expected_tokens(request: GenerationRequest, audio_rate: int) -> int:
    """How many tokens a lane's stream should hold, prompt included, for a progress bar's total.

    The plan's limits where the user set them; where the model decides, the token budget bounds it."""
    budget = int(request.max_tokens)
    plan = request.stream_plan()
    audio = request.audio_samples
    if audio is None and request.audio_seconds is not None:
        audio = max(1, round(request.audio_seconds * audio_rate))
    text = len(request.prompt) if request.prompt is not None and not request.complete_text else plan.text_chars
    sizes = {
        "text": (text or budget) + 1,
        "image": None if None in (plan.frames, plan.width, plan.height) else plan.frames * plan.height * (plan.width + 1),
        "audio": None if audio is None else 2 * (audio + 1),
    }
    total = 0
    for modality in plan.modalities:
        if sizes[modality] is None:
            return budget
        total += sizes[modality]
    return min(total, budget)


class _ProgressBar:
    """An event sink that counts tokens into a tqdm bar with a total (so it shows an ETA)."""

    def __init__(self, total: int, desc: str, then: Optional[Callable] = None):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="tok", desc=desc, leave=False, mininterval=0.25)
        self.then = then
        self.count = self.shown = 0

    def __call__(self, event) -> None:
        if isinstance(event, _TOKEN_EVENTS) and event.stream == 0:
            self.count += 1
            if self.count - self.shown >= 256:
                self.bar.update(self.count - self.shown)
                self.shown = self.count
        if self.then is not None:
            self.then(event)

    def close(self) -> None:
        self.bar.close()


def generation_sink(request: GenerationRequest, model, *, progress: bool, desc: str, on_event=None):
    """(the event sink run_generation should call, a closer): ``on_event`` behind a progress bar when asked."""
    if not progress:
        return on_event, lambda: None
    from pxby_edge.manifest import read_manifest

    bar = _ProgressBar(expected_tokens(request, audio_rate_of(read_manifest(model))), desc, on_event)
    return bar, bar.close


def generate_files(
    request: GenerationRequest,
    model=None,
    *,
    out_dir,
    backend: str = "auto",
    threads: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """``run_generation`` into ``out_dir``: every output of the run, or nothing new. Returns its summary."""
    model = model if model is not None else default_model_path()
    with OutputSet(out_dir, output_names(request.batch), overwrite) as out:
        sink, close = generation_sink(request, model, progress=progress, desc="generating")
        try:
            summary = run_generation(request, model, backend=backend, threads=threads, out_dir=out.folder, on_event=sink)
        finally:
            close()
        out.commit()
    summary["outputs"] = [out.final(p) for p in summary["outputs"]]
    return summary
