"""Training speed, fairly: our loop against the upstream-style loop, same model, data, batch and sequence.

    python bench/bench_train.py --config tiny                       # CPU: tokens/s at batch 32 and 256
    python bench/bench_train.py --config upstream --device cuda --json
    python bench/bench_train.py --config upstream --ours-config upstream-batch256 --batches "" \\
        --to-accuracy 0.75 --data runs/synth600 --budget-s 240

Tokens/s: both loops train a fresh model from the same seed on the same windows (``--config``'s model,
sequence length and stride, batch from ``--batches``). Each first takes ``--warmup`` steps, alternating,
so cuDNN set-up and caches cost neither; then ``--rounds`` timed segments alternate ours, upstream,
ours, ... each loop running until it has ``--min-steps`` steps or ``--min-seconds`` seconds in all
(whichever comes first). A segment is timed from a device sync to a device sync and counts real
(unpadded) positions. Ours is ``training.train.TrainingRun`` stepping exactly as ``pxby-edge train`` does
(no validation inside the timed steps); upstream is ``training.upstream_loop.UpstreamLoop``.

``--to-accuracy A``: after ``--warmup`` steps of throw-away copies of both (one-time set-up costs neither),
both loops train from fresh weights (ours with ``--ours-config``, e.g. a larger batch; the reference with
``--config``), in chunks of about ``--eval-tokens`` tokens taken in turn; after each
chunk the same code (``training.train.evaluate``) measures held-out new-token accuracy on the same
held-out windows. Reported: training seconds (validation excluded), steps and tokens until accuracy
reached A, or the budget ran out.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from training.batches import DeviceWindows  # noqa: E402
from training.config import TrainConfig, load_preset  # noqa: E402
from training.data import Windows  # noqa: E402
from training.model import PixelBytesLSTM  # noqa: E402
from training.train import TrainingRun, evaluate, setup_runtime  # noqa: E402
from training.upstream_loop import UpstreamLoop  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Ours:
    """Our trainer, driven step by step (the same ``train_step`` as ``pxby-edge train``)."""

    def __init__(self, data, model_cfg, cfg, device: str, amp: str, cache_dir: Path, work: Path,
                 cuda_graph: bool | None = None):
        self.rt = setup_runtime(device, amp)
        self.run = TrainingRun(data, work, model_cfg, cfg, self.rt, log=lambda *_: None, cuda_graph=cuda_graph)
        self.name = "ours_graph" if self.run.cuda_graph else "ours"
        self.run.setup(cache_dir=cache_dir)
        self.run.start_steps()
        self.groups = self.run.step_groups()
        self.model = self.run.raw_model
        self.tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.seq_len
        self.precision = str(self.rt.amp_dtype).replace("torch.", "") if self.rt.amp_dtype else "float32"

    def pause(self, seconds: float) -> None:
        """The bench's own validation is not training time: a wall-clock schedule must not see it."""
        self.run.t0 += seconds

    def steps(self, n: int) -> int:
        """``n`` optimizer steps; the real positions trained on (reading them back waits for the device)."""
        before = int(self.run.positions)
        for _ in range(n):
            self.run.train_step(next(self.groups))
        return int(self.run.positions) - before


class Upstream:
    """The upstream-style loop on the same model config, seed, training split, batch and sequence."""

    name = "upstream"

    def __init__(self, streams, model_cfg, cfg, device: torch.device, precision: str):
        torch.manual_seed(cfg.seed)
        self.model = PixelBytesLSTM(model_cfg)
        self.loop = UpstreamLoop(self.model, streams, cfg.batch_size, cfg.seq_len, cfg.stride, lr=cfg.lr,
                                 device=device, use_scaler=precision == "float16", seed=cfg.seed)
        self.tokens_per_step = cfg.batch_size * cfg.seq_len
        self.precision = precision

    def pause(self, seconds: float) -> None:
        """Upstream's schedule is a constant learning rate: nothing follows the clock."""

    def steps(self, n: int) -> int:
        return self.loop.run(n)


def timed(loop, n: int, device: torch.device) -> tuple[int, float]:
    _sync(device)
    t0 = time.perf_counter()
    tokens = loop.steps(n)
    _sync(device)
    return tokens, time.perf_counter() - t0


def throughput(loops, args, device: torch.device) -> dict:
    """Warm both alike, then alternate timed segments; tokens/s over all segments of each loop. A loop that
    fails (e.g. a CUDA graph that cannot be captured) is reported with its error and left out."""
    failed = {}

    def attempt(loop, n):
        if loop.name in failed:
            return None
        try:
            return timed(loop, n, device)
        except RuntimeError as exc:
            failed[loop.name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            return None

    half = max(1, args.warmup // 2)
    rest = max(1, args.warmup - half)
    for loop in loops:  # warm-up: the second half estimates the step time
        attempt(loop, half)
    est = {}
    for loop in loops:
        got = attempt(loop, rest)
        if got:
            est[loop.name] = got[1] / rest
    per_round = {}
    for name, step_s in est.items():
        by_steps = math.ceil(args.min_steps / args.rounds)
        by_time = math.ceil(args.min_seconds / args.rounds / step_s) if args.min_seconds else by_steps
        per_round[name] = max(1, min(by_steps, by_time))
    seg = {loop.name: [] for loop in loops}
    for _ in range(args.rounds):
        for loop in loops:
            got = attempt(loop, per_round.get(loop.name, 1))
            if got:
                seg[loop.name].append(got)
    out = dict(failed)
    for loop in loops:
        if loop.name in failed:
            continue
        tokens = sum(t for t, _ in seg[loop.name])
        seconds = sum(s for _, s in seg[loop.name])
        out[loop.name] = {
            "tokens_per_s": tokens / seconds, "steps": per_round[loop.name] * args.rounds, "seconds": seconds,
            "rounds_tokens_per_s": [t / s for t, s in seg[loop.name]], "precision": loop.precision,
        }
    return out


def time_to_accuracy(loops, target: float, args, val_b, rt) -> dict:
    """Train each loop in turn by chunks of about ``--eval-tokens``; the same evaluation after each chunk."""
    eval_cfg = replace(load_preset(args.config)[1], batch_size=args.eval_batch)
    state = {loop.name: {"seconds": 0.0, "steps": 0, "tokens": 0, "curve": [], "reached": False} for loop in loops}
    active = list(loops)
    while active:
        for loop in list(active):
            st = state[loop.name]
            chunk = max(1, round(args.eval_tokens / loop.tokens_per_step))
            try:
                tokens, seconds = timed(loop, chunk, rt.device)
            except StopIteration:  # our schedule ended before the budget
                active.remove(loop)
                continue
            st["seconds"] += seconds
            st["steps"] += chunk
            st["tokens"] += tokens
            t_eval = time.perf_counter()
            acc = evaluate(loop.model, val_b, eval_cfg, rt, None)["val_acc_new"]
            loop.pause(time.perf_counter() - t_eval)
            st["curve"].append([st["steps"], round(st["seconds"], 3), round(acc, 4)])
            if acc >= target or st["seconds"] >= args.budget_s:
                st["reached"] = acc >= target
                st["accuracy"] = acc
                active.remove(loop)
    for loop in loops:
        state[loop.name]["precision"] = loop.precision
    up = state["upstream"]
    ratios = {loop.name: state[loop.name]["seconds"] / up["seconds"] for loop in loops
              if loop.name != "upstream" and state[loop.name]["reached"] and up["reached"]}
    if loops[0].name in ratios:
        state["time_ratio"] = ratios[loops[0].name]
    state["time_ratios"] = ratios
    return state


def _configs(args):
    model_cfg, cfg = load_preset(args.config)
    if args.seq_len:
        cfg = replace(cfg, seq_len=args.seq_len, stride=args.seq_len)
    return model_cfg, replace(cfg, num_threads=args.threads)


def _dataset(args, tmp: Path) -> Path:
    if args.data:
        return Path(args.data)
    from training.synth import write_dataset

    return write_dataset(tmp / "synth", args.items, seed=0)


def run_throughput(args, data: Path, tmp: Path) -> list[dict]:
    model_cfg, base = _configs(args)
    cache = Path(args.cache_dir) if args.cache_dir else tmp / "cache"
    rows = []
    for batch in [int(b) for b in args.batches.split(",") if b.strip()]:
        # No held-out split and an endless schedule: only the steps are measured.
        cfg = replace(base, batch_size=batch, grad_accum=1, max_steps=10**9, val_fraction=0.0)
        loops = [Ours(data, model_cfg, cfg, args.device, args.amp, cache, tmp / "ours", _graph(args))]
        up = Upstream(loops[0].run.streams.train, model_cfg, cfg, loops[0].rt.device, _upstream_precision(args))
        loops.append(up)
        res = throughput(loops, args, up.loop.device)
        row = {"batch": batch, "seq_len": cfg.seq_len, "windows_ours": len(loops[0].run.train_b),
               "windows_upstream": len(up.loop.loader.dataset), **res}
        for name in res:
            if name != "upstream" and "error" not in res[name]:
                row[f"ratio_{name}"] = res[name]["tokens_per_s"] / res["upstream"]["tokens_per_s"]
        row["ratio"] = row.get(f"ratio_{loops[0].name}")  # None when our loop failed (its error is in the row)
        rows.append(row)
        del loops, up
        if ours_device_is_cuda(args):
            torch.cuda.empty_cache()
    return rows


def _ours_config(args, preset: str, model_cfg, ref_cfg) -> TrainConfig:
    ours_model, ours_cfg = load_preset(preset)
    # Our schedule follows the training clock over the same budget the reference gets (--max-minutes).
    ours_cfg = replace(ours_cfg, num_threads=args.threads, eval_every=10**9, max_steps=10**9,
                       max_minutes=args.budget_s / 60)
    if args.ours_set:
        ours_cfg = TrainConfig.from_dict({**ours_cfg.to_dict(), **dict(_setting(kv) for kv in args.ours_set)})
    for what, a, b in (("model", ours_model, model_cfg), ("slicing", ours_cfg.slicing, ref_cfg.slicing),
                       ("val_fraction", ours_cfg.val_fraction, ref_cfg.val_fraction),
                       ("seq_len", ours_cfg.seq_len, ref_cfg.seq_len)):
        if a != b:
            raise SystemExit(f"error: --ours-config must keep the {what} of --config ({a} != {b})")
    return ours_cfg


def run_to_accuracy(args, data: Path, tmp: Path) -> dict:
    model_cfg, ref_cfg = _configs(args)
    presets = args.ours_config or [args.config]
    configs = [_ours_config(args, p, model_cfg, ref_cfg) for p in presets]
    cache = Path(args.cache_dir) if args.cache_dir else tmp / "cache"

    def loops(work: Path):
        ours = [Ours(data, model_cfg, c, args.device, args.amp, cache, work / str(k), _graph(args))
                for k, c in enumerate(configs)]
        for k, (loop, preset) in enumerate(zip(ours, presets)):
            loop.name += f":{preset}" if k else ""  # the first keeps the plain name
        if not ours[0].run.streams.val:
            raise SystemExit("error: the dataset has no held-out item; use more items (--items) or --data")
        up = Upstream(ours[0].run.streams.train, model_cfg, ref_cfg, ours[0].rt.device, _upstream_precision(args))
        return [*ours, up]

    if args.warmup:  # throw-away copies take the one-time set-up (CUDA context, libraries, caches) for all
        for loop in loops(tmp / "warm"):
            loop.steps(args.warmup)
        if ours_device_is_cuda(args):
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
    race = loops(tmp / "race")  # fresh weights from the seed, as if the warm-up had not happened
    first = race[0]
    # The held-out windows all are measured on: the split's items, cut at the reference's sequence length.
    val_b = DeviceWindows(Windows(first.run.streams.val, ref_cfg.seq_len, ref_cfg.seq_len, model_cfg.objective),
                          first.rt.device)
    res = time_to_accuracy(race, args.to_accuracy, args, val_b, first.rt)
    res.update(target=args.to_accuracy, held_out_windows=len(val_b), held_out_items=len(first.run.streams.val),
               ours_config={"preset": presets[0], "set": args.ours_set, "batch_size": configs[0].batch_size,
                            "lr": configs[0].lr, "warmup_steps": configs[0].warmup_steps,
                            "pad_weight": configs[0].pad_weight},
               ours_configs={loop.name: {"preset": p, "batch_size": c.batch_size, "lr": c.lr,
                                         "warmup_steps": c.warmup_steps} for loop, p, c in zip(race, presets, configs)},
               upstream_config={"preset": args.config, "batch_size": ref_cfg.batch_size, "lr": ref_cfg.lr,
                                "pad_weight": 1 / 120})
    return res


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"error: --ours-set wants KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _graph(args) -> bool | None:
    return {"auto": None, "graph": True, "eager": False}[args.step]


def ours_device_is_cuda(args) -> bool:
    return args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())


def _upstream_precision(args) -> str:
    if args.upstream_precision != "auto":
        return args.upstream_precision
    return "float16" if ours_device_is_cuda(args) else "float32"


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny", help="preset of the model and the reference's training settings")
    ap.add_argument("--data", help="dataset folder (default: --items synthetic items written to a temp folder)")
    ap.add_argument("--items", type=int, default=400, help="synthetic items when no --data (enough for full batches of 256)")
    ap.add_argument("--cache-dir", help="token cache (default: a temp folder)")
    ap.add_argument("--batches", default="32,256", help="comma-separated batch sizes for tokens/s ('' skips it)")
    ap.add_argument("--seq-len", type=int, default=0, help="contexts per window (default: the preset's)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps per loop before timing")
    ap.add_argument("--rounds", type=int, default=4, help="alternating timed segments per loop")
    ap.add_argument("--min-steps", type=int, default=100)
    ap.add_argument("--min-seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"], help="our loop's precision")
    ap.add_argument("--upstream-precision", default="auto", choices=["auto", "float16", "float32"],
                    help="auto: float16 + GradScaler on CUDA (upstream's best), float32 on CPU")
    ap.add_argument("--to-accuracy", type=float, help="also time both loops to this held-out new-token accuracy")
    ap.add_argument("--ours-config", action="append", default=[],
                    help="preset our loop uses for --to-accuracy (same model; default --config); repeat to race several")
    ap.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one of our training settings for --to-accuracy (repeatable), e.g. pad_weight=0.0083")
    ap.add_argument("--budget-s", type=float, default=600.0, help="training seconds per loop for --to-accuracy")
    ap.add_argument("--eval-tokens", type=float, default=1e6, help="tokens trained between evaluations")
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--step", default="auto", choices=["auto", "graph", "eager"],
                    help="our step: auto (a CUDA graph where it can run, as pxby-edge train), graph, or eager")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = _dataset(args, tmp)
        result = {
            "device": torch.cuda.get_device_name(0) if ours_device_is_cuda(args) else "cpu",
            "torch": torch.__version__, "threads": args.threads, "config": args.config,
            "command": shlex.join(["python", "bench/bench_train.py", *(sys.argv[1:] if argv is None else argv)]),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "throughput": run_throughput(args, data, tmp),
        }
        if args.to_accuracy is not None:
            result["to_accuracy"] = run_to_accuracy(args, data, tmp)
    if args.json:
        print(json.dumps(result))
    else:
        print(report(result))
    return result


def report(result: dict) -> str:
    lines = [f"{result['device']}, torch {result['torch']}, config {result['config']}"]
    for r in result["throughput"]:
        for name in ("ours", "ours_graph", "upstream"):
            if name in r and "error" in r[name]:
                lines.append(f"  batch {r['batch']} x {r['seq_len']}: {name} failed: {r[name]['error']}")
            elif name in r:
                o = r[name]
                ratio = f", {r['ratio_' + name]:.2f}x upstream" if name != "upstream" else ""
                lines.append(f"  batch {r['batch']} x {r['seq_len']}: {name} ({o['precision']}) {o['tokens_per_s']:,.0f} "
                             f"tok/s [{o['steps']} steps, {o['seconds']:.1f} s]{ratio}")
    acc = result.get("to_accuracy")
    if acc:
        for name in [k for k, v in acc.items() if isinstance(v, dict) and "curve" in v]:
            s = acc[name]
            got = "reached" if s["reached"] else "NOT reached"
            lines.append(f"  to held-out new-token acc {acc['target']}: {name} {got} in {s['seconds']:.1f} s "
                         f"({s['steps']} steps, {s['tokens']:,} tokens; last acc {s['curve'][-1][2] if s['curve'] else 0})")
        for name, ratio in acc.get("time_ratios", {}).items():
            lines.append(f"  time ratio {name}/upstream: {ratio:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
