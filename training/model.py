"""The PixelBytes sequence model in plain PyTorch: the same parameters and forward as upstream.

    python -c "import torch; from training.model import PixelBytesLSTM; from training.config import ModelConfig; m = PixelBytesLSTM(ModelConfig()); print(m.num_parameters(), m(torch.zeros(1, 5, 6, dtype=torch.long)).shape)"

Embedding(V, E//6, padding_idx=0) → the six context embeddings side by side → LSTM(H, L) → Linear.
Objective ``autoregressive`` predicts the whole next context (6 × V logits), ``predict`` only the
label (V logits). State-dict keys are upstream's (``embedding.weight``, ``sequence_model.*``, ``fc.*``),
so weights move between the two implementations unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from training.config import ModelConfig
from training.errors import CheckpointError


class PixelBytesLSTM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.pxby_emb, padding_idx=0)
        self.sequence_model = nn.LSTM(
            c.pxby_emb * c.pxby_dim, c.hidden_size, c.num_layers, bidirectional=c.bidirection, batch_first=True
        )
        n_out = c.vocab_size * (1 if c.objective == "predict" else c.pxby_dim)
        self.fc = nn.Linear(c.hidden_size * (1 + int(c.bidirection)), n_out)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _head(self, out: torch.Tensor) -> torch.Tensor:
        logits = self.fc(out)  # (B, T, 6V) or (B, T, V)
        if self.config.objective == "predict":
            return logits
        return logits.view(out.shape[0], out.shape[1], self.config.pxby_dim, -1)  # (B, T, 6, V)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, m: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, 6) ids → logits (B, T, 6, V) (autoregressive, diffusion) or (B, T, V) (predict)."""
        b, n, _ = x.shape
        emb = self.embedding(x).view(b, n, -1)  # (B, T, 6·E/6)
        if self.config.objective == "diffusion":
            # Upstream's noising, kept so diffusion checkpoints can be inspected; they never stream.
            steps = self.config.num_diffusion_steps
            if t is None:
                t = torch.randint(0, steps + 1, (b,), device=x.device)
            if m is None:
                m = torch.randint(0, 2, (b, n), device=x.device).unsqueeze(-1)
            alpha = torch.cos(t / steps * math.pi / 2)[:, None, None]
            emb = torch.where(m == 1, emb, (1 - alpha) * torch.randn_like(emb) + alpha * emb)
        out, _ = self.sequence_model(emb)  # (B, T, H·dirs)
        return self._head(out)

    def initial_state(self, batch: int = 1, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Zeros (h, c), each (L, B, H): the state a stream starts from, as in training windows."""
        shape = (self.config.num_layers, batch, self.config.hidden_size)
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)

    def step(self, ctx: torch.Tensor, state=None):
        """One token: ctx (B, 6) ids, state (h, c) or None → (logits (B, 6, V) or (B, V), new state).

        Equal to running ``forward`` over the whole prefix and keeping its last position.
        """
        ensure_streamable(self)
        b = ctx.shape[0]
        emb = self.embedding(ctx).view(b, 1, -1)  # (B, 1, 6·E/6)
        out, state = self.sequence_model(emb, state)
        return self._head(out)[:, 0], state


def ensure_streamable(model, where: str = "this checkpoint"):
    """``model`` (a PixelBytesLSTM or its ModelConfig), if it can generate one token at a time with a kept
    state; else CheckpointError naming ``where``."""
    c = getattr(model, "config", model)
    if c.bidirection:
        raise CheckpointError(
            f"{where} is bidirectional: its LSTM reads the future, so it cannot stream token by token; "
            "train a unidirectional model (bidirection false) for generation"
        )
    if c.objective == "diffusion":
        raise CheckpointError(
            f"{where} was trained with the diffusion objective, which does not stream; "
            "use an autoregressive (or predict) checkpoint"
        )
    return model
