"""How far post-training rounding gets a float-trained checkpoint at 4 bits (and 5, 6, 8), in PyTorch.

    .venv/bin/python bench/bench_int4_ceiling.py CKPT --qat-steps 1000

The same streams as ``pxby-edge quantize``'s report (calibration: synthetic items at CALIB_SEED, 4 items;
evaluation: 4,096 teacher-forced steps of 2 items at EVAL_SEED). The rounded matrices are put into a copy
of the model and run as a whole stream from a zero state (the report's int4 file agrees with this within
0.1 point: its activations are quantized on the fly as well). Rows:

- GPTQ at 8, 6, 5 and 4 bits (``quantize.rounding.gptq_weights``: per row, clipped scales below 8 bits);
- nearest rounding at 4 bits per row, per block of 32 and of 8 columns (each block its own max-abs scale);
- GPTQ int4 with the float model's state put back before every step (the error of one step alone);
- with ``--qat-steps N``: GPTQ int4 then N steps of quantize-time distillation (``quantize.qat.qat_round``,
  what ``quantize --qat-steps`` runs) on ``--qat-items`` calibration items.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MATRICES = ("sequence_model.weight_ih_l0", "sequence_model.weight_hh_l0", "sequence_model.weight_ih_l1",
            "sequence_model.weight_hh_l1", "fc.weight")


def with_weights(model, weights: dict):
    import torch

    out = copy.deepcopy(model)
    state = out.state_dict()
    for name, w in weights.items():
        state[name] = torch.as_tensor(np.asarray(w, np.float32))
    out.load_state_dict(state)
    return out


def nearest_blocks(w: np.ndarray, bits: int, block: int) -> np.ndarray:
    """Round to nearest on a symmetric grid per block of ``block`` columns (max-abs scale per block)."""
    qmax = (1 << (bits - 1)) - 1
    out = np.empty_like(w)
    for j in range(0, w.shape[1], block):
        part = w[:, j:j + block]
        s = np.abs(part).max(axis=1, keepdims=True) / qmax + 1e-12
        out[:, j:j + block] = np.clip(np.rint(part / s), -qmax, qmax) * s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--qat-steps", type=int, default=0)
    ap.add_argument("--qat-items", type=int, default=32)
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()

    import torch

    from quantize.calibrate import CALIB_SEED, EVAL_SEED, lstm_states, synthetic_streams
    from quantize.fidelity import compare, eval_stream, torch_reference
    from quantize.qat import qat_round
    from quantize.rounding import gptq_weights
    from quantize.source import load_source

    torch.manual_seed(0)
    src = load_source(a.checkpoint)
    model = src.model.eval()
    cal = synthetic_streams(4, src.slicing, CALIB_SEED)
    contexts = eval_stream(synthetic_streams(2, src.slicing, EVAL_SEED), 4096)
    ref = torch_reference(model, contexts)[0]
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    rows = []

    def row(name: str, logits: np.ndarray) -> None:
        c = compare(ref, logits)
        rows.append({"weights": name, "new_token_top1_agreement": c["new_token_top1_agreement"],
                     "mean_kl_new_token": c["mean_kl_new_token"]})
        print(f"{name:<58} {c['new_token_top1_agreement']:.2%}  KL {c['mean_kl_new_token']:.5f}", flush=True)

    def run(weights: dict) -> np.ndarray:
        return torch_reference(with_weights(model, weights), contexts)[0]

    int4 = None
    for bits in (8, 6, 5, 4):
        r = gptq_weights(model, cal, bits=bits)
        weights = {k: r.weights(k) for k in r.ints}
        row(f"GPTQ int{bits}", run(weights))
        if bits == 4:
            int4 = (r, weights)
    for block, label in ((None, "per row"), (32, "blocks of 32"), (8, "blocks of 8")):
        weights = {n: nearest_blocks(sd[n], 4, block or sd[n].shape[1]) for n in MATRICES}
        row(f"nearest int4, {label}", run(weights))

    # One step alone: the GPTQ int4 model from the float model's (h, c) before every position.
    h, c = lstm_states(model, contexts)
    quant = with_weights(model, int4[1])
    vocab = model.embedding.num_embeddings
    with torch.no_grad():
        x = quant.embedding(torch.as_tensor(contexts, dtype=torch.long)).reshape(len(contexts), 1, -1)
        h0 = torch.as_tensor(np.ascontiguousarray(h.transpose(1, 0, 2)))
        c0 = torch.as_tensor(np.ascontiguousarray(c.transpose(1, 0, 2)))
        y, _ = quant.sequence_model(x, (h0, c0))  # every position a batch lane of one step
        reset = quant.fc(y[:, 0]).reshape(len(contexts), -1, vocab).numpy()
    row("GPTQ int4, float state put back before every step", reset)

    if a.qat_steps:
        items = synthetic_streams(a.qat_items, src.slicing, CALIB_SEED)
        tuned = qat_round(model, items, int4[0], a.qat_steps)
        row(f"GPTQ int4 + {a.qat_steps} quantize-time QAT steps ({a.qat_items} items)",
            run({k: tuned.weights(k) for k in tuned.ints}))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
