"""The training loop: AdamW, warm-up + cosine, clipping, accumulation, AMP and DDP set up once.

    pxby-edge train --data runs/synth --out runs/ckpt --config small --epochs 1
    torchrun --nproc_per_node=2 -m training --data runs/synth --out runs/ddp --config tiny

Writes into ``--out``: the best checkpoint by validation loss (``config.json`` + ``model.safetensors``,
so ``load_checkpoint(out)`` works), ``last/`` (weights + optimizer and schedule state for ``--resume``),
``train_config.json``, ``metrics.csv`` and ``metrics.png``. Under torchrun (``RANK`` set) every rank
trains on its shard and only rank 0 writes. Two accuracies are reported on the held-out split: all six
slots of the predicted next context (comparable with upstream's figures) and slot 5 alone, the new token
that generation samples.

A step costs only its arithmetic: the windows live on the device and a batch is gathered there
(``training.batches``), one forward gives the loss and the accuracy counts, the running sums stay on the
device and are read back only when logging (every ``LOG_EVERY`` steps) or validating, and non-finite losses
are counted there too and raise ``TrainingDivergedError`` at that read-back, before anything is saved.
``tests/test_training_step_cost.py`` counts LSTM forwards and host read-backs per step. On CUDA,
each full-batch step is replayed as one CUDA graph where it can be (``training.graphed_step``;
``--no-cuda-graph`` runs it eagerly).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from training.audio_rate import dataset_audio_rate
from training.batches import DeviceWindows, to_device
from training.checkpoint import (
    KEY_AUDIO_RATE,
    KEY_SLICING,
    KEY_SOURCE_AUDIO_RATE,
    KEY_VOCAB,
    atomic_write_bytes,
    save_checkpoint,
)
from training.config import ModelConfig, TrainConfig
from training.data import IGNORE_INDEX, Windows, load_streams
from training.errors import CheckpointError, ConfigError, OutputExistsError, TrainingDivergedError
from training.model import PixelBytesLSTM

LOG_EVERY = 25  # optimizer steps between progress read-backs (the only host syncs between validations)
DDP_CLOCK_EVERY = 10  # optimizer steps between the ranks' agreements on the wall-clock budget
METRICS_FIELDS = [
    "step", "epoch", "tokens", "lr", "train_loss", "train_acc_all", "val_loss", "val_acc_all", "val_acc_new",
    "tokens_per_s", "elapsed_s",
]


@dataclass
class Runtime:
    """Where and how this process runs: set once, so the loop never branches on DDP or AMP."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    ddp: bool
    amp_dtype: torch.dtype | None

    @property
    def master(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        # No cast cache: every weight is cast once per forward anyway, and a captured step (CUDA graph) needs it off.
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, cache_enabled=False)


def setup_runtime(device: str = "auto", amp: str = "auto") -> Runtime:
    """DDP from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); gloo on CPU, NCCL on GPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    ddp = int(os.environ.get("RANK", -1)) != -1 and int(os.environ.get("WORLD_SIZE", 1)) > 1
    rank = local_rank = 0
    world = 1
    if ddp:
        import torch.distributed as dist

        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if device == "cuda":
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    dev = torch.device(f"cuda:{local_rank}" if device == "cuda" else device)
    amp_dtype = None
    if dev.type == "cuda" and amp != "off":
        amp_dtype = torch.bfloat16 if (amp in ("auto", "bf16") and torch.cuda.is_bf16_supported()) else torch.float16
        torch.backends.cudnn.benchmark = True
    return Runtime(rank, world, local_rank, dev, ddp, amp_dtype)


def rate_text(tokens_per_s: float, world: int) -> str:
    """Tokens/s of the whole run and, under DDP, per rank (one GPU each): what scaling is judged by."""
    text = f"{tokens_per_s:,.0f} tok/s"
    return text if world <= 1 else f"{text} ({tokens_per_s / world:,.0f} per rank, {world} ranks)"


def lr_at(step: int, cfg: TrainConfig, total_steps: int, time_fraction: float = 0.0) -> float:
    """Linear warm-up to cfg.lr, then cosine down to cfg.min_lr at total_steps (or at the end of the
    wall-clock budget, whichever comes first: ``time_fraction`` is elapsed / budget)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, max((step - cfg.warmup_steps) / span, time_fraction))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def loss_and_counts(logits, y, class_weight):
    """Mean cross-entropy over valid targets, and (correct all slots, valid, correct new token, valid new)."""
    v = logits.shape[-1]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, v).float(), y.reshape(-1), weight=class_weight, ignore_index=IGNORE_INDEX)
    with torch.no_grad():
        pred = logits.argmax(-1)
        valid = y != IGNORE_INDEX
        hit = (pred == y) & valid
        if y.dim() == 3:  # (B, T, 6): slot 5 of the next context is the new token
            new_hit, new_valid = hit[..., 5], valid[..., 5]
        else:
            new_hit, new_valid = hit, valid
        counts = torch.stack([hit.sum(), valid.sum(), new_hit.sum(), new_valid.sum()])
    return loss, counts


def _shard(n: int, rt: Runtime, rng: np.random.Generator | None) -> np.ndarray:
    """This rank's window indices; every rank gets the same count (DDP steps together)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    per_rank = math.ceil(n / rt.world)
    order = np.resize(order, per_rank * rt.world)  # wrap around to even the shards
    return order[rt.rank:: rt.world]


def epoch_order(n: int, rt: Runtime, seed: int, epoch: int) -> torch.Tensor:
    """This rank's shuffled window indices for ``epoch``, on the device (one copy per epoch, not per step)."""
    return to_device(_shard(n, rt, np.random.default_rng([seed, epoch])), rt.device)


@torch.no_grad()
def evaluate(model, windows: DeviceWindows, cfg: TrainConfig, rt: Runtime, class_weight, max_batches: int = 0) -> dict:
    """Loss and accuracies over the held-out windows (summed over ranks); one read-back at the end."""
    model.eval()
    batches = to_device(_shard(len(windows), rt, None), rt.device).split(cfg.batch_size)
    if max_batches:
        batches = batches[:max_batches]
    sums = torch.zeros(6, dtype=torch.float64, device=rt.device)  # loss·n, n, hit, valid, new hit, new valid
    for b in batches:
        x, y = windows.batch(b)
        with rt.autocast():
            logits = model(x)
        loss, counts = loss_and_counts(logits, y, class_weight)
        counts = counts.double()
        weighted = torch.where(counts[1] > 0, loss.detach().double() * counts[1], 0.0)  # an all-padding batch adds 0
        sums += torch.cat([weighted.reshape(1), counts[1:2], counts])
    if rt.ddp:
        import torch.distributed as dist

        dist.all_reduce(sums)
    model.train()
    s = sums.tolist()
    return {
        "val_loss": s[0] / max(1.0, s[1]),
        "val_acc_all": s[2] / max(1.0, s[3]),
        "val_acc_new": s[4] / max(1.0, s[5]),
    }


# -- state for --resume (safetensors + JSON, never pickle) -----------------------------------------


def _save_training_state(folder: Path, optimizer, scaler, state: dict) -> None:
    from safetensors.torch import save

    sd = optimizer.state_dict()
    tensors, meta = {}, {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                meta[f"state.{pid}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    atomic_write_bytes(folder / "optimizer.safetensors", save(tensors))
    groups = [{k: float(v) if torch.is_tensor(v) else v for k, v in g.items()} for g in sd["param_groups"]]
    state = {**state, "param_groups": groups, "scalars": meta, "scaler": scaler.state_dict()}
    atomic_write_bytes(folder / "state.json", (json.dumps(state, indent=1) + "\n").encode())


def _load_training_state(folder: Path, optimizer, scaler, device) -> dict:
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / "state.json").read_text())
        tensors = load_file(str(folder / "optimizer.safetensors"), device="cpu")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot resume from {folder}: {exc} (was the run started with this version?)") from exc
    opt_state: dict = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value.to(device) if name != "step" else value
    for key, value in state.get("scalars", {}).items():
        _, pid, name = key.split(".", 2)
        opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    return state


# -- metrics files ---------------------------------------------------------------------------------


def write_metrics(out: Path, rows: list[dict]) -> bool:
    """metrics.csv, and metrics.png where matplotlib is installed (False when it is not: a GPU box may lack it,
    and a missing plot must not end a run after hours)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRICS_FIELDS)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in METRICS_FIELDS})
    atomic_write_bytes(out / "metrics.csv", buf.getvalue().encode())
    try:
        plot_metrics(out / "metrics.png", rows)
    except ImportError:
        return False
    return True


def plot_metrics(path: Path, rows: list[dict]) -> None:
    """Loss and accuracy curves against optimizer steps (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(steps, [r["train_loss"] for r in rows], label="train")
    a1.plot(steps, [r["val_loss"] for r in rows], label="held-out")
    a1.set_xlabel("optimizer step")
    a1.set_ylabel("cross-entropy")
    a1.set_yscale("log")
    a1.legend()
    a2.plot(steps, [r["train_acc_all"] for r in rows], label="train, all 6 slots")
    a2.plot(steps, [r["val_acc_all"] for r in rows], label="held-out, all 6 slots")
    a2.plot(steps, [r["val_acc_new"] for r in rows], label="held-out, new token (slot 5)")
    a2.set_xlabel("optimizer step")
    a2.set_ylabel("accuracy")
    a2.set_ylim(0, 1)
    a2.legend(loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# -- the loop --------------------------------------------------------------------------------------


def prepare_output(out: Path, resume: bool, force: bool) -> None:
    if resume:
        if not (out / "last" / "state.json").is_file():
            raise CheckpointError(f"nothing to resume in {out} (no last/state.json); drop --resume to start fresh")
    elif out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out} already exists; pass --force to overwrite it, or --resume to continue it")


def train(
    data,
    out,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    device: str = "auto",
    amp: str = "auto",
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log=print,
    check_sync: str | None = None,
    cache_dir=None,
    init_from=None,
    cuda_graph: bool | None = None,
) -> dict:
    """Train and write checkpoints into ``out``; returns the last metrics row (with the run summary)."""
    out = Path(out)
    prepare_output(out, resume, force)
    rt = setup_runtime(device, amp)
    if resume:
        model_cfg, cfg = _saved_configs(out, cfg)
    run = TrainingRun(data, out, model_cfg, cfg, rt, log=log, check_sync=check_sync, cuda_graph=cuda_graph)
    run.setup(cache_dir=cache_dir, init_from=None if resume else init_from)
    if resume:
        run.resume()
    run.write_config()
    run.loop(progress)
    return run.teardown()


def _saved_configs(out: Path, cfg: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """The run's own configs for --resume; only the length of the run comes from the new request."""
    saved = json.loads((out / "train_config.json").read_text())
    train_cfg = replace(TrainConfig.from_dict(saved["train"]), epochs=cfg.epochs, max_steps=cfg.max_steps,
                        max_minutes=cfg.max_minutes)
    return ModelConfig.from_dict(saved["model"]), train_cfg


class TrainingRun:
    """One ``train`` call in named stages: setup, resume, step, evaluate-and-save, teardown.

    The stages share the run's state here (model, optimizer, position in the data, metrics rows), so
    each stays short and the loop reads as the list of what happens per optimizer step.
    """

    def __init__(self, data, out: Path, model_cfg: ModelConfig, cfg: TrainConfig, rt: Runtime, log=print,
                 check_sync: str | None = None, cuda_graph: bool | None = None):
        self.data, self.out, self.model_cfg, self.cfg, self.rt = data, out, model_cfg, cfg, rt
        self.say = log if rt.master else (lambda *a, **k: None)
        self.check_sync = check_sync
        from training.graphed_step import graph_refusal

        refusal = graph_refusal(rt, cfg)
        if cuda_graph and refusal:
            raise ConfigError(refusal)
        # None: the graphed step wherever it can run (bit-identical to the eager one, 1.3-4x faster on an H200).
        self.cuda_graph = (refusal is None) if cuda_graph is None else cuda_graph
        self.graphed = None
        self.step, self.epoch, self.batch_pos, self.best, self.rows, self.prior_s = 0, 0, 0, float("inf"), [], 0.0
        self.writes = {"checkpoint_writes": 0, "steps_checked": 0}
        self.plot_warned = False
        self.bar = None

    # -- setup -------------------------------------------------------------------------------------

    def setup(self, cache_dir=None, init_from=None) -> None:
        cfg, rt = self.cfg, self.rt
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts them)
        self._load_data(cache_dir)
        self._build_model(init_from)
        decay = [p for n, p in self.raw_model.named_parameters() if p.dim() >= 2 and not n.startswith("embedding")]
        no_decay = [p for n, p in self.raw_model.named_parameters()
                    if not (p.dim() >= 2 and not n.startswith("embedding"))]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(0.9, 0.95), fused=rt.device.type == "cuda",
        )
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)
        self.class_weight = None
        if cfg.pad_weight != 1.0:
            self.class_weight = torch.ones(self.model_cfg.vocab_size, device=rt.device)
            self.class_weight[0] = cfg.pad_weight
        batches_per_epoch = math.ceil(math.ceil(len(self.train_w) / rt.world) / cfg.batch_size)
        steps_per_epoch = max(1, batches_per_epoch // cfg.grad_accum)
        self.total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
        source_rate = dataset_audio_rate(self.data)  # the dataset's own, recorded; the runtime plays tokens at it
        self.pxby = {
            KEY_SLICING: cfg.slicing,
            KEY_VOCAB: _vocab_dict(),
            KEY_SOURCE_AUDIO_RATE: source_rate,
            KEY_AUDIO_RATE: source_rate / cfg.slicing_audio if source_rate else None,
            "trained_on": str(self.data),
            "val_fraction": cfg.val_fraction,
        }

    def _load_data(self, cache_dir) -> None:
        cfg, rt = self.cfg, self.rt
        # Rank 0 tokenizes first and fills the cache, the others then read it.
        if rt.ddp and not rt.master:
            torch.distributed.barrier()
        self.streams = load_streams(self.data, cfg.slicing, cfg.val_fraction, cache_dir=cache_dir)
        if rt.ddp and rt.master:
            torch.distributed.barrier()
        self.say(f"data: {self.streams.summary()}")
        if not self.streams.val:
            self.say("warning: no held-out item (dataset too small for val_fraction); validating on the training items")
        objective = self.model_cfg.objective
        self.train_w = Windows(self.streams.train, cfg.seq_len, cfg.stride, objective, cfg.head_repeat)
        self.val_w = Windows(self.streams.val or self.streams.train, cfg.seq_len, cfg.seq_len, objective)
        self.train_b, self.val_b = DeviceWindows(self.train_w, rt.device), DeviceWindows(self.val_w, rt.device)

    def _build_model(self, init_from) -> None:
        rt = self.rt
        raw_model = PixelBytesLSTM(self.model_cfg)
        if init_from is not None:
            from training.checkpoint import load_checkpoint

            start = load_checkpoint(init_from)
            if start.config != self.model_cfg:
                raise ConfigError(f"--init {init_from} holds {start.config}, but the config asks for {self.model_cfg}")
            raw_model.load_state_dict(start.state_dict())
            self.say(f"weights initialised from {init_from}")
        self.raw_model = raw_model.to(rt.device)
        self.model = self.raw_model
        if rt.ddp:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [rt.local_rank] if rt.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.raw_model, device_ids=device_ids)
        self.say(f"model: {self.model_cfg} — {self.raw_model.num_parameters():,} parameters; device {rt.device}, "
                 f"world {rt.world}, amp {rt.amp_dtype}, step {'CUDA graph' if self.cuda_graph else 'eager'}")

    # -- resume ------------------------------------------------------------------------------------

    def resume(self) -> None:
        last = self.out / "last"
        self.raw_model.load_state_dict(_load_state_dict(last))
        st = _load_training_state(last, self.optimizer, self.scaler, self.rt.device)
        self.step, self.epoch, self.batch_pos, self.best = st["step"], st["epoch"], st["batch_pos"], st["best_val_loss"]
        self.rows = _read_metrics(self.out / "metrics.csv")
        self.prior_s = float(st.get("elapsed_s", 0.0))
        self.say(f"resuming at step {self.step} (epoch {self.epoch + 1}, batch {self.batch_pos})")

    def write_config(self) -> None:
        if self.rt.master:
            self.out.mkdir(parents=True, exist_ok=True)
            cfg_text = json.dumps({"model": self.model_cfg.to_dict(), "train": self.cfg.to_dict()}, indent=1) + "\n"
            atomic_write_bytes(self.out / "train_config.json", cfg_text.encode())

    # -- the loop ----------------------------------------------------------------------------------

    def loop(self, progress: bool) -> None:
        """Optimizer steps until the run is done; validation and checkpoints every ``eval_every`` steps,
        at every epoch end and at the end."""
        rt = self.rt
        self.start_steps()
        if progress and rt.master:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True)
        if self.step < self.total_steps:
            for group in self.step_groups():
                last_of_epoch = self.train_step(group)
                done = self.step >= self.total_steps or self._out_of_time()
                if self.step % self.cfg.eval_every == 0 or last_of_epoch or done:
                    self.evaluate_and_save(done)
                if done:
                    break
        if self.bar is not None:
            self.bar.close()

    def start_steps(self) -> None:
        """Clocks and device-side running sums, before the first step of this process."""
        self.t0 = time.time()
        # Running sums stay on the device (no host sync per step): loss, hit, valid, new hit, new valid,
        # batches, non-finite losses.
        self.acc = torch.zeros(7, dtype=torch.float64, device=self.rt.device)
        self.positions = torch.zeros((), dtype=torch.int64, device=self.rt.device)
        self.eval_s = 0.0  # time spent validating and writing, left out of tokens/s
        self.tokens_seen = self.rows[-1]["tokens"] if self.rows else 0
        self.model.train()
        if self.cuda_graph and self.graphed is None:
            from training.graphed_step import GraphedStep

            self.graphed = GraphedStep(self)

    def step_groups(self):
        """The micro-batches (window indices on the device) of each optimizer step from the run's position
        on, epoch after epoch; ``train_step`` moves the position."""
        cfg = self.cfg
        while cfg.max_steps or self.epoch < cfg.epochs:
            epoch = self.epoch
            batches = epoch_order(len(self.train_b), self.rt, cfg.seed, epoch).split(cfg.batch_size)
            self.usable = (len(batches) // cfg.grad_accum) * cfg.grad_accum or len(batches)
            while self.epoch == epoch:
                yield batches[self.batch_pos: self.batch_pos + cfg.grad_accum]

    def train_step(self, group) -> bool:
        """One optimizer step over ``group`` (micro-batches accumulated), then progress; True when it
        ended an epoch. Nothing here waits for the device."""
        self._set_lr()
        if self.graphed is not None:
            self.graphed(group[0])  # grad_accum is 1 here (graph_refusal)
        else:
            for micro, idx in enumerate(group):
                self._forward_backward(idx, len(group), last=micro == len(group) - 1)
            self._optimizer_step()
        self.step += 1
        self.batch_pos += len(group)
        ended = self.batch_pos >= self.usable
        if ended:
            self.epoch, self.batch_pos = self.epoch + 1, 0
        if self.check_sync:
            _check_in_sync(self.raw_model, self.rt)
            self.writes["steps_checked"] += 1
        self._report_progress()
        return ended

    def _set_lr(self) -> None:
        cfg = self.cfg
        time_fraction = (self.prior_s + time.time() - self.t0) / (cfg.max_minutes * 60) if cfg.max_minutes else 0.0
        lr = lr_at(self.step, cfg, self.total_steps, time_fraction)
        for g in self.optimizer.param_groups:
            if torch.is_tensor(g["lr"]):  # a graphed step reads it on the device
                g["lr"].fill_(lr)
            else:
                g["lr"] = lr

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _forward_backward(self, idx, n_micro: int, last: bool) -> None:
        """One micro-batch: a single forward whose logits give the loss and the accuracy counts."""
        rt, model = self.rt, self.model
        x, y = self.train_b.batch(idx)
        # Gradients are all-reduced only on the last micro-batch of an accumulation group.
        sync = nullcontext() if (not rt.ddp or last) else model.no_sync()
        with sync:
            with rt.autocast():
                logits = model(x)
            loss, counts = loss_and_counts(logits, y, self.class_weight)
            self.scaler.scale(loss / n_micro).backward()
        loss = loss.detach().double()
        self.acc[0] += loss
        self.acc[1:5] += counts.double()
        self.acc[5] += 1
        self.acc[6] += (~torch.isfinite(loss)).double()  # checked when read back, not here
        self.positions += counts[3]

    def _optimizer_step(self) -> None:
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _train_seconds(self) -> float:
        return max(time.time() - self.t0 - self.eval_s, 1e-9)

    def _report_progress(self) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if self.step % LOG_EVERY:
            return
        tps = int(self.positions) * self.rt.world / self._train_seconds()  # the read-back waits for the device
        a = self.acc.tolist()
        _check_finite(a, self.step)
        train_loss = a[0] / max(a[5], 1.0)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{tps:,.0f}", epoch=self.epoch + 1)
        else:
            self.say(f"step {self.step}: train loss {train_loss:.4f}, lr {self._lr():.2e}, "
                     f"{rate_text(tps, self.rt.world)}, {self.prior_s + time.time() - self.t0:.0f} s")

    def _out_of_time(self) -> bool:
        cfg, rt = self.cfg, self.rt
        if rt.ddp and self.step % DDP_CLOCK_EVERY:
            return False  # ranks agree on the clock every few steps only: the agreement is a host sync
        out_of_time = bool(cfg.max_minutes) and self.prior_s + time.time() - self.t0 >= cfg.max_minutes * 60
        if rt.ddp and cfg.max_minutes:  # every rank must stop at the same step
            flag = torch.tensor([float(out_of_time)], device=rt.device)
            torch.distributed.all_reduce(flag)
            out_of_time = bool(flag.item())
        return out_of_time

    # -- evaluate and save -------------------------------------------------------------------------

    def evaluate_and_save(self, done: bool) -> None:
        """A metrics row (held-out figures over all batches at the end), the checkpoints, a log line."""
        run_tokens = int(self.positions) * self.rt.world  # waits for the device, so the clock below is true
        elapsed = time.time() - self.t0
        tps = run_tokens / max(elapsed - self.eval_s, 1e-9)
        a = self.acc.tolist()
        _check_finite(a, self.step)  # before anything is saved: last/ keeps the last finite state
        t_eval = time.time()
        metrics = evaluate(self.model, self.val_b, self.cfg, self.rt, self.class_weight,
                           0 if done else self.cfg.eval_batches)
        row = {
            "step": self.step, "epoch": round(self.epoch + self.batch_pos / max(self.usable, 1), 4),
            "tokens": self.tokens_seen + run_tokens, "lr": self._lr(),
            "train_loss": a[0] / max(a[5], 1.0), "train_acc_all": a[1] / max(a[2], 1.0),
            **metrics, "tokens_per_s": tps, "elapsed_s": self.prior_s + elapsed,
        }
        self.rows.append(row)
        self.acc.zero_()
        self.save(row)
        msg = (f"step {self.step} epoch {row['epoch']:.2f}: train loss {row['train_loss']:.4f}, "
               f"held-out loss {row['val_loss']:.4f}, acc all-slot {row['val_acc_all']:.4f}, "
               f"new-token {row['val_acc_new']:.4f}, {rate_text(tps, self.rt.world)}")
        self.eval_s += time.time() - t_eval
        if self.bar is not None:
            self.bar.write(msg)
        else:
            self.say(msg)

    def save(self, metrics: dict) -> None:
        """The best checkpoint when ``metrics`` beat it, ``last/`` with the state --resume needs, metrics files."""
        if not self.rt.master:
            return
        if metrics["val_loss"] < self.best:
            self.best = metrics["val_loss"]
            save_checkpoint(self.raw_model, self.out, self.pxby)
            self.writes["checkpoint_writes"] += 1
        save_checkpoint(self.raw_model, self.out / "last", self.pxby)
        _save_training_state(self.out / "last", self.optimizer, self.scaler, {
            "step": self.step, "epoch": self.epoch, "batch_pos": self.batch_pos, "best_val_loss": self.best,
            "elapsed_s": self.prior_s + time.time() - self.t0,
        })
        self.writes["checkpoint_writes"] += 1
        if not write_metrics(self.out, self.rows) and not self.plot_warned:
            self.say("note: metrics.png not written: matplotlib is not installed here (pip install matplotlib)")
            self.plot_warned = True

    # -- teardown ----------------------------------------------------------------------------------

    def teardown(self) -> dict:
        """The run's summary; a zero-step run still leaves a checkpoint and the initial model's figures."""
        rt = self.rt
        if not self.rows:
            metrics = evaluate(self.model, self.val_b, self.cfg, rt, self.class_weight)
            self.rows.append({"step": 0, "epoch": 0, "tokens": 0, "lr": 0.0, "train_loss": metrics["val_loss"],
                              "train_acc_all": metrics["val_acc_all"], **metrics, "tokens_per_s": 0.0,
                              "elapsed_s": 0.0})
            self.save(self.rows[-1])
        if self.check_sync:
            Path(self.check_sync).mkdir(parents=True, exist_ok=True)
            report = {**self.writes, "world": rt.world, "steps": self.step}
            (Path(self.check_sync) / f"rank{rt.rank}.json").write_text(json.dumps(report))
        if rt.ddp:
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        result = dict(self.rows[-1])
        result.update(parameters=self.raw_model.num_parameters(), best_val_loss=self.best, world=rt.world,
                      skipped=self.streams.n_skipped, train_items=len(self.streams.train),
                      val_items=len(self.streams.val), wall_s=time.time() - self.t0)
        return result


def _check_finite(acc: list, step: int) -> None:
    """The device-side count of non-finite losses since the last read-back (``acc[6]``), checked on the host
    only when the sums are read anyway (logging, validation), so the step itself never waits."""
    if acc[6]:
        raise TrainingDivergedError(
            f"training diverged: {int(acc[6])} non-finite loss(es) in the steps up to {step}; "
            "lower --lr, keep grad_clip > 0, or try --amp bf16 / off"
        )


def _check_in_sync(model, rt: Runtime) -> None:
    """Every rank must hold bit-identical weights after each optimizer step (DDP's promise, checked)."""
    if not rt.ddp:
        return
    import torch.distributed as dist

    flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()]).to(rt.device)
    gathered = [torch.empty_like(flat) for _ in range(rt.world)]
    dist.all_gather(gathered, flat)
    for r, other in enumerate(gathered):
        if not torch.equal(other, flat):
            raise RuntimeError(f"rank {rt.rank}: weights differ from rank {r} after an optimizer step")


def _load_state_dict(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"), device="cpu")


def _read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append({k: (float(v) if k not in ("step", "tokens") else int(float(v))) for k, v in r.items() if v != ""})
    return rows


def _vocab_dict() -> dict:
    from pxby_edge.vocab import Vocab

    return Vocab().to_dict()
