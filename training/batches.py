"""Training batches gathered on the device from token windows kept there: no host work, no host→device
copy and no host sync per step.

    python -c "from training.batches import DeviceWindows; help(DeviceWindows)"

The token streams of a split are small (uint8, six ids per context: a 600-item synthetic set is about
8 MB), so they are copied to the device once and a batch is an index gather there. ``DeviceWindows``
gives exactly what ``training.data.Windows.batch`` gives for the same window indices (a test checks it),
only as device tensors and without building a numpy array per window on the host, which kept the GPU
waiting for the CPU every step and forced a pageable (synchronising) copy.
"""

from __future__ import annotations

import numpy as np
import torch

from training.data import IGNORE_INDEX, Windows


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on ``device``: through pinned memory and a non-blocking copy on CUDA."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class DeviceWindows:
    """The windows of a ``Windows`` over its streams, resident on ``device``.

    ``batch(idx)`` with ``idx`` a 1-D int64 tensor of window indices on the device →
    (x (B, T, 6) int64, y (B, T, 6) or (B, T) int64 with -100 where there is no target).
    """

    def __init__(self, windows: Windows, device: torch.device):
        self.seq_len, self.objective, self.device = windows.seq_len, windows.objective, device
        streams = windows.streams
        lengths = np.asarray([len(s) for s in streams], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        k, start = windows.index[:, 0], windows.index[:, 1]
        self.n = len(windows)
        self.ids = to_device(np.concatenate([s.input_ids for s in streams]), device)  # (N, 6) uint8
        self.labels = None
        if self.objective == "predict":
            self.labels = to_device(np.concatenate([s.labels for s in streams]), device)  # (N,) uint8
        self.start = to_device(offsets[k] + start, device)  # first context of each window, in the concatenation
        self.avail = to_device(lengths[k] - start, device)  # contexts from there to the end of its stream
        self.span = torch.arange(self.seq_len + 1, device=device)

    def __len__(self) -> int:
        return self.n

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.seq_len
        live = self.span[None, :] < self.avail[idx][:, None]  # (B, T+1): inside the window's stream
        pos = torch.where(live, self.start[idx][:, None] + self.span[None, :], 0)
        tok = self.ids[pos].long()  # (B, T+1, 6)
        x = tok[:, :t].masked_fill(~live[:, :t, None], 0)
        if self.objective == "predict":
            y = self.labels[pos[:, :t]].long().masked_fill(~live[:, :t], IGNORE_INDEX)
        else:
            y = tok[:, 1:].masked_fill(~live[:, 1:, None], IGNORE_INDEX)
        return x, y

