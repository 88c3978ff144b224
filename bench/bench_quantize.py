"""Every quantization recipe on one checkpoint: size, fidelity and ai-edge-litert speed per step.

    python bench/bench_quantize.py models/demo --json bench_quantize.json

Exports the float step once, calibrates once (and rounds the weights with GPTQ once, when a rounding
asks for it), then quantizes with each recipe and rounding and measures, on the
same held-out synthetic stream, what ``pxby-edge quantize`` reports, plus the time of one step through
ai-edge-litert on 1 thread: bare ``invoke()`` and with naive numpy I/O (set context and state,
quantizing state where the file wants integers, invoke, read and dequantize logits and state).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def step_speed(model: bytes, contexts: np.ndarray, n: int = 2000, repeats: int = 5) -> dict:
    """Median (and minimum) of ``repeats`` runs of ``n`` steps, in µs per step."""
    from quantize.fidelity import TFLiteStep

    s = TFLiteStep(model, threads=1)
    it = s.interp
    ctx = np.broadcast_to(contexts[0], (s.batch, contexts.shape[-1]))
    s.step(ctx)
    bare, io = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            it.invoke()
        bare.append((time.perf_counter() - t) / n * 1e6)
        s.reset()
        t = time.perf_counter()
        for k in range(n):
            s.step(np.broadcast_to(contexts[k % len(contexts)], (s.batch, contexts.shape[-1])))
        io.append((time.perf_counter() - t) / n * 1e6)
    # Median for the table; the minimum too, the better figure on a shared, noisy machine.
    return {"us_per_step_bare": float(np.median(bare)), "us_per_step_io": float(np.median(io)),
            "us_per_step_bare_min": float(np.min(bare)), "us_per_step_io_min": float(np.min(io))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--recipes", default="int8,dynamic,int4,mixed")
    ap.add_argument("--ranges", default="minmax", help="calibrated ranges: minmax or percentile (quantize/recipes.py)")
    ap.add_argument("--roundings", default="gptq,nearest", help="weight roundings to compare (quantize/rounding.py)")
    ap.add_argument("--calib-steps", type=int, default=256)
    ap.add_argument("--eval-steps", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--speed-steps", type=int, default=2000)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)

    import torch

    from quantize.calibrate import EVAL_SEED, calibration_samples, load_streams, synthetic_streams
    from quantize.export import export_tflite
    from quantize.fidelity import eval_stream, fidelity_report
    from quantize.recipes import quantize_tflite, weight_bits
    from quantize.rounding import check_weights, gptq_weights, replace_weights
    from quantize.source import load_source
    from quantize.step import StepModule

    torch.set_num_threads(1)
    src = load_source(args.checkpoint)
    slicing = src.slicing
    step = StepModule(src.model).eval()
    cal = load_streams(None, slicing)
    samples, _ = calibration_samples(step, cal, args.calib_steps, args.batch)
    contexts = eval_stream(synthetic_streams(2, slicing, EVAL_SEED), args.eval_steps)
    t = time.perf_counter()
    float_bytes = export_tflite(step, args.batch)
    export_s = time.perf_counter() - t
    rows = []
    float_speed = step_speed(float_bytes, contexts, args.speed_steps)
    base = fidelity_report(src.model, float_bytes, float_bytes, contexts)
    rows.append({"recipe": "float", "bytes": len(float_bytes), "size_ratio": 1.0, "convert_seconds": export_s,
                 **{k: base[k] for k in ("new_token_accuracy_float", "all_slot_accuracy_float")},
                 "new_token_accuracy_quant": base["new_token_accuracy_quant"],
                 "all_slot_accuracy_quant": base["all_slot_accuracy_quant"],
                 "new_token_top1_agreement": base["new_token_top1_agreement"], "mean_kl": base["mean_kl"],
                 "state_cosine_4096": base["state_cosine_4096"], **float_speed})
    roundings = args.roundings.split(",")
    gptq: dict = {}  # bits -> (rounded, seconds, patched float file): int4 and the int8 recipes round apart

    def rounded_for(bits: int):
        if bits not in gptq:
            t = time.perf_counter()
            rounded = gptq_weights(src.model, cal.streams, bits=bits)
            state = src.model.state_dict()
            gptq[bits] = (rounded, time.perf_counter() - t,
                          replace_weights(float_bytes, {k: state[k].numpy() for k in rounded.ints},
                                          {k: rounded.weights(k) for k in rounded.ints}))
        return gptq[bits]

    for recipe in args.recipes.split(","):
        for rounding in roundings:
            t = time.perf_counter()
            rounding_s = 0.0
            if rounding == "gptq":
                rounded, rounding_s, patched = rounded_for(weight_bits(recipe))
                q = quantize_tflite(patched, recipe, samples, pre_rounded=True, ranges=args.ranges)
                check_weights(q, rounded)
            else:
                q = quantize_tflite(float_bytes, recipe, samples, ranges=args.ranges)
            q_s = time.perf_counter() - t + rounding_s
            fid = fidelity_report(src.model, float_bytes, q, contexts)
            name = recipe if len(roundings) == 1 else f"{recipe} ({rounding})"
            rows.append({"recipe": name, "rounding": rounding, "bytes": len(q), "size_ratio": len(q) / len(float_bytes),
                         "convert_seconds": export_s + q_s, **fid, **step_speed(q, contexts, args.speed_steps)})
            print(f"{name}: done", file=sys.stderr)

    cfg = src.config
    print(f"checkpoint {args.checkpoint}: E={cfg.get('embed_size')} H={cfg.get('hidden_size')} "
          f"L={cfg.get('num_layers')} {src.objective}; eval {len(contexts)} teacher-forced steps; "
          f"calib {args.calib_steps} ({args.ranges} ranges); batch {args.batch}; ai-edge-litert 1 thread")
    print("| recipe | bytes | ratio | new-token acc float → quant | drop (pts) | all-slot acc quant | "
          "new-token top-1 agree | mean KL | state cos 4096 | convert s | µs/step bare (min) | µs/step with I/O (min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        drop = 100 * (r["new_token_accuracy_float"] - r["new_token_accuracy_quant"])
        print(f"| {r['recipe']} | {r['bytes']:,} | {r['size_ratio']:.3f} | {r['new_token_accuracy_float']:.4f} → "
              f"{r['new_token_accuracy_quant']:.4f} | {drop:+.2f} | {r['all_slot_accuracy_quant']:.4f} | "
              f"{r['new_token_top1_agreement']:.4f} | {r['mean_kl']:.5f} | {r['state_cosine_4096']:.5f} | "
              f"{r['convert_seconds']:.1f} | {r['us_per_step_bare']:.1f} ({r['us_per_step_bare_min']:.1f}) | "
              f"{r['us_per_step_io']:.1f} ({r['us_per_step_io_min']:.1f}) |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
