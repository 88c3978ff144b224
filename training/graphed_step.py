"""One optimizer step as a CUDA graph: the host launches the whole step at once instead of the thousands
of kernels a 1,024-context LSTM forward and backward issue one by one.

    pxby-edge train --data runs/synth --out runs/g --config upstream --device cuda      # on by default there
    python bench/check_graph_step.py DATA upstream 40                                    # against the eager step

The graph holds exactly what ``TrainingRun._forward_backward`` and ``_optimizer_step`` do for one full
batch: the gather of the batch from the resident windows (the window indices are copied into a fixed
input first), forward, loss and accuracy counts into the device-side sums, backward, clipping and the
fused AdamW step, whose learning rate is a device tensor the loop fills before each replay. The first
``warmup`` steps run eagerly on a side stream (cuDNN and the optimizer state set themselves up), the next
full batch is captured; a shorter batch (an epoch's last) runs eagerly. Not used under DDP, with
gradient accumulation, or with fp16 (the GradScaler reads its overflow check back on the host).

Measured on an H200 (docs/BENCHMARKS.md): after 40 steps the weights equal the eager step's bit for bit,
and the upstream model trains at 1.62M tokens/s at batch 32 x 1024 (eager: 0.39M) and 4.59M at 256 (3.41M).
"""

from __future__ import annotations

import torch


def graph_refusal(rt, cfg) -> str | None:
    """Why this run cannot use a graphed step, or None."""
    if rt.device.type != "cuda":
        return "CUDA graphs need --device cuda"
    if rt.ddp:
        return "CUDA graphs are not used under DDP"
    if cfg.grad_accum != 1:
        return "CUDA graphs need grad_accum 1"
    if cfg.qat_bits:
        return "CUDA graphs are not used with --qat (its rounding runs in the eager step)"
    if rt.amp_dtype == torch.float16:
        return "CUDA graphs need --amp bf16 or off (fp16's GradScaler reads back every step)"
    return None


class GraphedStep:
    """Replays one captured optimizer step of ``run`` (a ``TrainingRun``) for every full batch."""

    def __init__(self, run, warmup: int = 3):
        self.run, self.warmup = run, warmup
        self.graph = None
        self.idx = None
        device = run.rt.device
        for g in run.optimizer.param_groups:  # a replayed step reads its learning rate from the device
            g["capturable"] = True
            g["lr"] = torch.tensor(float(g["lr"]), dtype=torch.float32, device=device)

    def __call__(self, idx: torch.Tensor) -> None:
        if self.graph is not None and idx.numel() == self.idx.numel():
            self.idx.copy_(idx, non_blocking=True)
            self.graph.replay()
        elif self.graph is None and self.warmup <= 0 and idx.numel() == self.run.cfg.batch_size:
            self._capture(idx)
            self.graph.replay()
        else:
            self._eager(idx)

    def _eager(self, idx: torch.Tensor) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.run._forward_backward(idx, 1, last=True)
            self.run._optimizer_step()
        torch.cuda.current_stream().wait_stream(side)
        self.warmup -= 1

    def _capture(self, idx: torch.Tensor) -> None:
        self.idx = idx.clone()
        self.run.optimizer.zero_grad(set_to_none=True)  # backward allocates the gradients in the graph's pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.run._forward_backward(self.idx, 1, last=True)
            self.run._optimizer_step()
        self.graph = graph
