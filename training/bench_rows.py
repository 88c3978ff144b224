"""The PyTorch rows of ``pxby-edge bench --vs-torch``: how upstream-style and kept-state torch generate.

    pxby-edge bench --vs-torch CKPT_DIR --tokens 1000

The bench harness (``pxby_edge.bench``) is torch-free; it runs each row in its own process through the
function the row names, so these rows are imported only in that process and only when asked for:
- ``torch``: PyTorch fp32 with the LSTM state kept, one ``model.step`` per token;
- ``upstream``: PyTorch fp32 re-running the whole prefix for every token, as the reference
  implementation generates.
"""

from __future__ import annotations

import time

import numpy as np

from pxby_edge.bench import RowSpec, latency_row

RUNNERS = {"torch": "training.bench_rows:row_torch", "upstream": "training.bench_rows:row_upstream"}


def torch_specs(checkpoint, *, tokens: int, upstream_tokens: int, threads: int, seed: int = 0):
    """``extra_specs`` for ``pxby_edge.bench.bench``: the upstream-style row, then the kept-state one."""

    def specs(contexts: str) -> list:
        return [RowSpec("upstream", str(checkpoint), "torch", threads, min(upstream_tokens, tokens), contexts, seed,
                        label="upstream-style (re-run prefix, torch fp32)", recipe="fp32", runner=RUNNERS["upstream"]),
                RowSpec("torch", str(checkpoint), "torch", threads, tokens, contexts, seed,
                        label="torch fp32, kept state", recipe="fp32", runner=RUNNERS["torch"])]

    return specs


def _torch_model(spec: RowSpec):
    import torch

    from training.checkpoint import load_checkpoint

    torch.set_num_threads(spec.threads)
    return torch, load_checkpoint(spec.model, streamable=True)


def _timed(ids_len: int, call) -> tuple:
    """Per-token nanoseconds and CPU µs per token of ``call(t)`` for t in 1..ids_len-1."""
    perf, times = time.perf_counter_ns, []
    cpu0 = time.thread_time_ns()
    for t in range(1, ids_len):
        s = perf()
        call(t)
        times.append(perf() - s)
    return times, (time.thread_time_ns() - cpu0) / 1e3 / max(1, len(times))


def row_torch(spec: RowSpec, t_start: float) -> dict:
    contexts = np.load(spec.contexts)[: spec.tokens + 1]
    t0 = time.perf_counter()
    torch, model = _torch_model(spec)
    ids = torch.as_tensor(contexts.astype(np.int64))
    state = [None]
    with torch.no_grad():
        _, state[0] = model.step(ids[0:1])
        startup = time.perf_counter() - t0

        def one(t):
            _, state[0] = model.step(ids[t:t + 1], state[0])

        times, cpu_us = _timed(len(ids), one)
    row = latency_row(times, 1)
    row.update(kind="torch", backend="torch", recipe="fp32", batch=1, startup_s=startup, model=str(spec.model),
               cpu_us_per_token=cpu_us)
    return row


def row_upstream(spec: RowSpec, t_start: float) -> dict:
    contexts = np.load(spec.contexts)[: spec.tokens + 1]
    t0 = time.perf_counter()
    torch, model = _torch_model(spec)
    ids = torch.as_tensor(contexts.astype(np.int64))[None]  # (1, T, 6)
    with torch.no_grad():
        model(ids[:, :1])
        startup = time.perf_counter() - t0
        # the reference re-runs the whole prefix for each new token
        times, cpu_us = _timed(ids.shape[1], lambda t: model(ids[:, : t + 1]))
    row = latency_row(times, 1)
    row.update(kind="upstream", backend="torch", recipe="fp32", batch=1, startup_s=startup, model=str(spec.model),
               cpu_us_per_token=cpu_us)
    return row
