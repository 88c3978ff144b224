"""Quantization-aware fine-tuning of the weight matrices on the calibration streams (``quantize --qat-steps N``).

    python -c "from quantize.qat import fake_quant; import torch; print(fake_quant(torch.randn(2, 4), torch.ones(2) / 7, torch.zeros(2, 4), 7))"

When rounding alone (GPTQ) loses too much, which it does at 4 bits on our models, the matrices are
trained a little with their rounding in the loop: the forward pass uses the rounded weights q·s, the
gradient passes through the rounding unchanged (straight-through estimator), and the loss is the KL
divergence from the original float model's next-token distributions (distillation: no labels needed, the
float model is the reference the fidelity report measures against). Windows are teacher-forced, each
starting from the float model's own state at that position, as ``quantize.calibrate`` computes it.

Only the FULLY_CONNECTED matrices move, on the row scales the rounding chose (so the quantizer keeps
our integers); biases and the embedding stay as they are, since ``quantize.rounding.replace_weights``
finds the matrices in the float file by content and the lowered biases are not the checkpoint's.
"""

from __future__ import annotations

import numpy as np

from quantize.rounding import Rounded, max_pins, qmax_for

QAT_WINDOW = 128  # positions per window
QAT_BATCH = 8  # windows per step
QAT_LR = 1e-3  # Adam, on the weights: 200 steps took the demo int4 file from 89.6 to 90.9 % (1e-4: 90.0 %)
QAT_SEED = 0


def fake_quant(w, scale, pinned, qmax: int):
    """w rounded onto the per-row grid ``scale`` (``pinned`` entries, a signed (R, C) mask of ±1 and 0, held at
    ±qmax: each row's largest weight, as quantize.rounding pins it), gradient straight through."""
    import torch

    s = scale[:, None]
    q = torch.clamp(torch.round(w / s), -qmax, qmax)
    q = torch.where(pinned != 0, qmax * pinned, q)
    return w + (q * s - w).detach()


def _windows(model, streams: list, window: int):
    """(contexts (N, W, 6), h0 (L, N, H), c0 (L, N, H)): every whole window of the streams, with the float
    model's state before its first position."""
    import torch

    from quantize.calibrate import lstm_states

    ctx, hs, cs = [], [], []
    for s in streams:
        s = np.asarray(s, np.int32)
        if len(s) < window:
            continue
        h, c = lstm_states(model, s)
        for start in range(0, len(s) - window + 1, window):
            ctx.append(s[start:start + window])
            hs.append(h[start])
            cs.append(c[start])
    if not ctx:
        raise ValueError(f"no calibration stream is {window} positions long; QAT needs longer items")
    return (torch.as_tensor(np.stack(ctx), dtype=torch.long), torch.as_tensor(np.stack(hs, 1)),
            torch.as_tensor(np.stack(cs, 1)))


def qat_round(model, streams: list, rounded: Rounded, steps: int, *, lr: float = QAT_LR, window: int = QAT_WINDOW,
              batch: int = QAT_BATCH, seed: int = QAT_SEED) -> Rounded:
    """``rounded`` (its scales and pins kept) with integers from ``steps`` of fine-tuning; the model is not changed."""
    import torch
    from torch.func import functional_call

    qmax = qmax_for(rounded.bits)
    names = sorted(rounded.ints)
    params = dict(model.named_parameters())
    start = {n: torch.as_tensor(rounded.weights(n)) for n in names}  # from GPTQ's integers, not the float weights
    train = {n: start[n].clone().requires_grad_(True) for n in names}
    scales = {n: torch.as_tensor(rounded.scales[n]) for n in names}
    pins_np = {n: max_pins(params[n].detach().numpy()) * np.sign(params[n].detach().numpy()) for n in names}
    pins = {n: torch.as_tensor(p, dtype=torch.float32) for n, p in pins_np.items()}
    fixed = {n: p.detach() for n, p in params.items() if n not in names}
    ctx, h0, c0 = _windows(model, streams, window)
    vocab = model.embedding.num_embeddings
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(train.values(), lr=lr)

    def logits(weights, x, h, c):
        b, t, _ = x.shape
        e = torch.nn.functional.embedding(x, weights["embedding.weight"]).reshape(b, t, -1)
        lstm = {k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith("sequence_model.")}
        y, _ = functional_call(model.sequence_model, lstm, (e, (h.contiguous(), c.contiguous())))
        return torch.nn.functional.linear(y, weights["fc.weight"], weights.get("fc.bias")).reshape(b, t, -1, vocab)

    losses = []
    for _ in range(steps):
        pick = torch.as_tensor(rng.integers(0, len(ctx), size=batch))
        x, h, c = ctx[pick], h0[:, pick], c0[:, pick]
        with torch.no_grad():
            teacher = logits({**fixed, **{n: params[n].detach() for n in names}}, x, h, c).log_softmax(-1)
        student = logits({**fixed, **{n: fake_quant(train[n], scales[n], pins[n], qmax) for n in names}}, x, h, c)
        loss = (teacher.exp() * (teacher - student.log_softmax(-1))).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    out = Rounded(scales=dict(rounded.scales), bits=rounded.bits)
    for n in names:
        w = train[n].detach().numpy().astype(np.float64)
        s = rounded.scales[n].astype(np.float64)[:, None]
        q = np.clip(np.rint(w / s), -qmax, qmax)
        q = np.where(pins_np[n] != 0, qmax * pins_np[n], q)
        out.ints[n] = q.astype(np.int32)
    out.summary = {**rounded.summary, "qat": {"steps": steps, "lr": lr, "window": window, "batch": batch,
                                              "windows": len(ctx), "kl_first": losses[0] if losses else None,
                                              "kl_last": losses[-1] if losses else None}}
    return out
