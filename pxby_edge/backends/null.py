"""A backend with no model: deterministic logits from a seeded table, for tests and loop benchmarks.

    python -c "from pxby_edge.backends.null import NullBackend; b = NullBackend(seed=1); print(b.step([[0]*6]).shape)"

Like PyBoy's null window, it is a real backend (the ``Backend`` contract, a manifest, state, reset)
that does the least: a step looks the lane's 6 context ids up in a fixed random table (so logits
depend on the context only, like a stateless model, and a seed gives the same stream everywhere), or
returns one fixed array (``constant=True``: what is left to measure is the loop around the backend).
``logits_fn`` replaces the table with any function of (contexts, step count) for a test that needs a
model to say something particular.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from pxby_edge.backends.base import Backend, lane_index
from pxby_edge.errors import BackendError
from pxby_edge.manifest import (
    INPUT_C,
    INPUT_CONTEXT,
    INPUT_H,
    OUTPUT_C,
    OUTPUT_H,
    OUTPUT_LOGITS,
    Manifest,
    TensorSpec,
)
from pxby_edge.vocab import Vocab

# Context ids → table row: a fixed mix of the six ids (odd multipliers, so every slot matters).
_MIX = np.array([3, 5, 7, 11, 13, 17], dtype=np.int64)


def null_manifest(batch: int = 1, slots: int = 6, vocab: Optional[Vocab] = None, slicing: Optional[dict] = None,
                  audio_rate: Optional[float] = None, geometry: Optional[dict] = None) -> Manifest:
    """A manifest for a model-less step graph of this batch and slot count (one layer, hidden size 1)."""
    vocab = vocab or Vocab()
    state = (1, batch, 1)
    return Manifest(
        vocab=vocab, slicing=dict(slicing or {"image": 1, "audio": 1}),
        model={"vocab_size": vocab.size, "hidden_size": 1, "num_layers": 1},
        objective="autoregressive" if slots == 6 else "predict", batch=batch, recipe="float", slots=slots,
        inputs=(TensorSpec(INPUT_CONTEXT, INPUT_CONTEXT, 0, (batch, 6), "int32"),
                TensorSpec(INPUT_H, INPUT_H, 1, state, "float32"), TensorSpec(INPUT_C, INPUT_C, 2, state, "float32")),
        outputs=(TensorSpec(OUTPUT_LOGITS, OUTPUT_LOGITS, 3, (batch, slots, vocab.size), "float32"),
                 TensorSpec(OUTPUT_H, OUTPUT_H, 4, state, "float32"), TensorSpec(OUTPUT_C, OUTPUT_C, 5, state, "float32")),
        audio_rate=audio_rate, geometry=dict(geometry or {}),
    )


class NullBackend(Backend):
    """Logits from a seeded table indexed by the context (see the module docstring)."""

    name = "null"

    @classmethod
    def available(cls) -> bool:
        return True

    def __init__(self, *, batch: int = 1, slots: int = 6, seed: int = 0, rows: int = 4096, scale: float = 3.0,
                 constant: bool = False, logits_fn: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None,
                 manifest: Optional[Manifest] = None, **manifest_fields):
        if slots not in (1, 6):
            raise BackendError(f"slots must be 1 (predict) or 6 (autoregressive), got {slots}")
        if int(batch) < 1 or int(rows) < 1:
            raise BackendError(f"batch and rows must be >= 1, got batch {batch}, rows {rows}")
        self._init_common(manifest or null_manifest(int(batch), slots, **manifest_fields), None)
        shape = (int(rows), self.slots, self.vocab_size)
        self.table = (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)
        self.constant = bool(constant)
        self.logits_fn = logits_fn
        self._out = np.empty((self.batch, self.slots, self.vocab_size), dtype=np.float32)
        if self.constant:
            self._out[:] = self.table[np.arange(self.batch) % shape[0]]
        self.steps = np.zeros(self.batch, dtype=np.int64)  # the state: tokens stepped per lane

    def step(self, contexts) -> np.ndarray:
        ctx = self._check_contexts(contexts)
        self.steps += 1
        if self.constant:
            return self._out
        if self.logits_fn is not None:
            return np.asarray(self.logits_fn(ctx, self.steps), dtype=np.float32)
        key = (ctx.astype(np.int64) @ _MIX) % self.table.shape[0]
        return np.take(self.table, key, axis=0, out=self._out)

    def reset(self, lanes=None) -> None:
        self.steps[lane_index(lanes, self.batch)] = 0

    def get_state(self):
        return self.steps.copy()

    def set_state(self, state) -> None:
        state = np.asarray(state, dtype=np.int64)
        if state.shape != self.steps.shape:
            raise BackendError(f"a state of shape {self.steps.shape} was expected, got {state.shape}")
        self.steps = state.copy()


__all__ = ["NullBackend", "null_manifest"]
