"""Stream tokens from a model file one step at a time and tell the caller what appears.

    pxby-edge generate --prompt "a blue fire creature" --seed 1 --out out/

The loop per step: the backend turns the (B, 6) contexts into logits; the sampler picks each
lane's next token among those the context builder and the plan allow; the builder records it and
makes the next context; events (text characters, pixels, row and frame ends, audio samples,
modality switches) go to the caller as they happen. State stays inside the backend, so a step
costs the same at token 10 and at token 10,000.

How an autoregressive model says a segment ended: it was trained to predict the *next context*.
Inside a segment, slot 5 of that context is the token just generated; after the last token of a
segment (a text's 2, an image's last 2, audio's closing separator) the next context is the new
segment's all-padding one, so slot 5 is 0. Sampling slot 5 therefore yields 0 exactly where the
model ends a segment, and 2 where a text goes on after a newline or an image goes on with
another frame. A "predict" model (one slot) gives the token itself; there the plan decides.
"""

from __future__ import annotations

import functools
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from pxby_edge import events as ev
from pxby_edge.constants import DEFAULT_PROMPT, UPSTREAM_AUDIO_RATE
from pxby_edge.context import ZERO_CONTEXT, ContextBuilder
from pxby_edge.errors import GenerationError
from pxby_edge.plan import (
    PlanTracker,
    StreamPlan,
    bounds_from_geometry,
    floors_from_geometry,
    short_of_floors,
)
from pxby_edge.sampling import Sampler, Temperature, sample_lanes
from pxby_edge.tokenizer import ActionPixelBytesTokenizer
from pxby_edge.vocab import PAD_ID, SEG_END_ID

if TYPE_CHECKING:
    from pxby_edge.backends.base import Stepper


@dataclass(frozen=True)
class GenerationRequest:
    """Everything one generation needs besides the backend. Limits of None leave it to the model.

    Frozen: what the model file resolves (the audio length from ``audio_seconds``, the audio rate) is
    the ``Generator``'s (``Generator.audio_samples``, ``Generator.audio_rate``), never written back here."""

    prompt: Optional[str] = DEFAULT_PROMPT
    image: Any = None  # a PIL image used as an image prefix (its segment is complete)
    modalities: Sequence[str] = ("text", "image", "audio")  # `--plan`: what to generate, in order
    complete_text: bool = True  # let the model finish the prompt's sentence before its 2
    max_tokens: int = 20000
    text_chars: Optional[int] = 160
    frames: Optional[int] = None
    width: Optional[int] = None
    height: Optional[int] = None
    audio_samples: Optional[int] = None
    audio_seconds: Optional[float] = None  # converted with the model's audio rate when samples is None
    temperature: Temperature = 0.8
    top_k: int = 0
    top_p: float = 1.0
    seed: Optional[int] = 0
    batch: int = 1
    bounded: bool = True  # bound what the request leaves open by the training data's geometry (if the file has it)

    def stream_plan(self, geometry: Optional[dict] = None, audio_samples: Optional[int] = None) -> StreamPlan:
        """The plan of this request; ``geometry`` (a manifest's) bounds the dimensions it leaves open;
        ``audio_samples`` is the audio length resolved with the model's rate (default: the request's own)."""
        return StreamPlan.parse(
            list(self.modalities),
            text_chars=self.text_chars,
            frames=self.frames,
            width=self.width,
            height=self.height,
            audio_samples=self.audio_samples if audio_samples is None else audio_samples,
            bounds=bounds_from_geometry(geometry) if geometry and self.bounded else (),
            floors=floors_from_geometry(geometry) if geometry else (),
            enforce_floors=self.bounded,
        )

    def audio_samples_at(self, rate: float) -> Optional[int]:
        """The audio length in samples at ``rate`` (the model's audio-token rate): ``audio_samples``, or
        ``audio_seconds`` converted; None when the request leaves it to the model."""
        if self.audio_samples is not None or self.audio_seconds is None:
            return self.audio_samples
        if not self.audio_seconds > 0:
            raise GenerationError(f"audio seconds must be > 0, got {self.audio_seconds}")
        return max(1, int(round(self.audio_seconds * rate)))


@dataclass
class Lane:
    """One stream of a batch: its builder, plan, sampler and what it produced."""

    builder: ContextBuilder
    tracker: PlanTracker
    sampler: Sampler
    tokens: list = field(default_factory=list)
    generated: int = 0
    done: bool = False


def tokenizer_for(manifest) -> ActionPixelBytesTokenizer:
    """The tokenizer a model file was trained with (vocabulary and slicing from its manifest)."""
    vocab = manifest.vocab
    return ActionPixelBytesTokenizer(
        BYTES=vocab.bytes_, PALETTE=vocab.palette, ACTION_STATE=vocab.action_states, data_slicing=dict(manifest.slicing)
    )


def prompt_tokens(tok: ActionPixelBytesTokenizer, request: GenerationRequest) -> list[tuple[int, Optional[bool]]]:
    """(token, segment_ends) pairs of the prompt, in stream order."""
    out: list[tuple[int, Optional[bool]]] = []
    if request.prompt is not None:
        ids = tok.process_text(request.prompt).reshape(-1).tolist()
        if request.complete_text:
            ids = ids[:-1]  # leave the text open: the model finishes it
        if request.prompt and not any(i not in (PAD_ID, SEG_END_ID) for i in ids[: max(1, len(ids))]):
            raise GenerationError(
                f"the prompt {request.prompt!r} has no character the vocabulary can encode (letters, digits, punctuation)"
            )
        last = len(ids) - 1
        # A 2 inside the prompt is a newline; only a closed prompt's final 2 ends the text.
        out += [(i, k == last and not request.complete_text) for k, i in enumerate(ids)]
    if request.image is not None:
        ids = tok.process_image(request.image).reshape(-1).tolist()
        out += [(i, k == len(ids) - 1) for k, i in enumerate(ids)]
    return out


class _TokenEvents:
    """Pushes a lane's token into its builder and returns the events it makes (the per-token hot path).

    Reads the builder's cursor before the push instead of building a ``Position``, and keeps the
    vocabulary's lookups as plain lists: at tens of thousands of tokens a second every attribute
    lookup shows.
    """

    def __init__(self, vocab):
        self.chars = [b.decode("latin-1") for b in vocab.bytes_]
        self.palette_offset = vocab.palette_offset
        self.action_offset = vocab.action_offset
        self.levels = [float(x) for x in vocab.action_states]

    def push(self, k: int, lane: Lane, token: int, ends: Optional[bool]) -> list:
        b = lane.builder
        mod, t, i, j = b.cursor[:4]
        b.push(token, ends)
        lane.tokens.append(token)
        if mod is None:
            mod = b.segments[-1]
            out = [ev.ModalityStart(k, mod)]
        else:
            out = []
        if mod == "image":
            if token >= self.palette_offset:
                out.append(ev.Pixel(k, t, i, j, token - self.palette_offset, token))
            else:
                out.append(ev.RowEnd(k, t, i, j))
                if token == SEG_END_ID:
                    out.append(ev.FrameEnd(k, t, i + 1, j))
        elif mod == "text":
            if token != SEG_END_ID or b.cursor.modality == "text":
                out.append(ev.TextChar(k, self.chars[token], token))
        elif token >= self.action_offset:
            out.append(ev.AudioSample(k, t, j, self.levels[token - self.action_offset], token))
        if b.cursor.modality is None:
            out.append(ev.ModalityEnd(k, mod))
        return out


def _context_writer(buf: np.ndarray):
    """``put(k, ids)``: write lane k's 6 context ids into the backend's (B, 6) int32 input."""
    if buf.dtype == np.int32 and buf.flags.c_contiguous:
        flat = memoryview(buf).cast("B").cast("i")
        if flat.itemsize == 4:
            def put(k: int, ids: tuple) -> None:
                # Six item stores through a memoryview: ~0.5 µs, against ~1.2 µs for ``buf[k] = ids``.
                o = 6 * k
                flat[o], flat[o + 1], flat[o + 2], flat[o + 3], flat[o + 4], flat[o + 5] = ids
            return put

    def put_numpy(k: int, ids: tuple) -> None:
        buf[k] = ids

    return put_numpy


def _buffered_io(backend, slot: int) -> tuple[np.ndarray, Any]:
    """(context buffer, step() → (B, V) logits of ``slot``) of a backend."""
    return backend.context_buffer(), functools.partial(backend.step_buffer, slot)


# How a warning names each bound (pxby_edge.plan.BOUND_*).
_BOUND_WORDS = {"text_chars": "the text was cut at --text-chars ({})",
                "width": "its rows were ended at the training data's largest width ({} pixels)",
                "height": "its frames were ended at the training data's largest height ({} rows)",
                "frames": "it was ended at the training data's largest frame count ({})",
                "audio_samples": "it was ended at the training data's longest audio ({} samples)"}
# (modality, words) of a finished segment below the training data's smallest (``plan.short_of_floors``)
_SHORT_WORDS = {"width": ("image", "its rows are {} pixels wide, narrower than any sprite it was trained on ({})"),
                "height": ("image", "its frames are {} rows high, shorter than any sprite it was trained on ({})"),
                "frames": ("image", "it has {} frame(s), fewer than any sprite it was trained on ({})"),
                "audio_samples": ("audio", "it is {} samples long, shorter than any cry it was trained on ({})")}


class Generator:
    """Drives a backend through a request; ``events()`` yields as tokens are made.

    What it resolved from the model file: ``audio_rate`` (audio tokens per second) and
    ``audio_samples`` (the request's audio length in samples, or None). After (or during) iteration,
    ``lanes[k].tokens`` holds lane k's whole stream (prompt included) and ``step_ns`` the wall time
    of every generation step (all lanes together).
    """

    def __init__(self, backend: Stepper, request: GenerationRequest,
                 tokenizer: Optional[ActionPixelBytesTokenizer] = None):
        self.backend = backend
        self.request = request
        self.tok = tokenizer or tokenizer_for(backend.manifest)
        self.vocab = self.tok.vocab_lists
        batch = int(request.batch)
        if batch < 1:
            raise GenerationError(f"batch must be >= 1, got {batch}")
        if batch != backend.batch:
            raise GenerationError(
                f"the model file was exported for batch {backend.batch}, but batch {batch} was asked; "
                f"export one with `pxby-edge quantize ... --batch {batch}`"
            )
        if int(request.max_tokens) < 1:
            raise GenerationError(f"max tokens must be >= 1, got {request.max_tokens}")
        self.audio_rate = audio_rate_of(backend.manifest)  # audio tokens per second, per channel
        self.audio_samples = request.audio_samples_at(self.audio_rate)  # None: the model decides
        plan = request.stream_plan(backend.manifest.geometry, self.audio_samples)
        self.plan = plan
        self.autoregressive = backend.slots == 6
        seed = request.seed
        self.lanes = []
        for k in range(batch):
            b = ContextBuilder(self.tok)
            lane_seed = None if seed is None else int(seed) + k
            sampler = Sampler(request.temperature, request.top_k, request.top_p, seed=lane_seed)
            self.lanes.append(Lane(b, PlanTracker(plan, b), sampler))
        self._prompt = prompt_tokens(self.tok, request)
        self._check_prompt_fits_plan()
        self.step_ns: list[int] = []
        self.prompt_tokens = len(self._prompt)
        self.stop_reason = ""

    def _check_prompt_fits_plan(self) -> None:
        probe = ContextBuilder(self.tok)
        for token, ends in self._prompt:
            probe.push(token, ends)
        mods = list(self.plan.modalities)
        if probe.segments != mods[: len(probe.segments)]:
            raise GenerationError(
                f"the prompt gives {' then '.join(probe.segments)}, which the plan {','.join(mods)} does not start with"
            )
        if probe.modality is None and len(probe.segments) >= len(mods):
            raise GenerationError("the prompt already fills the whole plan: nothing is left to generate")

    def segments(self, k: int = 0) -> list[dict]:
        """Lane k's segments so far: modality, how it ended ("plan", "max_tokens", or "" while it runs)
        and the bounds that cut it (``pxby_edge.plan.BOUND_*`` names)."""
        lane = self.lanes[k]
        names = lane.builder.segments
        open_last = lane.builder.cursor.modality is not None
        out = []
        for i, modality in enumerate(names):
            ended = "plan"
            if open_last and i == len(names) - 1:
                ended = "max_tokens" if lane.done else ""
            out.append({"modality": modality, "ended_by": ended, "bounds": list(lane.tracker.acted.get(i, ()))})
        return out

    def warnings(self) -> list[str]:
        """One line per segment that a bound, a cap or the token budget cut (for the command to print)."""
        out = []
        for k in range(len(self.lanes)):
            who = f"stream {k}: " if len(self.lanes) > 1 else ""
            for seg in self.segments(k):
                for name in seg["bounds"]:
                    value = self.plan.limit(name)[0]
                    out.append(f"{who}{seg['modality']}: {_BOUND_WORDS[name].format(value)}; the model would have gone on")
                if seg["ended_by"] == "max_tokens":
                    out.append(f"{who}the {seg['modality']} was cut by the token budget "
                               f"({self.request.max_tokens}, --max-tokens)")
            for name, made, least in short_of_floors(self.plan, self.lanes[k].tokens, self.backend.manifest.vocab):
                modality, words = _SHORT_WORDS[name]
                out.append(f"{who}{modality}: {words.format(made, least)}")
            missing = self.plan.modalities[len(self.lanes[k].builder.segments):]
            if missing:
                out.append(f"{who}no {', '.join(missing)} was generated: the token budget ran out first")
        return out

    def expected_tokens(self) -> int:
        """How many tokens a lane's stream should hold, prompt included, for a progress bar's total:
        the plan's limits where the user set them; where the model decides, the token budget bounds it."""
        request = self.request
        budget = int(request.max_tokens)
        plan = request.stream_plan(audio_samples=self.audio_samples)
        text = len(request.prompt) if request.prompt is not None and not request.complete_text else plan.text_chars
        sizes = {
            "text": (text or budget) + 1,
            "image": None if None in (plan.frames, plan.width, plan.height) else plan.frames * plan.height * (plan.width + 1),
            "audio": None if plan.audio_samples is None else 2 * (plan.audio_samples + 1),
        }
        total = 0
        for modality in plan.modalities:
            if sizes[modality] is None:
                return budget
            total += sizes[modality]
        return min(total, budget)

    def _write_contexts(self, put) -> None:
        for k, lane in enumerate(self.lanes):
            put(k, ZERO_CONTEXT if lane.done else lane.builder.context_ids())

    def events(self) -> Iterator[ev.Event]:
        be = self.backend
        be.reset()
        buf, self._step = _buffered_io(be, 5 if self.autoregressive else 0)
        put = _context_writer(buf)
        to_events = _TokenEvents(self.vocab).push
        logits = None
        # Prefill: every lane reads the same prompt.
        for token, ends in self._prompt:
            self._write_contexts(put)
            logits = self._step()
            for k, lane in enumerate(self.lanes):
                yield from to_events(k, lane, token, ends)
        if logits is None:
            self._write_contexts(put)
            logits = self._step()
        if len(self.lanes) == 1:
            yield from self._stream_one(logits, put, to_events)
        else:
            yield from self._stream_lanes(logits, put, to_events)

    def _stream_one(self, logits, put, to_events) -> Iterator[ev.Event]:
        """Batch 1: the same steps as ``_stream_lanes`` with every per-lane indirection hoisted out."""
        lane = self.lanes[0]
        builder, tracker, sampler = lane.builder, lane.tracker, lane.sampler
        masks, step, perf, step_ns = builder.masks, self._step, time.perf_counter_ns, self.step_ns
        max_tokens = int(self.request.max_tokens)
        seen, row = None, None
        while True:
            t0 = perf()
            if logits is not seen:  # backends that hand out their own buffer give the same array each step
                seen, row = logits, logits[0]
            mask = self._mask(lane, row)
            token = sampler.sample(row, mask, builder.cursor.modality or tracker.current, masks.bias(mask))
            token, ends = self._resolve(lane, token)
            batch_events = to_events(0, lane, token, ends)
            lane.generated += 1
            if tracker.done:
                lane.done, reason = True, "plan"
            elif lane.generated >= max_tokens:
                lane.done, reason = True, "max_tokens"
            else:
                put(0, builder.context_ids())
                logits = step()
                step_ns.append(perf() - t0)
                yield from batch_events
                continue
            batch_events.append(ev.StreamEnd(0, lane.generated, reason))
            self.stop_reason = reason
            step_ns.append(perf() - t0)
            yield from batch_events
            return

    def _stream_lanes(self, logits, put, to_events) -> Iterator[ev.Event]:
        lanes = self.lanes
        max_tokens = int(self.request.max_tokens)
        perf, step_ns, step = time.perf_counter_ns, self.step_ns, self._step
        while True:
            t0 = perf()
            batch_events: list = []
            active = [k for k, lane in enumerate(lanes) if not lane.done]
            masks = [self._mask(lanes[k], logits[k]) for k in active]
            choices = sample_lanes(
                [lanes[k].sampler for k in active], logits[active], np.stack(masks),
                [lanes[k].builder.cursor.modality or lanes[k].tracker.current for k in active],
                [lanes[k].builder.masks.bias(m) for k, m in zip(active, masks)],
            )
            for k, token in zip(active, choices):
                lane = lanes[k]
                token, ends = self._resolve(lane, token)
                batch_events += to_events(k, lane, token, ends)
                lane.generated += 1
                if lane.tracker.done:
                    lane.done, reason = True, "plan"
                elif lane.generated >= max_tokens:
                    lane.done, reason = True, "max_tokens"
                else:
                    continue
                batch_events.append(ev.StreamEnd(k, lane.generated, reason))
                self.stop_reason = self.stop_reason or reason
            if all(lane.done for lane in lanes):
                step_ns.append(perf() - t0)
                yield from batch_events
                return
            self._write_contexts(put)
            logits = step()
            step_ns.append(perf() - t0)
            yield from batch_events

    def _mask(self, lane: Lane, logits: np.ndarray) -> np.ndarray:
        tracker, builder = lane.tracker, lane.builder
        mask = tracker.mask()
        if tracker.pending is not None:  # a bound restricted this position: did the model want more?
            tracker.settle(logits)
        if self.autoregressive and mask[SEG_END_ID] and builder.needs_decision(SEG_END_ID):
            if tracker.decide(SEG_END_ID, predicted=True):
                mask = builder.masks.with_pad(mask)  # 0 in slot 5 = "the segment ends here" (module docstring)
        return mask

    def _resolve(self, lane: Lane, token: int) -> tuple[int, Optional[bool]]:
        """The token to push and its segment decision, from what the sampler drew."""
        if token == PAD_ID:
            return SEG_END_ID, True
        if lane.builder.needs_decision(token):
            return token, lane.tracker.decide(token, predicted=False if self.autoregressive else None)
        return token, None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    VmHWM first: ``ru_maxrss`` of a process started by a big parent carries the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def step_stats(step_ns: Sequence[int], tokens_per_step: int = 1) -> dict:
    """Median and p99 microseconds per token of a list of per-step nanoseconds."""
    if not step_ns:
        return {"step_us_median": 0.0, "step_us_p99": 0.0}
    arr = np.asarray(step_ns, dtype=np.float64) / 1000.0 / max(1, tokens_per_step)
    return {"step_us_median": float(np.median(arr)), "step_us_p99": float(np.percentile(arr, 99))}


def default_model_path():
    """The bundled model file (pxby_edge/assets/demo.tflite)."""
    from pathlib import Path

    return Path(__file__).resolve().parent / "assets" / "demo.tflite"


def audio_rate_of(manifest) -> int:
    """Sample rate of the model's audio tokens: what the manifest records (the dataset's rate over the audio
    slicing, carried from the checkpoint); a file from an upstream checkpoint records none, and was trained on
    the upstream dataset's rate."""
    if manifest.audio_rate:
        return int(round(manifest.audio_rate))
    return int(round(UPSTREAM_AUDIO_RATE / int(dict(manifest.slicing).get("audio", 1))))


class GenerationRun:
    """One generation from an opened model file: ``events()`` yields what it makes (once), then
    ``summary()`` is the result: tokens, seconds, tokens_per_s, step_us_median, step_us_p99, backend,
    peak_rss_mb, startup_s, stop_reason, segments (per lane: each segment's modality, how it ended and the
    bounds that cut it), warnings (one line per cut, for the command to print) and outputs (empty: a run
    writes nothing; ``pxby_edge.outputs`` writes what a caller keeps and fills it in)."""

    def __init__(self, generator: Generator, model, t_load: Optional[float] = None):
        self.generator = generator
        self.model = model
        self._t_load = time.perf_counter() if t_load is None else t_load  # startup_s counts from here
        self.timing = {"seconds": 0.0, "startup_s": 0.0}

    def events(self, progress: bool = False, desc: str = "generating") -> Iterator[ev.Event]:
        """The generator's events, timed; with ``progress``, a bar of steps against ``expected_tokens``."""
        gen = self.generator
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=gen.expected_tokens(), unit="tok", desc=desc, leave=False, mininterval=0.25)
        t_gen = None
        shown = 0
        try:
            for event in gen.events():
                if t_gen is None and gen.step_ns:
                    t_gen = time.perf_counter() - (gen.step_ns[0] / 1e9)
                    self.timing["startup_s"] = time.perf_counter() - self._t_load
                yield event
                if bar is not None and len(gen.step_ns) - shown >= 256:
                    bar.update(len(gen.step_ns) - shown)
                    shown = len(gen.step_ns)
        finally:
            if bar is not None:
                bar.update(len(gen.step_ns) - shown)
                bar.close()
        self.timing["seconds"] = (time.perf_counter() - t_gen) if t_gen is not None else 0.0

    def complete(self, on_event=None, progress: bool = False, desc: str = "generating") -> dict:
        """Run to the end, handing each event to ``on_event``; returns ``summary()``."""
        for event in self.events(progress, desc):
            if on_event is not None:
                on_event(event)
        return self.summary()

    def summary(self) -> dict:
        gen = self.generator
        tokens = sum(lane.generated for lane in gen.lanes)
        seconds = self.timing["seconds"]
        return {
            "model": str(self.model),
            "backend": gen.backend.name,
            "batch": len(gen.lanes),
            "prompt_tokens": gen.prompt_tokens,
            "tokens": tokens,
            "seconds": seconds,
            "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
            **step_stats(gen.step_ns, tokens_per_step=len(gen.lanes)),
            "startup_s": self.timing["startup_s"],
            "peak_rss_mb": peak_rss_mb(),
            "stop_reason": gen.stop_reason,
            "segments": [gen.segments(k) for k in range(len(gen.lanes))],
            "warnings": gen.warnings(),
            "outputs": [],
        }


def run_generation(request: GenerationRequest, model=None, *, backend: str = "auto", threads: int = 1) -> GenerationRun:
    """Open ``model`` (default: the bundled one) for ``request``: a wrong file, a missing interpreter or an
    impossible request fails here, before any token; iterate the run's ``events()`` to generate."""
    from pathlib import Path

    from pxby_edge.backends import open_backend

    model = Path(model) if model is not None else default_model_path()
    t_load = time.perf_counter()
    return GenerationRun(Generator(open_backend(model, backend=backend, threads=threads), request), model, t_load)
