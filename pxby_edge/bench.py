"""Measure backends on one token stream: per-token latency, tokens/s, start-up, peak RSS, and the ratios.

    pxby-edge bench -r 5 --format md --plot bench.png
    pxby-edge bench model_int8.tflite --batch-model model_int8_b8.tflite --threads 1,2 --tokens 2000

The library behind ``pxby-edge bench``. One token stream is made first (a seeded generation with the
first batch-1 model, recording the contexts it stepped), then every configuration replays it, so rows
differ only in how a step is computed. Each row runs in a fresh Python process (``python -m
pxby_edge.bench ROW.json``) so that peak RSS and start-up belong to that row alone, and ``repeats``
runs of it give a mean and a standard deviation.

Row kinds measured here (torch-free):
- ``step``: the backend's ``step()`` over ``tokens`` recorded contexts (I/O included), plus the bare
  ``invoke()`` of the same interpreter (``bare_us``) where the backend has one;
- ``generate``: end to end through ``pxby_edge.generate.Generator`` (sampling, context building,
  events), the same seed and prompt; load to first generated token is ``startup_s``.
A row names the function that measures it (``RowSpec.runner``, ``module:function``), imported only in
its own process: the PyTorch rows (``training/bench_rows.py``) plug in that way without this module
importing torch or training.

ONNX Runtime on an int8 model (``onnxruntime.quantization.quantize_dynamic`` of the float ``.onnx``
beside the file) is the strongest alternative a user would pick: when onnxruntime is installed it gets
rows of its own, and every row of ours gets ``x_vs_onnx_int8``, its tokens/s over that row's.

Wall-clock figures on a shared machine include time spent descheduled; each row therefore also
reports ``cpu_us_per_token`` (the thread's CPU time over the loop / tokens).
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from pxby_edge.atomic import atomic_write, check_writable
from pxby_edge.errors import BackendError
from pxby_edge.generate import peak_rss_mb, step_stats

ROW_KEYS = ("name", "kind", "backend", "recipe", "batch", "threads", "tokens", "tokens_per_s", "us_per_token_median",
            "us_per_token_p99", "bare_us", "startup_s", "peak_rss_mb", "model")
# Fields that get a standard deviation over repeats (``KEY_sd``); the rest are the mean.
SPREAD_KEYS = ("tokens_per_s", "us_per_token_median", "us_per_token_p99", "cpu_us_per_token", "bare_us", "startup_s",
               "peak_rss_mb")
FORMATS = ("table", "md", "csv", "json", "jsonl")
KINDS = ("step", "generate")  # rows measured per backend here; torch rows come from their own runners
PROMPT = "a small blue water creature"
ROW_MARK = "PXBY_ROW "
ONNX_INT8 = "onnx-int8"


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
    recipe: str = ""  # shown instead of the manifest's (an .onnx runs its own weights)
    runner: str = ""  # module:function measuring the row; default: this module's row for ``kind``

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def latency_row(step_ns, tokens_per_step: int) -> dict:
    """Per-token latency (generate.step_stats), token count and tokens/s of per-step nanoseconds."""
    stats = step_stats(step_ns, tokens_per_step)
    total_s = float(np.sum(step_ns)) / 1e9
    n = len(step_ns) * tokens_per_step
    return {"us_per_token_median": stats["step_us_median"], "us_per_token_p99": stats["step_us_p99"],
            "tokens": int(n), "tokens_per_s": n / total_s if total_s > 0 else 0.0}


def generation_request(tokens: int, seed: int, batch: int = 1):
    """The request every end-to-end row and the recorded stream use: text, a sprite, then audio."""
    from pxby_edge.generate import GenerationRequest

    return GenerationRequest(prompt=PROMPT, modalities=("text", "image", "audio"), max_tokens=int(tokens), text_chars=160,
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
    """Contexts (T, 6) of a seeded batch-1 generation of ``tokens`` tokens, prompt prefill first (T > tokens)."""
    from pxby_edge.backends import open_backend
    from pxby_edge.generate import Generator

    be = open_backend(model, backend)
    if be.batch != 1:
        raise BackendError(f"the token stream is recorded with a batch-1 file; {model} is batch {be.batch}")
    rec = _Recorder(be)
    for _ in Generator(rec, generation_request(tokens, seed)).events():
        pass
    return np.stack(rec.contexts)


# -- rows (run inside the child process) -------------------------------------------------------------------


def run_row(spec: RowSpec) -> dict:
    """Measure one row in this process with the function ``spec.runner`` names (``module:function``)."""
    module, _, attr = (spec.runner or f"pxby_edge.bench:row_{spec.kind}").partition(":")
    runner = getattr(importlib.import_module(module), attr)
    row = runner(spec, time.perf_counter())
    row["peak_rss_mb"] = peak_rss_mb()
    row.setdefault("threads", spec.threads)
    if spec.recipe:
        row["recipe"] = spec.recipe
    return row


def _open(spec: RowSpec):
    from pxby_edge.backends import open_backend

    return open_backend(spec.model, spec.backend, threads=spec.threads, **spec.options)


def _bare_invoke_row(be, n: int) -> dict:
    """Median µs and CPU µs per token of ``n`` bare interpreter invokes (no I/O)."""
    perf, times = time.perf_counter_ns, []
    cpu0 = time.thread_time_ns()
    for _ in range(n):
        s = perf()
        be.bare_invoke()
        times.append(perf() - s)
    cpu = time.thread_time_ns() - cpu0
    return {"bare_us": float(np.median(times)) / 1e3 / be.batch, "bare_cpu_us": cpu / 1e3 / (n * be.batch)}


def row_step(spec: RowSpec, t_start: float) -> dict:
    """``step()`` over the recorded stream: the first context warms up, the next ``tokens`` are timed."""
    contexts = np.load(spec.contexts)
    t0 = time.perf_counter()
    be = _open(spec)
    ctx = np.zeros((be.batch, 6), dtype=np.int32)
    ctx[:] = contexts[0]
    be.reset()
    be.step(ctx)
    startup = time.perf_counter() - t0
    replay = contexts[1: 1 + spec.tokens]
    perf, step, times = time.perf_counter_ns, be.step, []
    cpu0 = time.thread_time_ns()
    for c in replay:
        ctx[:] = c  # every lane replays the stream: the same work per lane as real lanes
        s = perf()
        step(ctx)
        times.append(perf() - s)
    cpu = time.thread_time_ns() - cpu0
    row = dict(latency_row(times, be.batch), tokens=len(replay))  # tokens per lane, as generate counts them
    row["cpu_us_per_token"] = cpu / 1e3 / max(1, len(times) * be.batch)
    if getattr(be, "bare_invoke", None) is not None:
        row.update(_bare_invoke_row(be, len(replay)))
    row.update(kind="step", backend=be.name, recipe=be.manifest.recipe, batch=be.batch, startup_s=startup,
               model=str(spec.model), options=spec.options, import_s=t0 - t_start)
    return row


def row_generate(spec: RowSpec, t_start: float) -> dict:
    """End to end through the generator: sampling, contexts, events; ``tokens`` tokens per lane."""
    from pxby_edge.generate import Generator

    t0 = time.perf_counter()
    be = _open(spec)
    gen = Generator(be, generation_request(spec.tokens, spec.seed, be.batch))
    events = gen.events()
    for _ in events:  # prefill, then up to the first generated token
        if gen.step_ns:
            break
    startup = time.perf_counter() - t0
    w0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
    for _ in events:
        pass
    wall, cpu = time.perf_counter_ns() - w0, time.thread_time_ns() - cpu0
    steps = gen.step_ns[1:]
    later = max(1, len(steps) * be.batch)
    row = latency_row(steps, be.batch)
    row.update(kind="generate", backend=be.name, recipe=be.manifest.recipe, batch=be.batch,
               tokens=sum(lane.generated for lane in gen.lanes) // be.batch,
               tokens_per_s=later / (wall / 1e9) if wall else 0.0, cpu_us_per_token=cpu / 1e3 / later,
               startup_s=startup, model=str(spec.model), options=spec.options, stop_reason=gen.stop_reason)
    return row


def _child() -> int:
    spec = RowSpec(**json.loads(Path(sys.argv[1]).read_text()))
    print(ROW_MARK + json.dumps(run_row(spec)))
    return 0


# -- the parent: the matrix's rows, run each in its own process, add ratios --------------------------------------


def parse_backends(text: Optional[str]) -> Optional[list]:
    """``"litert,onnx"`` → names, each checked against the known backends (one-line error listing them)."""
    from pxby_edge.backends import BACKEND_NAMES

    if not text:
        return None
    names = [b.strip() for b in text.split(",") if b.strip()]
    bad = [n for n in names if n not in BACKEND_NAMES]
    if bad or not names:
        raise BackendError(f"unknown backend {', '.join(map(repr, bad)) or repr(text)}; "
                           f"choose from {', '.join(BACKEND_NAMES)} (comma-separated)")
    return names


def parse_kinds(text: str) -> tuple:
    """``"step,generate"`` → the row kinds measured per backend (one-line error naming the valid ones)."""
    kinds = tuple(k.strip() for k in str(text).split(",") if k.strip())
    if not kinds or any(k not in KINDS for k in kinds):
        raise BackendError(f"--kinds takes {' and/or '.join(KINDS)}, comma-separated; got {text!r}")
    return kinds


def parse_threads(text: str) -> list:
    """``"1,2,4"`` → [1, 2, 4]."""
    try:
        values = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise BackendError(f"--threads takes counts ≥ 1 separated by commas, e.g. 1,2,4; got {text!r}")
    return values


def onnx_quantizer_missing() -> Optional[str]:
    """Why the ONNX Runtime int8 rows cannot be made here (its quantization tools need ``onnx``), or None."""
    try:
        importlib.import_module("onnxruntime.quantization")
    except ImportError as exc:
        return f"needs onnxruntime's quantization tools ({exc}): pip install onnx"
    return None


def _no_preprocessing_advice(record: logging.LogRecord) -> bool:
    """Drops onnxruntime's "Please consider to run pre-processing before quantization" (a root-logger warning):
    its shape-inference pass is for models with dynamic shapes, and ours are fixed; a bench row is not the place."""
    return "pre-processing before quantization" not in record.getMessage()


def onnx_int8_model(model: Path, work: Path) -> Optional[Path]:
    """A ``.tflite`` in ``work`` whose same-stem ``.onnx`` is ``quantize_dynamic`` of the float one beside ``model``.

    The onnx backend then runs the int8 graph with the model's manifest. None when no float .onnx is
    beside ``model``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from pxby_edge.backends.onnx import onnx_path_for

    float_onnx = onnx_path_for(model)
    if float_onnx is None:
        return None
    out = work / ONNX_INT8
    out.mkdir(parents=True, exist_ok=True)
    # quantized from a copy in ``work``: onnxruntime writes a shape-inferred twin beside its input, and the
    # bundled model's folder (the install) may not be writable by the user who measures
    source = out / f"{model.stem}.float.onnx"
    shutil.copyfile(float_onnx, source)
    root = logging.getLogger()
    root.addFilter(_no_preprocessing_advice)
    try:
        quantize_dynamic(str(source), str(out / f"{model.stem}.onnx"), weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(_no_preprocessing_advice)
    shutil.copyfile(model, out / model.name)
    return out / model.name


@dataclass
class BenchMatrix:
    """What ``bench`` measures: the files, the backends and kinds per file, threads, tokens, seed."""

    models: list
    backends: Optional[list] = None
    kinds: tuple = ("step", "generate")
    threads: tuple = (1,)
    tokens: int = 2000
    seed: int = 0
    variants: bool = False
    onnx_int8: bool = True


def _model_specs(matrix: BenchMatrix, model: Path, have: list, contexts: str) -> list:
    from pxby_edge.backends.onnx import onnx_path_for
    from pxby_edge.manifest import read_manifest

    manifest = read_manifest(model)
    specs = []
    for name in matrix.backends or have:
        if name not in have or (name == "onnx" and onnx_path_for(model) is None):
            continue
        recipe = "fp32" if name == "onnx" else manifest.recipe  # onnxruntime runs the float .onnx beside it
        base = f"{name} {recipe} b{manifest.batch}"
        for kind in (k for k in matrix.kinds if k in KINDS):
            specs.append(RowSpec(kind, str(model), name, 1, matrix.tokens, contexts, matrix.seed, label=f"{base} {kind}",
                                 recipe=recipe))
        if matrix.variants and name in ("litert", "tflite") and "step" in matrix.kinds:
            for opts in ({"io": "copy"}, {"state": "requantize"}, {"state": "raw"}):
                if "state" not in opts or manifest.input("h0").quantized:
                    tag = ",".join(f"{k}={v}" for k, v in opts.items())
                    specs.append(RowSpec("step", str(model), name, 1, matrix.tokens, contexts, matrix.seed, dict(opts),
                                         label=f"{base} step [{tag}]", recipe=recipe))
    return specs


def matrix_rows(matrix: BenchMatrix, contexts: str, work: Path) -> list:
    """Every configuration to measure, in the order the table shows them (threads innermost)."""
    from pxby_edge.backends import available_backends
    from pxby_edge.manifest import read_manifest

    have = available_backends()
    specs = []
    for model in matrix.models:
        specs += _model_specs(matrix, model, have, contexts)
        int8 = onnx_int8_model(model, work) if _wants_onnx_int8(matrix, have) else None
        if int8 is not None:
            base = f"onnx int8 (quantize_dynamic) b{read_manifest(model).batch}"
            specs += [RowSpec(kind, str(int8), "onnx", 1, matrix.tokens, contexts, matrix.seed, label=f"{base} {kind}",
                              recipe=ONNX_INT8) for kind in matrix.kinds]
    return [replace(s, threads=t, label=f"{s.label} t{t}" if len(matrix.threads) > 1 else s.label)
            for s in specs for t in matrix.threads]


def _wants_onnx_int8(matrix: BenchMatrix, have: list) -> bool:
    return matrix.onnx_int8 and "onnx" in have and (matrix.backends is None or "onnx" in matrix.backends)


def _error_row(spec: RowSpec, message: str) -> dict:
    return {"name": spec.label, "kind": spec.kind, "backend": spec.backend, "threads": spec.threads, "error": message,
            "batch": 0, "tokens_per_s": 0.0, "us_per_token_median": 0.0, "us_per_token_p99": 0.0, "startup_s": 0.0,
            "peak_rss_mb": 0.0}


def run_spec(spec: RowSpec, isolate: bool = True) -> dict:
    """One row, in a fresh process (isolate) or in this one."""
    if not isolate:
        return dict(run_row(spec), name=spec.label)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "row.json"
        path.write_text(spec.to_json())
        env = dict(os.environ)
        # the row's runner may live beside this package (training/ in a clone): the same import roots
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.run([sys.executable, "-m", "pxby_edge.bench", str(path)], capture_output=True, text=True,
                              env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(ROW_MARK)]
    if proc.returncode != 0 or not lines:
        return _error_row(spec, " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:])
                          or f"exit {proc.returncode}")
    return dict(json.loads(lines[-1][len(ROW_MARK):]), name=spec.label)


def mean_rows(runs: list) -> dict:
    """One row from repeats of it: numeric fields averaged, ``KEY_sd`` the sample standard deviation."""
    ok = [r for r in runs if not r.get("error")]
    if not ok:
        return runs[-1]
    row = dict(ok[0], repeats=len(ok))
    for key, value in ok[0].items():
        if isinstance(value, float):  # counts (batch, threads, tokens) stay as they are
            vals = [float(r[key]) for r in ok if isinstance(r.get(key), (int, float))]
            row[key] = statistics.fmean(vals)
            if key in SPREAD_KEYS:
                row[f"{key}_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return row


def _same_setup(r: dict) -> tuple:
    return (r.get("kind"), r.get("backend"), r.get("recipe"), r.get("threads"), json.dumps(r.get("options") or {}))


def _ratios_to(rows: list, base_of: Callable[[dict], Optional[dict]], name: str) -> None:
    """``x_vs_NAME`` (tokens/s over the base row's) and ``cpu_x_vs_NAME`` (CPU µs of the base over ours)."""
    for r in rows:
        base = base_of(r)
        if base is None or base is r or not r.get("tokens_per_s") or not base.get("tokens_per_s"):
            continue
        r[f"x_vs_{name}"] = r["tokens_per_s"] / base["tokens_per_s"]
        if r.get("cpu_us_per_token") and base.get("cpu_us_per_token"):
            r[f"cpu_x_vs_{name}"] = base["cpu_us_per_token"] / r["cpu_us_per_token"]


def add_ratios(rows: list) -> list:
    """Ratios against upstream-style, torch kept-state and ONNX Runtime int8 (same kind, batch and threads),
    batch B against batch 1 of the same setup, and the I/O overhead over the bare invoke."""
    by_kind = {r["kind"]: r for r in rows if r.get("kind") in ("upstream", "torch") and r.get("tokens_per_s")}
    for kind, base in by_kind.items():
        _ratios_to(rows, lambda r, base=base, kind=kind: base if r.get("kind") != kind else None, kind)
    onnx8 = {(r["kind"], r.get("batch"), r.get("threads")): r for r in rows if r.get("recipe") == ONNX_INT8}
    _ratios_to(rows, lambda r: onnx8.get((r.get("kind"), r.get("batch"), r.get("threads"))), "onnx_int8")
    batch1 = {_same_setup(r): r for r in rows if r.get("batch") == 1}
    _ratios_to(rows, lambda r: batch1.get(_same_setup(r)) if r.get("batch", 1) > 1 else None, "batch1")
    bares = {(r["backend"], r.get("recipe"), r.get("batch"), r.get("threads")): r for r in rows
             if r.get("kind") == "step" and r.get("bare_us") and not r.get("options")}
    for r in rows:
        if r.get("kind") == "step" and r.get("bare_us"):
            r["io_overhead_us"] = r["us_per_token_median"] - r["bare_us"]
        bare = bares.get((r.get("backend"), r.get("recipe"), r.get("batch"), r.get("threads")))
        if r.get("kind") == "generate" and bare is not None and r.get("tokens_per_s"):
            r["overhead_us_vs_bare"] = r["us_per_token_median"] - bare["bare_us"]
    return rows


def bench(matrix: BenchMatrix, *, repeats: int = 1, extra_specs: Callable[[str], list] = lambda contexts: [],
          isolate: bool = True, progress: Optional[Callable[[str], None]] = None) -> list:
    """Rows of measurements (see ``ROW_KEYS``), each the mean of ``repeats`` runs, with ratios.

    The stream is recorded from the first batch-1 model. ``extra_specs(contexts_path)`` adds rows measured
    by other packages' runners (the PyTorch rows), placed first."""
    from pxby_edge.manifest import read_manifest

    models = [Path(m) for m in matrix.models]
    if not models:
        raise BackendError("give at least one model file to bench")
    batch1 = [m for m in models if read_manifest(m).batch == 1]
    if not batch1:
        raise BackendError("bench records its token stream with a batch-1 file; give one besides the batch-B file")
    if repeats < 1:
        raise BackendError(f"repeats must be ≥ 1, got {repeats}")
    from pxby_edge.backends import available_backends

    rows, skipped = [], []
    missing = onnx_quantizer_missing() if _wants_onnx_int8(matrix, available_backends()) else None
    if missing is not None:  # the other rows still run; the table says why these are absent
        matrix = replace(matrix, onnx_int8=False)
        skipped.append(_error_row(RowSpec("generate", backend="onnx", label="onnx int8 (quantize_dynamic)"), missing))
    with tempfile.TemporaryDirectory() as tmp:
        ctx_path = Path(tmp) / "contexts.npy"
        np.save(ctx_path, record_stream(batch1[0], matrix.tokens, matrix.seed))
        specs = list(extra_specs(str(ctx_path))) + matrix_rows(replace(matrix, models=models), str(ctx_path), Path(tmp))
        for spec in specs:
            runs = []
            for k in range(repeats):
                if progress is not None:
                    progress(spec.label + (f" ({k + 1}/{repeats})" if repeats > 1 else ""))
                runs.append(run_spec(spec, isolate))
            rows.append(mean_rows(runs))
    return add_ratios(rows + skipped)


# -- output ---------------------------------------------------------------------------------------------

# (key, header, decimals) of the table, markdown and csv columns
COLUMNS = (("name", "configuration", None), ("threads", "thr", 0), ("tokens", "tokens", 0),
           ("tokens_per_s", "tok/s", 0), ("us_per_token_median", "med µs", 1), ("us_per_token_p99", "p99 µs", 1),
           ("bare_us", "bare µs", 1), ("cpu_us_per_token", "cpu µs", 1), ("startup_s", "start s", 3),
           ("peak_rss_mb", "RSS MB", 1), ("x_vs_onnx_int8", "×ort-int8", 2), ("x_vs_upstream", "×upstrm", 1),
           ("x_vs_torch", "×torch", 1), ("x_vs_batch1", "×b1", 2))


def _cell(row: dict, key: str, decimals: Optional[int]) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if decimals is None:
        return str(value)
    text = f"{value:,.{decimals}f}"
    sd = row.get(f"{key}_sd")
    return f"{text} ± {sd:,.{decimals}f}" if sd is not None and row.get("repeats", 1) > 1 else text


def _cells(rows: list) -> tuple:
    """Header and body cells of the columns any row has (errors keep their message in the name column)."""
    cols = [c for c in COLUMNS if c[0] == "name" or any(r.get(c[0]) is not None for r in rows if not r.get("error"))]
    body = [[r["name"], f"error: {r['error']}"] + [""] * (len(cols) - 2) if r.get("error")
            else [_cell(r, k, d) for k, _, d in cols] for r in rows]
    return [h for _, h, _ in cols], body


def format_rows(rows: list, fmt: str = "table") -> str:
    """The rows as an aligned table, a markdown table, csv, a JSON list or JSON lines."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "jsonl":
        return "\n".join(json.dumps(r) for r in rows)
    if fmt not in FORMATS:
        raise BackendError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    head, body = _cells(rows)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(head)
        writer.writerows(body)
        return buf.getvalue().rstrip("\n")
    if fmt == "md":
        lines = [head, ["---"] + ["---:"] * (len(head) - 1), *body]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
                     for cells in [head, *body])


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path, overwrite: bool = False) -> Path:
    """The --plot path, checked before minutes of measuring: an image suffix, a file it may write, matplotlib."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise BackendError(f"--plot {path}: name an image file ending in {', '.join(PLOT_SUFFIXES)}")
    check_writable(path, overwrite)
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise BackendError("--plot needs matplotlib, which is not installed here: pip install matplotlib") from exc
    return path


def plot_rows(rows: list, path, overwrite: bool = False, title: str = "pxby-edge bench") -> Path:
    """Bar chart of tokens/s per row (± one standard deviation), one bar group per batch; written atomically."""
    path = check_plot_path(path, overwrite)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r.get("error") and r.get("tokens_per_s")]
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(4, len(ok)) + 1.2))
    colours = {b: f"C{i}" for i, b in enumerate(sorted({r.get("batch", 1) for r in ok}))}
    ax.barh(range(len(ok)), [r["tokens_per_s"] for r in ok], xerr=[r.get("tokens_per_s_sd", 0.0) for r in ok],
            color=[colours[r.get("batch", 1)] for r in ok], capsize=3)
    ax.set_yticks(range(len(ok)), [r["name"] for r in ok], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("tokens/s (mean ± sd)" if any(r.get("repeats", 1) > 1 for r in ok) else "tokens/s")
    ax.set_title(title)
    for batch, colour in colours.items():
        ax.bar(0, 0, color=colour, label=f"batch {batch}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    image = io.BytesIO()  # drawn in memory, then one atomic write under an unpredictable name (no planted link)
    try:
        fig.savefig(image, format=path.suffix.lower()[1:], dpi=110)
    finally:
        plt.close(fig)
    return atomic_write(path, image.getvalue(), overwrite=overwrite)


if __name__ == "__main__":
    sys.exit(_child())


BENCH_ROWS_GROUP = "pxby_edge.bench_rows"  # entry points: name -> a function giving extra RowSpecs


def bench_paths(models, batch_models, batch) -> list:
    """The files to measure (the bundled model when none is named), checked against --batch."""
    from pxby_edge.generate import default_model_path
    from pxby_edge.manifest import read_manifest

    paths = list(models) + list(batch_models)
    if not models:
        paths.insert(0, default_model_path())
    if batch is not None and batch > 1 and not any(read_manifest(p).batch == batch for p in paths):
        raise BackendError(
            f"none of the files is exported at batch {batch}; make one with "
            f"`pxby-edge quantize CKPT -o model_b{batch}.tflite --batch {batch}` and pass it with --batch-model"
        )
    return paths


def torch_rows(vs_torch, tokens, upstream_tokens, threads, seed):
    """The PyTorch rows' specs, or a one-line error naming the extra to install.

    They live with the model they measure (``training/bench_rows.py``) and are declared under the entry-point
    group ``pxby_edge.bench_rows``, so this torch-free package never names the package above it."""
    if vs_torch is None:
        return lambda contexts: []
    import importlib.util

    from pxby_edge.plugins import entry_points

    # torch itself is imported only in the rows' own processes (it would stay in this one's RSS)
    found = entry_points(BENCH_ROWS_GROUP).get("torch")
    if found is None or importlib.util.find_spec("torch") is None:
        raise BackendError("--vs-torch needs PyTorch and the training package: pip install 'pxby-edge[train]'")
    return found.load()(vs_torch, tokens=tokens, upstream_tokens=upstream_tokens, threads=threads, seed=seed)
