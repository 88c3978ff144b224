"""Measure backends on one token stream: per-token latency, tokens/s, start-up, peak RSS, and the ratios.

    pxby-edge bench model_int8.tflite model_float.tflite --batch-model model_int8_b8.tflite --tokens 2000 --vs-torch CKPT

The library behind ``pxby-edge bench``. One token stream is made first (a seeded generation with the
first model, recording the contexts it stepped), then every configuration replays it, so rows differ
only in how a step is computed. Each row runs in a fresh Python process (``python -m
pxby_edge.backends.bench ROW.json``) so that peak RSS and start-up belong to that row alone: a torch
row would otherwise leave 300 MB behind for the rows after it.

Row kinds:
- ``step``: the backend's ``step()`` over the recorded contexts (I/O included), plus the bare
  ``invoke()`` of the same interpreter (``bare_us``) where the backend has one;
- ``generate``: end to end through the generator, ``pxby_edge.generate.Generator`` (sampling, context
  building, events), the same seed and prompt; load to first generated token is ``startup_s``;
- ``torch``: PyTorch fp32 with the LSTM state kept, one ``model.step`` per token;
- ``upstream``: PyTorch fp32 re-running the whole prefix for every token, as the reference
  implementation generates.
torch is imported only in the last two, and only inside their process.

Wall-clock figures on a shared machine include time spent descheduled; each row therefore also
reports ``cpu_us_per_token`` (the thread's CPU time over the loop / tokens), which other processes
can slow (shared caches) but not inflate by preemption. Ratios are given for both.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from pxby_edge.errors import BackendError

ROW_KEYS = ("name", "kind", "backend", "recipe", "batch", "tokens", "tokens_per_s", "us_per_token_median",
            "us_per_token_p99", "bare_us", "startup_s", "peak_rss_mb", "model")
KINDS = ("step", "generate", "torch", "upstream")
PROMPT = "a small blue water creature"


@dataclass
class RowSpec:
    kind: str
    model: str = ""  # .tflite (or checkpoint folder for torch rows)
    backend: str = ""
    threads: int = 1
    tokens: int = 1000
    contexts: str = ""  # .npy of (T, 6) int32 contexts to replay
    seed: int = 0
    options: dict = field(default_factory=dict)  # backend options (io, state)
    label: str = ""

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def peak_rss_mb() -> float:
    """Peak resident set of this process, MiB. Linux's VmHWM belongs to this program's memory alone;
    ``ru_maxrss`` survives exec, so a row started from a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def latency_stats(step_ns, tokens_per_step: int) -> dict:
    arr = np.asarray(step_ns, dtype=np.float64) / 1e3 / max(1, tokens_per_step)
    total_s = float(np.sum(step_ns)) / 1e9
    n = len(step_ns) * tokens_per_step
    return {
        "us_per_token_median": float(np.median(arr)) if len(arr) else 0.0,
        "us_per_token_p99": float(np.percentile(arr, 99)) if len(arr) else 0.0,
        "tokens": int(n),
        "tokens_per_s": n / total_s if total_s > 0 else 0.0,
    }


def generation_request(tokens: int, seed: int, batch: int = 1):
    """The request every end-to-end row and the recorded stream use: text, a sprite, then audio."""
    from pxby_edge.generate import GenerationRequest

    return GenerationRequest(prompt=PROMPT, plan=("text", "image", "audio"), max_tokens=int(tokens), text_chars=160,
                             frames=2, width=16, height=16, audio_samples=int(tokens) + 1, temperature=0.8,
                             seed=seed, batch=batch)


class _Recorder:
    """A backend wrapper that keeps every context it is asked to step."""

    def __init__(self, backend):
        self._b = backend
        self.contexts: list = []
        for attr in ("name", "manifest", "batch", "slots", "vocab_size"):
            setattr(self, attr, getattr(backend, attr))

    def step(self, contexts):
        self.contexts.append(np.array(contexts[0], dtype=np.int32))
        return self._b.step(contexts)

    def reset(self, lanes=None):
        self._b.reset(lanes)

    def context_buffer(self):
        return self._b.context_buffer()

    def step_buffer(self, slot=None):
        self.contexts.append(np.array(self._b.context_buffer()[0], dtype=np.int32))
        return self._b.step_buffer(slot)


def record_stream(model, tokens: int, seed: int = 0, backend: str = "auto") -> np.ndarray:
    """Contexts (T, 6) of a seeded batch-1 generation of ``tokens`` tokens (prompt prefill included)."""
    from pxby_edge.backends import open_backend
    from pxby_edge.generate import Generator

    be = open_backend(model, backend)
    if be.batch != 1:
        raise BackendError(f"the token stream is recorded with a batch-1 file; {model} is batch {be.batch}")
    rec = _Recorder(be)
    gen = Generator(rec, generation_request(tokens, seed))
    for _ in gen.events():
        pass
    return np.stack(rec.contexts)


# -- rows (run inside the child process) -------------------------------------------------------------------


def run_row(spec: RowSpec) -> dict:
    t_start = time.perf_counter()
    runner = {"step": _row_step, "generate": _row_generate, "torch": _row_torch, "upstream": _row_upstream}[spec.kind]
    row = runner(spec, t_start)
    row["peak_rss_mb"] = peak_rss_mb()
    row.setdefault("threads", spec.threads)
    return row


def _row_step(spec: RowSpec, t_start: float) -> dict:
    from pxby_edge.backends import open_backend

    contexts = np.load(spec.contexts)
    t0 = time.perf_counter()
    be = open_backend(spec.model, spec.backend, threads=spec.threads, **spec.options)
    ctx = np.zeros((be.batch, 6), dtype=np.int32)
    ctx[:] = contexts[0]
    be.reset()
    be.step(ctx)
    startup = time.perf_counter() - t0
    perf = time.perf_counter_ns
    step = be.step
    times = []
    cpu0 = time.thread_time_ns()
    for c in contexts[1:]:
        ctx[:] = c  # every lane replays the stream: the same work per lane as real lanes
        s = perf()
        step(ctx)
        times.append(perf() - s)
    cpu = time.thread_time_ns() - cpu0
    row = latency_stats(times, be.batch)
    row["cpu_us_per_token"] = cpu / 1e3 / max(1, len(times) * be.batch)
    bare = getattr(be, "bare_invoke", None)
    if bare is not None:
        bare_times = []
        cpu0 = time.thread_time_ns()
        for _ in range(len(contexts)):
            s = perf()
            bare()
            bare_times.append(perf() - s)
        cpu = time.thread_time_ns() - cpu0
        row["bare_us"] = float(np.median(bare_times)) / 1e3 / be.batch
        row["bare_cpu_us"] = cpu / 1e3 / (len(contexts) * be.batch)
    row.update(kind="step", backend=be.name, recipe=be.manifest.recipe, batch=be.batch, startup_s=startup,
               model=str(spec.model), options=spec.options, import_s=t0 - t_start)
    return row


def _row_generate(spec: RowSpec, t_start: float) -> dict:
    """End to end through the generator (``pxby_edge.generate.Generator``): sampling, contexts, events."""
    from pxby_edge.backends import open_backend
    from pxby_edge.generate import Generator

    t0 = time.perf_counter()
    be = open_backend(spec.model, spec.backend, threads=spec.threads, **spec.options)
    gen = Generator(be, generation_request(spec.tokens, spec.seed, be.batch))
    events = gen.events()
    n_events = 0
    for _ in events:  # prefill, then up to the first generated token
        n_events += 1
        if gen.step_ns:
            break
    startup = time.perf_counter() - t0
    w0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
    for _ in events:
        n_events += 1
    wall, cpu = time.perf_counter_ns() - w0, time.thread_time_ns() - cpu0
    tokens = sum(lane.generated for lane in gen.lanes)
    steps = gen.step_ns[1:]
    row = latency_stats(steps, be.batch)
    later = max(1, len(steps) * be.batch)
    row.update(kind="generate", backend=be.name, recipe=be.manifest.recipe, batch=be.batch, tokens=tokens,
               tokens_per_s=later / (wall / 1e9) if wall else 0.0, cpu_us_per_token=cpu / 1e3 / later,
               startup_s=startup, events=n_events, model=str(spec.model), options=spec.options,
               stop_reason=gen.stop_reason)
    return row


def _torch_model(spec: RowSpec):
    import torch

    from training.checkpoint import load_checkpoint

    torch.set_num_threads(spec.threads)
    return torch, load_checkpoint(spec.model, streamable=True)


def _row_torch(spec: RowSpec, t_start: float) -> dict:
    contexts = np.load(spec.contexts)
    t0 = time.perf_counter()
    torch, model = _torch_model(spec)
    ids = torch.as_tensor(contexts.astype(np.int64))
    perf = time.perf_counter_ns
    times = []
    with torch.no_grad():
        _, state = model.step(ids[0:1])
        startup = time.perf_counter() - t0
        cpu0 = time.thread_time_ns()
        for t in range(1, len(ids)):
            s = perf()
            _, state = model.step(ids[t:t + 1], state)
            times.append(perf() - s)
        cpu = time.thread_time_ns() - cpu0
    row = latency_stats(times, 1)
    row["cpu_us_per_token"] = cpu / 1e3 / max(1, len(times))
    row.update(kind="torch", backend="torch", recipe="fp32", batch=1, startup_s=startup, model=str(spec.model))
    return row


def _row_upstream(spec: RowSpec, t_start: float) -> dict:
    contexts = np.load(spec.contexts)[: spec.tokens]
    t0 = time.perf_counter()
    torch, model = _torch_model(spec)
    ids = torch.as_tensor(contexts.astype(np.int64))[None]  # (1, T, 6)
    perf = time.perf_counter_ns
    times = []
    with torch.no_grad():
        model(ids[:, :1])
        startup = time.perf_counter() - t0
        cpu0 = time.thread_time_ns()
        for t in range(2, ids.shape[1] + 1):
            s = perf()
            model(ids[:, :t])  # the reference re-runs the whole prefix for each new token
            times.append(perf() - s)
        cpu = time.thread_time_ns() - cpu0
    row = latency_stats(times, 1)
    row["cpu_us_per_token"] = cpu / 1e3 / max(1, len(times))
    row.update(kind="upstream", backend="torch", recipe="fp32", batch=1, startup_s=startup, model=str(spec.model))
    return row


def _child() -> int:
    spec = RowSpec(**json.loads(Path(sys.argv[1]).read_text()))
    row = run_row(spec)
    print("PXBY_ROW " + json.dumps(row))
    return 0


# -- the parent: plan rows, run each in its own process, add ratios --------------------------------------


def plan_rows(models, *, backends: Optional[list] = None, kinds=("step", "generate"), tokens: int = 2000,
              threads: int = 1, vs_torch=None, upstream_tokens: int = 1000, contexts: str = "", seed: int = 0,
              variants: bool = False) -> list[RowSpec]:
    """Every configuration to measure, in the order the table shows them."""
    from pxby_edge.backends import available_backends
    from pxby_edge.backends.onnx import onnx_path_for
    from pxby_edge.manifest import read_manifest

    have = available_backends()
    specs: list[RowSpec] = []
    if vs_torch is not None:
        specs.append(RowSpec("upstream", str(vs_torch), "torch", threads, min(upstream_tokens, tokens), contexts, seed,
                             label="upstream-style (re-run prefix, torch fp32)"))
        specs.append(RowSpec("torch", str(vs_torch), "torch", threads, tokens, contexts, seed,
                             label="torch fp32, kept state"))
    for model in models:
        manifest = read_manifest(model)
        for name in backends or have:
            if name not in have:
                continue
            if name == "onnx" and onnx_path_for(model) is None:
                continue
            label_base = f"{name} {manifest.recipe} b{manifest.batch}"
            for kind in kinds:
                if kind not in ("step", "generate"):
                    continue
                specs.append(RowSpec(kind, str(model), name, threads, tokens, contexts, seed,
                                     label=f"{label_base} {kind}"))
            if variants and name in ("litert", "tflite") and "step" in kinds:
                for opts in ({"io": "copy"}, {"state": "requantize"}, {"state": "raw"}):
                    if "state" in opts and not manifest.input("h0").quantized:
                        continue
                    tag = ",".join(f"{k}={v}" for k, v in opts.items())
                    specs.append(RowSpec("step", str(model), name, threads, tokens, contexts, seed, dict(opts),
                                         label=f"{label_base} step [{tag}]"))
    return specs


def run_spec(spec: RowSpec, isolate: bool = True) -> dict:
    """One row, in a fresh process (isolate) or in this one (tests)."""
    if not isolate:
        row = run_row(spec)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "row.json"
            path.write_text(spec.to_json())
            env = dict(os.environ)
            root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            proc = subprocess.run([sys.executable, "-m", "pxby_edge.backends.bench", str(path)],
                                  capture_output=True, text=True, env=env)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PXBY_ROW ")]
            if proc.returncode != 0 or not lines:
                tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:]) or f"exit {proc.returncode}"
                return {"name": spec.label, "kind": spec.kind, "backend": spec.backend, "error": tail,
                        "batch": 0, "tokens_per_s": 0.0, "us_per_token_median": 0.0, "us_per_token_p99": 0.0,
                        "startup_s": 0.0, "peak_rss_mb": 0.0}
            row = json.loads(lines[-1][len("PXBY_ROW "):])
    row["name"] = spec.label
    return row


def add_ratios(rows: list) -> list:
    """Speed-ups against upstream-style and torch-kept-state, and batch B against batch 1 of the same setup."""
    base = {r["kind"]: r["tokens_per_s"] for r in rows if r.get("kind") in ("upstream", "torch") and r["tokens_per_s"]}
    cpu_base = {r["kind"]: r["cpu_us_per_token"] for r in rows
                if r.get("kind") in ("upstream", "torch") and r.get("cpu_us_per_token")}
    b1 = {(r["kind"], r["backend"], r.get("recipe"), json.dumps(r.get("options") or {})): r["tokens_per_s"]
          for r in rows if r.get("batch") == 1 and r.get("tokens_per_s")}
    cpu_b1 = {(r["kind"], r["backend"], r.get("recipe"), json.dumps(r.get("options") or {})): r["cpu_us_per_token"]
              for r in rows if r.get("batch") == 1 and r.get("cpu_us_per_token")}
    for r in rows:
        if not r.get("tokens_per_s"):
            continue
        for kind in ("upstream", "torch"):
            if kind in base and r.get("kind") != kind:
                r[f"x_vs_{kind}"] = r["tokens_per_s"] / base[kind]
        for kind in ("upstream", "torch"):
            if kind in cpu_base and r.get("kind") != kind and r.get("cpu_us_per_token"):
                r[f"cpu_x_vs_{kind}"] = cpu_base[kind] / r["cpu_us_per_token"]
        key = (r["kind"], r["backend"], r.get("recipe"), json.dumps(r.get("options") or {}))
        if r.get("batch", 1) > 1 and key in b1:
            r["x_vs_batch1"] = r["tokens_per_s"] / b1[key]
            if key in cpu_b1 and r.get("cpu_us_per_token"):
                r["cpu_x_vs_batch1"] = cpu_b1[key] / r["cpu_us_per_token"]
        if r.get("kind") == "step" and r.get("bare_us"):
            r["io_overhead_us"] = r["us_per_token_median"] - r["bare_us"]
            if r.get("bare_cpu_us") and r.get("cpu_us_per_token"):
                r["io_overhead_cpu_us"] = r["cpu_us_per_token"] - r["bare_cpu_us"]
    gens = [r for r in rows if r.get("kind") == "generate" and r.get("tokens_per_s")]
    bares = {(r["backend"], r.get("recipe"), r.get("batch")): r for r in rows
             if r.get("kind") == "step" and r.get("bare_us") and not r.get("options")}
    for r in gens:
        bare = bares.get((r["backend"], r.get("recipe"), r.get("batch")))
        if bare is not None:
            r["overhead_us_vs_bare"] = r["us_per_token_median"] - bare["bare_us"]
            if bare.get("bare_cpu_us") and r.get("cpu_us_per_token"):
                r["overhead_cpu_us_vs_bare"] = r["cpu_us_per_token"] - bare["bare_cpu_us"]
    return rows


def bench(models, *, tokens: int = 2000, backends=None, kinds=("step", "generate"), threads: int = 1, vs_torch=None,
          upstream_tokens: int = 1000, seed: int = 0, variants: bool = False, isolate: bool = True,
          progress: Optional[Callable[[str], None]] = None) -> list:
    """Rows of measurements (see ``ROW_KEYS``), with ratios; the stream is recorded from the first batch-1 model."""
    from pxby_edge.manifest import read_manifest

    models = [Path(m) for m in models]
    if not models:
        raise BackendError("give at least one model file to bench")
    batch1 = [m for m in models if read_manifest(m).batch == 1]
    if not batch1:
        raise BackendError("bench records its token stream with a batch-1 file; give one besides the batch-B file")
    with tempfile.TemporaryDirectory() as tmp:
        ctx_path = Path(tmp) / "contexts.npy"
        np.save(ctx_path, record_stream(batch1[0], tokens, seed))
        specs = plan_rows(models, backends=backends, kinds=kinds, tokens=tokens, threads=threads, vs_torch=vs_torch,
                          upstream_tokens=upstream_tokens, contexts=str(ctx_path), seed=seed, variants=variants)
        rows = []
        for spec in specs:
            if progress is not None:
                progress(spec.label)
            rows.append(run_spec(spec, isolate))
    return add_ratios(rows)


def format_table(rows: list) -> str:
    cols = [("name", "{:<40}", "configuration"), ("tokens_per_s", "{:>10.0f}", "tok/s"),
            ("us_per_token_median", "{:>9.1f}", "med µs"), ("us_per_token_p99", "{:>9.1f}", "p99 µs"),
            ("bare_us", "{:>8.1f}", "bare µs"), ("cpu_us_per_token", "{:>8.1f}", "cpu µs"),
            ("bare_cpu_us", "{:>8.1f}", "bcpu µs"), ("startup_s", "{:>9.3f}", "start s"),
            ("peak_rss_mb", "{:>8.1f}", "RSS MB"), ("x_vs_upstream", "{:>9.1f}", "×upstrm"),
            ("x_vs_torch", "{:>8.1f}", "×torch"), ("x_vs_batch1", "{:>7.2f}", "×b1")]
    lines = ["  ".join(f"{h:<40}" if k == "name" else f"{h:>{len(fmt.format(0)) if k != 'name' else 40}}"
                       for k, fmt, h in cols)]
    for r in rows:
        if r.get("error"):
            lines.append(f"{r['name']:<40}  error: {r['error']}")
            continue
        cells = []
        for k, fmt, _ in cols:
            v = r.get(k)
            width = len(fmt.format(0)) if k != "name" else 40
            cells.append(fmt.format(v) if v is not None else " " * (width - 1) + "-")
        lines.append("  ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(_child())
