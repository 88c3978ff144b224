"""Upstream's training loop, rewritten in its spirit, as the baseline for throughput comparisons.

    python bench/bench_train.py --config tiny

Kept on purpose as upstream does it (PixelBytes ``TokenPxByDataset``, ``collate_fn`` and
``aPxBySequenceModel._process_epoch``): a Dataset whose ``__getitem__`` walks the item list to find a
window, tensors built per window and padded by ``pad_sequence`` in the collate function, a shuffled
``DataLoader``, the model run on ``input_ids[:, :-1]`` against ``input_ids[:, 1:]`` with one
``CrossEntropyLoss`` over everything (padding weighted 1/120), ``autocast`` only when a GradScaler
is given, accuracy counted with ``.item()`` after every batch. Not used for training here.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset


class UpstreamWindows(Dataset):
    """Like upstream's TokenPxByDataset over already tokenized streams (window = seq_len + 1 contexts,
    so the model sees seq_len positions after the shift, as in our loop)."""

    def __init__(self, streams, seq_len: int, stride: int):
        self.window, self.stride = seq_len + 1, stride
        self.items = []
        self.total = 0
        for s in streams:
            n = len(s)
            k = max(1, (n - self.window) // stride + 1)
            self.items.append((s, n, k))
            self.total += k

    def __len__(self):
        return self.total

    def __getitem__(self, idx):
        idx = idx % self.total
        for s, n, k in self.items:  # upstream's linear walk over the items
            if idx < k:
                start = (idx * self.stride) % n
                ids = s.input_ids[start: start + self.window]
                labels = s.labels[start: start + self.window]
                return {"input_ids": torch.as_tensor(ids, dtype=torch.long),
                        "labels": torch.as_tensor(labels, dtype=torch.long)}
            idx -= k
        raise IndexError(idx)


def collate_fn(batch):
    return {
        "input_ids": pad_sequence([b["input_ids"] for b in batch], batch_first=True, padding_value=0),
        "labels": pad_sequence([b["labels"] for b in batch], batch_first=True, padding_value=-100),
    }


class UpstreamLoop:
    """Upstream's loop, resumable: ``run(steps)`` trains that many more optimizer steps, so a bench can warm
    it, time it in segments alternating with another loop, and stop to evaluate. Everything inside a step
    is upstream's (a DataLoader batch, the pageable copy, the ``.item()`` read-backs)."""

    def __init__(self, model, streams, batch_size: int, seq_len: int, stride: int, lr: float = 1e-3,
                 device="cpu", accumulation_steps: int = 1, use_scaler: bool = False, seed: int = 0):
        torch.manual_seed(seed)
        self.model, self.device, self.accumulation_steps = model, device, accumulation_steps
        self.vocab = model.config.vocab_size
        self.loader = DataLoader(UpstreamWindows(streams, seq_len, stride), batch_size=batch_size, shuffle=True,
                                 collate_fn=collate_fn)
        weight = torch.ones(self.vocab, device=device)
        weight[0] = 1 / 120
        self.criterion = nn.CrossEntropyLoss(weight=weight)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        model.to(device).train()
        self.batches = self._forever()
        self.total_loss = self.total_correct = self.total_samples = 0
        self.i = self.steps = 0

    def _forever(self):
        while True:
            yield from self.loader

    def run(self, steps: int) -> int:
        """``steps`` optimizer steps; returns the real (unpadded) positions trained on."""
        model, vocab, scaler = self.model, self.vocab, self.scaler
        tokens = done = 0
        while done < steps:
            batch = next(self.batches)
            input_ids = batch["input_ids"].to(self.device)
            with torch.amp.autocast(device_type="cuda", enabled=scaler is not None):
                outputs = model(input_ids[:, :-1]).contiguous().view(-1, vocab)
                target = input_ids[:, 1:].contiguous().view(-1)
                loss = self.criterion(outputs, target) / self.accumulation_steps
            (scaler.scale(loss) if scaler else loss).backward()
            if (self.i + 1) % self.accumulation_steps == 0:
                if scaler:
                    scaler.step(self.optimizer)
                    scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad()
                done += 1
            self.total_loss += loss.item() * self.accumulation_steps
            self.total_correct += (outputs.view(-1, outputs.size(-1)).argmax(-1) == target.view(-1)).sum().item()
            self.total_samples += target.numel()
            tokens += int((batch["labels"][:, 1:] != -100).sum())
            self.i += 1
        self.steps += done
        return tokens

