"""The streaming step: one 6-token context and the LSTM state in, logits and the next state out.

    python -c "from quantize.source import load_source; from quantize.step import StepModule; print(StepModule(load_source('models/demo').model))"

Upstream generation re-runs the whole prefix per token; the step keeps (h, c) outside the graph so
the runtime can carry it, which is what makes a token cost O(1). ``StepModule`` works on any module
with the upstream attributes (``embedding``, ``sequence_model``, ``fc``), so upstream and our own
checkpoints export the same way, and equals the full-sequence forward run one position at a time.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pxby_edge.manifest import INPUT_NAMES, OUTPUT_NAMES


def model_dims(model: nn.Module) -> dict:
    """vocab_size, pxby_dim, num_layers, hidden_size and slots read from the layers themselves."""
    lstm = model.sequence_model
    vocab = model.embedding.num_embeddings
    out = model.fc.out_features
    if out % vocab:
        raise ValueError(f"fc has {out} outputs, not a multiple of the vocabulary ({vocab})")
    emb = model.embedding.embedding_dim
    return {
        "vocab_size": vocab,
        "pxby_dim": lstm.input_size // emb,
        "num_layers": lstm.num_layers,
        "hidden_size": lstm.hidden_size,
        "slots": out // vocab,  # 6 for autoregressive (the whole next context), 1 for predict
        "bidirectional": bool(lstm.bidirectional),
    }


class StepModule(nn.Module):
    """context (B, 6) int32, h0 and c0 (L, B, H) → logits (B, slots, V), h1, c1."""

    def __init__(self, model: nn.Module):
        super().__init__()
        dims = model_dims(model)
        if dims["bidirectional"]:
            raise ValueError("a bidirectional LSTM cannot step one token at a time")
        self.embedding = model.embedding
        self.sequence_model = model.sequence_model
        self.fc = model.fc
        self.vocab_size = dims["vocab_size"]
        self.slots = dims["slots"]
        self.num_layers = dims["num_layers"]
        self.hidden_size = dims["hidden_size"]
        self.pxby_dim = dims["pxby_dim"]

    def forward(self, context: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
        b = context.shape[0]
        x = self.embedding(context).reshape(b, 1, -1)  # (B, 1, 6·E/6)
        y, (h1, c1) = self.sequence_model(x, (h0, c0))  # y (B, 1, H)
        logits = self.fc(y[:, 0]).reshape(b, self.slots, self.vocab_size)  # (B, slots, V)
        return logits, h1, c1

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.num_layers, batch, self.hidden_size)
        return torch.zeros(shape), torch.zeros(shape)

    def sample_inputs(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """Example inputs by signature name (the shapes and dtypes the exported graph is fixed to)."""
        h, c = self.initial_state(batch)
        return dict(zip(INPUT_NAMES, (torch.ones(batch, self.pxby_dim, dtype=torch.int32), h, c)))


class NamedStep(nn.Module):
    """The step with keyword inputs and a dict of outputs, so the TFLite signature carries the names."""

    def __init__(self, step: StepModule):
        super().__init__()
        self.step = step

    def forward(self, context, h0, c0):
        return dict(zip(OUTPUT_NAMES, self.step(context, h0, c0)))
