"""Held-out accuracy of a checkpoint (per modality) and prompt adherence on colour words.

    python -m training.evaluate models/demo --data runs/synth1500 --adherence 8

Two measurements the demo depends on:

- ``held_out_metrics``: every held-out item run as one whole stream from a zero state (the way
  generation runs), all-slot and new-token accuracy overall and per modality of the token.
- ``prompt_adherence``: for each colour word of the synthetic set, generate sprites from prompts
  written like the dataset's texts (text → image, the image's geometry forced, sampled with
  ``pxby_edge.generate``'s constrained sampler) and count how often the dominant generated colour
  is the prompt's (``training.synth.dominant_colour``).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from pxby_edge.backends.base import Backend
from pxby_edge.backends.null import null_manifest
from training.checkpoint import KEY_AUDIO_RATE, KEY_SLICING, load_checkpoint, read_pxby
from training.data import held_out_streams
from training.model import PixelBytesLSTM, ensure_streamable


class TorchStepBackend(Backend):
    """The runtime's backend interface (``reset``, ``step(ctx (B, 6)) -> (B, slots, V)``) over the
    PyTorch model with a kept LSTM state: lets ``pxby_edge.generate.Generator`` drive a checkpoint."""

    name = "torch"

    def __init__(self, model: PixelBytesLSTM, batch: int = 1, slicing=None, audio_rate=None):
        self.model = ensure_streamable(model).eval()
        slots = 1 if model.config.objective == "predict" else model.config.pxby_dim
        self._init_common(null_manifest(int(batch), slots, slicing=slicing, audio_rate=audio_rate), None)
        self.state = None

    def reset(self, lanes=None) -> None:
        self.state = None

    def get_state(self):
        return self.state

    def set_state(self, state) -> None:
        self.state = state

    @torch.no_grad()
    def step(self, ctx: np.ndarray) -> np.ndarray:
        logits, self.state = self.model.step(torch.as_tensor(np.asarray(ctx), dtype=torch.long), self.state)
        return logits.reshape(self.batch, self.slots, -1).numpy()


def _modality_of_labels(labels: np.ndarray, vocab) -> np.ndarray:
    """0 text, 1 image, 2 audio for every position; separators belong to what they close."""
    kind = np.full(len(labels), -1)
    kind[(labels >= 3) & (labels < vocab.palette_offset)] = 0
    kind[(labels >= vocab.palette_offset) & (labels < vocab.action_offset)] = 1
    kind[labels >= vocab.action_offset] = 2
    last = 0
    for i in range(len(kind)):  # forward fill
        if kind[i] < 0:
            kind[i] = last
        last = kind[i]
    return kind


@torch.no_grad()
def held_out_metrics(model: PixelBytesLSTM, streams, batch: int = 8) -> dict:
    """All-slot and new-token accuracy over whole held-out streams (zero initial state), by modality."""
    from pxby_edge.vocab import Vocab

    vocab = Vocab()
    names = ("text", "image", "audio")
    sums = {k: np.zeros(4) for k in ("all", *names)}  # hit all, valid all, hit new, valid new
    for i in range(0, len(streams), batch):
        group = streams[i: i + batch]
        n = max(len(s) for s in group)
        x = np.zeros((len(group), n, 6), dtype=np.int64)
        for k, s in enumerate(group):
            x[k, : len(s)] = s.input_ids
        pred = model(torch.from_numpy(x)).argmax(-1).numpy()  # (B, N, 6)
        for k, s in enumerate(group):
            m = len(s) - 1  # position t predicts context t+1
            hit = pred[k, :m] == s.input_ids[1:].astype(np.int64)  # (m, 6)
            kind = _modality_of_labels(s.labels[:m].astype(np.int64), vocab)
            for key, sel in (("all", slice(None)), *((nm, kind == j) for j, nm in enumerate(names))):
                h = hit[sel]
                sums[key] += [h.sum(), h.size, h[:, 5].sum(), len(h)]
    out = {}
    for key, (ha, va, hn, vn) in sums.items():
        prefix = "" if key == "all" else f"{key}_"
        out[f"{prefix}acc_all"] = ha / max(va, 1)
        out[f"{prefix}acc_new"] = hn / max(vn, 1)
    out["items"] = len(streams)
    return out


def prompt_adherence(model: PixelBytesLSTM, per_colour: int = 8, seed: int = 0, temperature: float = 0.8,
                     size_px: int = 24, slicing=None) -> dict:
    """Fraction of generated sprites whose dominant colour is the prompt's colour word, per colour."""
    from pxby_edge.generate import GenerationRequest, Generator
    from pxby_edge.vocab import Vocab
    from training.synth import COLOURS, ELEMENTS, FEATURES, SIZES, caption, dominant_colour

    rng = np.random.default_rng(seed)
    prompts, wanted = [], []
    for colour in COLOURS:
        for _ in range(per_colour):
            element = list(ELEMENTS)[rng.integers(len(ELEMENTS))]
            size = list(SIZES)[rng.integers(len(SIZES))]
            feats = sorted(rng.choice(list(FEATURES), size=int(rng.integers(1, 4)), replace=False).tolist(),
                           key=list(FEATURES).index)
            prompts.append(caption(colour, element, size, feats))
            wanted.append(colour)
    vocab = Vocab()
    results = {c: [] for c in COLOURS}
    examples = []
    for k, (prompt, colour) in enumerate(zip(prompts, wanted)):
        backend = TorchStepBackend(model, 1, slicing)
        req = GenerationRequest(prompt=prompt, modalities=("text", "image"), complete_text=False, frames=1,
                                width=size_px, height=size_px, temperature=temperature, seed=seed + k,
                                max_tokens=size_px * (size_px + 1) + 8)
        gen = Generator(backend, req)
        for _ in gen.events():
            pass
        toks = np.asarray(gen.lanes[0].tokens)
        pixels = toks[(toks >= vocab.palette_offset) & (toks < vocab.action_offset)] - vocab.palette_offset
        got = dominant_colour(pixels)
        results[colour].append(got == colour)
        if len(examples) < 3 * len(COLOURS) and k % per_colour < 3:
            examples.append({"prompt": prompt, "dominant": got})
    per = {c: float(np.mean(v)) for c, v in results.items()}
    return {"per_colour": per, "overall": float(np.mean([x for v in results.values() for x in v])),
            "per_colour_n": per_colour, "temperature": temperature, "examples": examples}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Held-out accuracy and colour-word prompt adherence of a checkpoint.")
    ap.add_argument("checkpoint")
    ap.add_argument("--data", help="dataset the checkpoint was trained on (its held-out split is used)")
    ap.add_argument("--val-fraction", type=float, default=None)
    ap.add_argument("--adherence", type=int, default=0, help="sprites per colour word (0: skip)")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.checkpoint)
    pxby = read_pxby(args.checkpoint)
    slicing = pxby.get(KEY_SLICING, {"image": 1, "audio": 1})
    report = {"checkpoint": args.checkpoint, "parameters": model.num_parameters(), "slicing": slicing,
              "audio_rate": pxby.get(KEY_AUDIO_RATE)}
    if args.data:
        frac = args.val_fraction if args.val_fraction is not None else pxby.get("val_fraction", 0.05)
        streams = held_out_streams(args.data, slicing, frac)
        report["held_out"] = held_out_metrics(model, streams)
    if args.adherence:
        report["adherence"] = prompt_adherence(model, args.adherence, temperature=args.temperature, slicing=slicing)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
