"""Training for int4 weights (``train --qat int4``): every weight matrix on the grid the int4 recipe stores.

    python -c "import torch; from training.qat import fake_quant, row_scales; w = torch.randn(3, 8); print(fake_quant(w, 4) - w)"

Why in training: rounding a trained model's matrices to 4 bits afterwards (GPTQ, even with a short
distillation) keeps 89-93 % of its new-token predictions (docs/BENCHMARKS.md); a model whose forward
pass always used its 4-bit matrices has nothing left to lose. The LSTM gate matrices and ``fc`` are
rounded in every forward pass, symmetric per output row, onto q·s with q in [-7, 7] and s = max|w_row| / 7
rounded to bfloat16 (the precision the int4 file keeps its row scales in, ``quantize.recipes``); the
gradient passes the rounding unchanged (straight-through estimator), so the float weights underneath
keep moving in steps smaller than the grid.

The checkpoint a QAT run writes holds the *rounded* matrices (``snap``): its float model is exactly the
model that was trained and validated, and the int4 recipe finds every row already on its grid, so the
int4 file computes what the checkpoint computes (up to the int8 quantization of activations at run
time). ``last/`` keeps the float weights underneath, so --resume continues where the run was.
The embedding and the biases stay float here; the recipes store the embedding as int8.
"""

from __future__ import annotations

import torch
import torch.nn as nn

QAT_CHOICES = {"none": 0, "int4": 4}  # --qat → TrainConfig.qat_bits


def qmax_of(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def row_scales(w: torch.Tensor, bits: int) -> torch.Tensor:
    """max|w_row| / qmax, rounded to bfloat16 (what the int4 file stores), never 0; (R, 1), no gradient."""
    bound = w.detach().abs().amax(dim=1, keepdim=True).float() / qmax_of(bits)
    return torch.clamp(bound.to(torch.bfloat16).float(), min=torch.finfo(torch.bfloat16).tiny)


def rounded(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` on its per-row grid: q·s with q = clamp(round(w / s), ±qmax).

    Each row's largest weight lands on ±qmax·s (s is that weight over qmax, to bfloat16's 0.4 %), so a
    quantizer that recomputes the scale from the rounded row finds s again.
    """
    s = row_scales(w, bits)
    q = torch.clamp(torch.round(w.float() / s), -qmax_of(bits), qmax_of(bits))
    return (q * s).to(w.dtype)


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``rounded(w)`` in the forward pass, the identity in the backward one (straight-through)."""
    return w + (rounded(w, bits) - w).detach()


def matrix_names(model: nn.Module) -> list[str]:
    """The parameters the recipes store as FULLY_CONNECTED weights: every LSTM gate matrix and ``fc.weight``."""
    return [n for n, p in model.named_parameters()
            if p.dim() == 2 and (n.startswith("sequence_model.weight_") or n == "fc.weight")]


class FakeQuantModel(nn.Module):
    """``model`` whose forward runs on its matrices rounded to ``bits`` (gradients reach the float ones)."""

    def __init__(self, model: nn.Module, bits: int):
        super().__init__()
        self.inner = model
        self.bits = bits
        self.names = matrix_names(model)

    def forward(self, *args, **kwargs):
        import warnings

        from torch.func import functional_call

        params = dict(self.inner.named_parameters())
        swapped = {n: fake_quant(params[n], self.bits) for n in self.names}
        with warnings.catch_warnings():
            # cuDNN's LSTM says so once per call when its weights are not its own flattened buffer, which
            # swapped-in rounded weights never are (it copies them, the cost of rounding in the loop).
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            return functional_call(self.inner, swapped, args, kwargs)


@torch.no_grad()
def snapped(model: nn.Module, bits: int) -> nn.Module:
    """A copy of ``model`` with every matrix replaced by its rounded values (what a QAT checkpoint holds)."""
    import copy

    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    for n in matrix_names(out):
        params[n].copy_(rounded(params[n], bits))
    return out


def on_grid(model: nn.Module, bits: int) -> bool:
    """Whether every matrix of ``model`` already lies on its ``bits`` grid (a QAT checkpoint)."""
    params = dict(model.named_parameters())
    return all(torch.equal(params[n].detach(), rounded(params[n].detach(), bits)) for n in matrix_names(model))
