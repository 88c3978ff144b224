"""What ``--resume`` continues from: ``last/`` as one checked set (weights, optimizer, schedule, metrics).

    python -c "from training.resume_state import read_metrics_csv; print(read_metrics_csv(b'step,epoch\n3,0.5\n'))"

``save_run_state`` writes the set through ``training.checkpoint.write_last`` (a hidden folder renamed into
place, its file list with hashes written last), so a kill at any moment leaves a set that resumes
bit-identical to an uninterrupted run; ``load_run_state`` reads it back through ``read_last`` and checks
every number before the optimizer or the loop sees it: state.json is as untrusted as any other input.
"""

from __future__ import annotations

import csv
import io
import json
import math

import torch

from training.checkpoint import (
    CONFIG_NAME,
    SAFETENSORS_NAME,
    checked_state_dict,
    config_json,
    read_last,
    write_last,
)
from training.errors import CheckpointError

OPTIMIZER_NAME = "optimizer.safetensors"
METRICS_NAME = "metrics.csv"
METRICS_FIELDS = [
    "step", "epoch", "tokens", "lr", "train_loss", "train_acc_all", "val_loss", "val_acc_all", "val_acc_new",
    "tokens_per_s", "elapsed_s",
]
ADAM_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step")
MAX_STEPS = 1 << 40
MAX_METRICS_ROWS = 1 << 20


def metrics_csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRICS_FIELDS)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in METRICS_FIELDS})
    return buf.getvalue().encode()


def read_metrics_csv(data: bytes, where: str = METRICS_NAME) -> list[dict]:
    """The rows ``metrics_csv`` wrote; CheckpointError for anything else."""
    rows = []
    try:
        for r in csv.DictReader(io.StringIO(data.decode("utf-8"))):
            if len(rows) >= MAX_METRICS_ROWS:
                raise CheckpointError(f"{where} holds more than {MAX_METRICS_ROWS:,} rows")
            rows.append({k: (float(v) if k not in ("step", "tokens") else int(float(v)))
                         for k, v in r.items() if k in METRICS_FIELDS and v not in ("", None)})
    except (UnicodeDecodeError, ValueError, OverflowError, csv.Error) as exc:
        raise CheckpointError(f"{where} is not a metrics table this version wrote ({exc})") from exc
    return rows


def save_run_state(out, model, optimizer, scaler, pxby: dict, progress: dict, rows: list[dict]) -> None:
    """``out/last``: the weights, the optimizer's moments and the RNG, ``progress`` (step, epoch, ...), rows."""
    from safetensors.torch import save

    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"state.{pid}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    files = {
        SAFETENSORS_NAME: save(state, metadata={"format": "pt"}),
        CONFIG_NAME: (json.dumps(config_json(model, pxby), indent=2, sort_keys=True) + "\n").encode(),
        OPTIMIZER_NAME: save(tensors),
        METRICS_NAME: metrics_csv(rows),
    }
    # A graphed step (training.graphed_step) keeps each group's learning rate as a device tensor: store the number.
    groups = [{k: float(v) if torch.is_tensor(v) else v for k, v in g.items()} for g in sd["param_groups"]]
    write_last(out, files, {**progress, "param_groups": groups, "scalars": scalars, "scaler": scaler.state_dict()})


def load_run_state(out, model, optimizer, scaler, device, batches_per_epoch: int) -> tuple[dict, list[dict]]:
    """Load ``out/last`` into ``model``, ``optimizer``, ``scaler`` and torch's RNG; returns (progress, rows).

    Nothing is loaded unless everything checks: the file hashes, the weights (shapes, finite), the
    optimizer's moments (one per parameter, its shape, finite), and every number of state.json."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    files, state = read_last(out)
    where = f"{out}/last"
    try:
        weights = load(files[SAFETENSORS_NAME])
        tensors = load(files[OPTIMIZER_NAME])
    except (KeyError, SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot resume from {where}: {exc}") from exc
    weights = checked_state_dict(weights, model, where)
    progress = _checked_progress(state, where, batches_per_epoch)
    params = [p for group in optimizer.param_groups for p in group["params"]]  # the numbering state_dict uses
    opt_state = _checked_optimizer_state(tensors, state.get("scalars", {}), params, device, where)
    rng = tensors.get("rng.torch")
    if rng is None or rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
        raise CheckpointError(f"{where}/{OPTIMIZER_NAME}: no valid rng.torch state")
    rows = read_metrics_csv(files[METRICS_NAME], f"{where}/{METRICS_NAME}") if METRICS_NAME in files else []
    # Everything checked: now load. The param groups are the run's own (lr is set before every step).
    model.load_state_dict(weights)
    optimizer.load_state_dict({"state": opt_state, "param_groups": optimizer.state_dict()["param_groups"]})
    if scaler.is_enabled():
        scaler.load_state_dict(_checked_scaler(state.get("scaler"), where))
    torch.set_rng_state(rng)
    return progress, rows


def _checked_progress(state: dict, where: str, batches_per_epoch: int) -> dict:
    ints = {"step": MAX_STEPS, "epoch": MAX_STEPS, "batch_pos": max(batches_per_epoch, 0)}
    out = {}
    for key, hi in ints.items():
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
            raise CheckpointError(f"{where}/state.json: {key} must be an integer in 0..{hi}, got {value!r}")
        out[key] = value
    best, elapsed = state.get("best_val_loss"), state.get("elapsed_s", 0.0)
    if not _number(best) or math.isnan(best) or best < 0:
        raise CheckpointError(f"{where}/state.json: best_val_loss must be a number >= 0, got {best!r}")
    if not _number(elapsed) or not math.isfinite(elapsed) or elapsed < 0:
        raise CheckpointError(f"{where}/state.json: elapsed_s must be a finite number >= 0, got {elapsed!r}")
    return {**out, "best_val_loss": float(best), "elapsed_s": float(elapsed)}


def _checked_optimizer_state(tensors: dict, scalars, params: list, device, where: str) -> dict:
    """AdamW's per-parameter state from the file, each entry checked against the parameter it belongs to."""
    if not isinstance(scalars, dict):
        raise CheckpointError(f"{where}/state.json: scalars must be an object")
    opt_state: dict = {}
    entries = [(k, v) for k, v in tensors.items() if k.startswith("state.")] + list(scalars.items())
    for key, value in entries:
        parts = key.split(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params) or parts[2] not in ADAM_STATE:
            raise CheckpointError(f"{where}: unexpected optimizer entry {key[:60]!r}")
        pid, name = int(parts[1]), parts[2]
        if torch.is_tensor(value):
            want = () if name == "step" else tuple(params[pid].shape)
            if tuple(value.shape) != want or not value.is_floating_point() or not torch.isfinite(value).all():
                raise CheckpointError(f"{where}: optimizer entry {key} is not a finite tensor of shape {want}")
            value = value.to(device) if name != "step" else value
        elif not _number(value) or not math.isfinite(value):
            raise CheckpointError(f"{where}/state.json: optimizer scalar {key} must be a finite number")
        opt_state.setdefault(pid, {})[name] = value
    return opt_state


def _checked_scaler(value, where: str) -> dict:
    keys = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}
    if not isinstance(value, dict) or set(value) != keys or not all(
            _number(v) and math.isfinite(v) and v >= 0 for v in value.values()):
        raise CheckpointError(f"{where}/state.json: scaler must hold finite numbers for {sorted(keys)}")
    return value


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))
