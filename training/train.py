"""The training loop: AdamW, warm-up + cosine, clipping, accumulation, AMP and DDP set up once.

    pxby-edge train --data runs/synth --out runs/ckpt --config small --epochs 1
    torchrun --nproc_per_node=2 -m training --data runs/synth --out runs/ddp --config tiny

Writes into ``--out``: the best checkpoint by validation loss (``config.json`` + ``model.safetensors``,
so ``load_checkpoint(out)`` works), ``last/`` (weights + optimizer and schedule state for ``--resume``,
written as one set by ``training.resume_state``: a kill at any moment resumes bit-identical),
``train_config.json``, ``metrics.csv`` and ``metrics.png``. A NaN or infinite loss or weight stops the run
with ``TrainingDivergedError`` before anything of that state is saved. Under torchrun (``RANK`` set) every rank
trains on its shard and only rank 0 writes. Two accuracies are reported on the held-out split: all six
slots of the predicted next context (comparable with upstream's figures) and slot 5 alone, the new token
that generation samples.

A step costs only its arithmetic: the windows live on the device and a batch is gathered there
(``training.batches``), one forward gives the loss and the accuracy counts, the running sums stay on the
device and are read back only when logging (every ``LOG_EVERY`` steps) or validating, where a non-finite
loss raises ``TrainingDivergedError`` before anything is saved.
``tests/test_training_step_cost.py`` counts LSTM forwards and host read-backs per step. On CUDA,
each full-batch step is replayed as one CUDA graph where it can be (``training.graphed_step``;
``--no-cuda-graph`` runs it eagerly).
"""

from __future__ import annotations

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
    last_exists,
    read_json_object,
    remove_stale_temps,
    save_checkpoint,
)
from training.config import ModelConfig, TrainConfig
from training.data import IGNORE_INDEX, Windows, load_streams
from training.errors import CheckpointError, ConfigError, OutputExistsError, TrainingDivergedError
from training.model import PixelBytesLSTM
from training.resume_state import load_run_state, metrics_csv, save_run_state

LOG_EVERY = 25  # optimizer steps between progress read-backs (the only host syncs between validations)
DDP_CLOCK_EVERY = 10  # optimizer steps between the ranks' agreements on the wall-clock budget
# What a run writes into --out; temporary files of these names left by a killed run are removed.
RUN_FILES = ("config.json", "model.safetensors", "metrics.csv", "metrics.png", "train_config.json")


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


# -- metrics files ---------------------------------------------------------------------------------


def write_metrics(out: Path, rows: list[dict]) -> bool:
    """metrics.csv, and metrics.png where matplotlib is installed (False when it is not: a GPU box may lack it,
    and a missing plot must not end a run after hours)."""
    atomic_write_bytes(out / "metrics.csv", metrics_csv(rows))
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
        if not last_exists(out):
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
    if rt.master:  # what a killed run of ours left half-written
        remove_stale_temps(out, RUN_FILES)
    if resume:
        model_cfg, cfg = _saved_configs(out, cfg)
    # --init's checkpoint is checked (config, finite weights) before the data is read, not after.
    start = _initial_model(init_from, model_cfg) if init_from is not None and not resume else None
    run = TrainingRun(data, out, model_cfg, cfg, rt, log=log, check_sync=check_sync, cuda_graph=cuda_graph)
    run.setup(cache_dir=cache_dir, start=start)
    if resume:
        run.resume()
    run.write_config()
    run.loop(progress)
    return run.teardown()


def _initial_model(path, model_cfg: ModelConfig) -> tuple[Path, PixelBytesLSTM]:
    """(path, model) of the checkpoint --init names, refused unless its config is the run's."""
    from training.checkpoint import load_checkpoint

    start = load_checkpoint(path)
    # A checkpoint records the embedding it has (6 × E//6: the upstream preset's 128 is stored as 126).
    if start.config != replace(model_cfg, embed_size=model_cfg.pxby_emb * model_cfg.pxby_dim):
        raise ConfigError(f"--init {path} holds {start.config}, but the config asks for {model_cfg}")
    return Path(path), start


def _saved_configs(out: Path, cfg: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """The run's own configs for --resume; only the length of the run comes from the new request."""
    path = out / "train_config.json"
    saved = read_json_object(path, CheckpointError, missing=f"cannot resume {out}: it holds no train_config.json")
    if not isinstance(saved.get("model"), dict) or not isinstance(saved.get("train"), dict):
        raise CheckpointError(f"{path} must hold 'model' and 'train' objects")
    try:
        train_cfg = replace(TrainConfig.from_dict(saved["train"]), epochs=cfg.epochs, max_steps=cfg.max_steps,
                            max_minutes=cfg.max_minutes)
        return ModelConfig.from_dict(saved["model"]), train_cfg
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


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
        self.saved_step = None  # the step last/ holds

    # -- setup -------------------------------------------------------------------------------------

    def setup(self, cache_dir=None, start: tuple[Path, PixelBytesLSTM] | None = None) -> None:
        cfg, rt = self.cfg, self.rt
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts them)
        self._load_data(cache_dir)
        self._build_model(start)
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
            **({"qat": f"int{cfg.qat_bits}"} if cfg.qat_bits else {}),
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

    def _build_model(self, start) -> None:
        rt = self.rt
        raw_model = PixelBytesLSTM(self.model_cfg)
        if start is not None:
            path, model = start
            raw_model.load_state_dict(model.state_dict())
            self.say(f"weights initialised from {path}")
        self.raw_model = raw_model.to(rt.device)
        self.model = self.raw_model
        if self.cfg.qat_bits:  # every forward, held-out ones included, on the rounded matrices
            from training.qat import FakeQuantModel

            self.model = FakeQuantModel(self.raw_model, self.cfg.qat_bits)
        if rt.ddp:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [rt.local_rank] if rt.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.model, device_ids=device_ids)
        self.say(f"model: {self.model_cfg} — {self.raw_model.num_parameters():,} parameters; device {rt.device}, "
                 f"world {rt.world}, amp {rt.amp_dtype}, step {'CUDA graph' if self.cuda_graph else 'eager'}"
                 + (f", matrices rounded to int{self.cfg.qat_bits} in every forward (--qat)" if self.cfg.qat_bits else ""))

    # -- resume ------------------------------------------------------------------------------------

    def resume(self) -> None:
        per_epoch = math.ceil(math.ceil(len(self.train_w) / self.rt.world) / self.cfg.batch_size)
        st, self.rows = load_run_state(self.out, self.raw_model, self.optimizer, self.scaler, self.rt.device, per_epoch)
        self.step, self.epoch, self.batch_pos, self.best = st["step"], st["epoch"], st["batch_pos"], st["best_val_loss"]
        self.prior_s = st["elapsed_s"]
        self.saved_step = self.step
        if self.rt.master:  # a kill after last/ but before metrics.csv: the rows last/ holds are the run's
            write_metrics(self.out, self.rows)
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
        # Running sums stay on the device (no host sync per step): loss, hit, valid, new hit, new valid, batches.
        # A non-finite loss makes the loss sum non-finite: _stop_if_diverged sees it at the next read-back.
        self.acc = torch.zeros(6, dtype=torch.float64, device=self.rt.device)
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
        train_loss = float(self.acc[0] / self.acc[5].clamp(min=1))
        self._stop_if_diverged(train_loss, "training loss")
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

    def _stop_if_diverged(self, value: float, what: str, collective: bool = True) -> None:
        """TrainingDivergedError when ``value`` is NaN or infinite (on any rank), before anything is saved.

        Called where the loop reads its device-side sums anyway (progress lines, validations), so the
        check adds no host sync to a step."""
        bad = not math.isfinite(value)
        if collective and self.rt.ddp:  # one rank's batch may diverge alone; every rank must stop together
            flag = torch.tensor([float(bad)], device=self.rt.device)
            torch.distributed.all_reduce(flag)
            bad = bool(flag.item())
        if not bad:
            return
        if self.bar is not None:
            self.bar.close()
        kept = (f"the last good state (step {self.saved_step}) is in {self.out / 'last'}"
                if self.saved_step is not None else "no checkpoint was written")
        raise TrainingDivergedError(
            f"training diverged at step {self.step}: the {what} is {'NaN or infinite' if math.isfinite(value) else value}; "
            f"nothing of this state was saved, {kept}; lower --lr, keep grad_clip on, or check --pad-weight and the data"
        )

    # -- evaluate and save -------------------------------------------------------------------------

    def evaluate_and_save(self, done: bool) -> None:
        """A metrics row (held-out figures over all batches at the end), the checkpoints, a log line."""
        run_tokens = int(self.positions) * self.rt.world  # waits for the device, so the clock below is true
        elapsed = time.time() - self.t0
        tps = run_tokens / max(elapsed - self.eval_s, 1e-9)
        a = self.acc.tolist()
        self._stop_if_diverged(a[0], "training loss")
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
        # Every rank decides alike: the held-out loss is summed over ranks, the weights are DDP's same ones.
        self._stop_if_diverged(metrics["val_loss"], "held-out loss", collective=False)
        if not all(bool(torch.isfinite(p).all()) for p in self.raw_model.parameters()):
            self._stop_if_diverged(math.nan, "model's weights", collective=False)
        if not self.rt.master:
            return
        if metrics["val_loss"] < self.best:
            self.best = metrics["val_loss"]
            save_checkpoint(self._checkpoint_model(), self.out, self.pxby)
            self.writes["checkpoint_writes"] += 1
        save_run_state(self.out, self.raw_model, self.optimizer, self.scaler, self.pxby, {
            "step": self.step, "epoch": self.epoch, "batch_pos": self.batch_pos, "best_val_loss": self.best,
            "elapsed_s": self.prior_s + time.time() - self.t0,
        }, self.rows)
        self.writes["checkpoint_writes"] += 1
        self.saved_step = self.step
        if not write_metrics(self.out, self.rows) and not self.plot_warned:
            self.say("note: metrics.png not written: matplotlib is not installed here (pip install matplotlib)")
            self.plot_warned = True

    def _checkpoint_model(self):
        """What the checkpoint holds: the model as validated (a QAT run's matrices rounded, training.qat)."""
        if not self.cfg.qat_bits:
            return self.raw_model
        from training.qat import snapped

        return snapped(self.raw_model, self.cfg.qat_bits)

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


def _vocab_dict() -> dict:
    from pxby_edge.vocab import Vocab

    return Vocab().to_dict()
