"""Held-out token streams → realistic (context, h, c) triples for the int8 calibrator, deterministically.

    python -c "from quantize.calibrate import synthetic_streams; print([s.shape for s in synthetic_streams(2, {'image': 1, 'audio': 4})])"

An LSTM's state ranges depend on how far into a stream it is, so calibrating on zeros or noise sets
the int8 ranges wrong. The float model runs teacher-forced over real items (each from a zero state, as
generation starts) and ``calib_steps`` of the positions it visits are kept, evenly spaced, with the
state it had there. Same data, same steps: same triples, hence the same quantized file.

Data sources: a dataset ``training.data`` reads (upstream folder layout, parquet), ``.npz`` files with
``input_ids`` (N, 6) (tokenizer output), or, by default, synthetic items from ``training.synth`` made
with seeds the training set never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pxby_edge.errors import DatasetError
from pxby_edge.manifest import INPUT_NAMES

# Seeds of the default synthetic held-out items: the training dataset uses seed 0 and item indices from 0.
CALIB_SEED = 1_000_003
EVAL_SEED = 2_000_003


@dataclass
class Streams:
    """Token streams (each (N, 6) int) and where they came from, for the manifest."""

    streams: list
    source: str
    ids: list = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return int(sum(len(s) for s in self.streams))


def synthetic_streams(n: int, slicing: dict, seed: int = CALIB_SEED) -> list[np.ndarray]:
    """``n`` synthetic items (text, sprite, cry) tokenized as the training pipeline does."""
    from pxby_edge.tokenizer import ActionPixelBytesTokenizer, concat_segments
    from training.synth import make_item

    tok = ActionPixelBytesTokenizer(data_slicing=dict(slicing))
    out = []
    for i in range(n):
        item = make_item(i, seed)
        arrays = [tok.process_text(item.text), tok.image_array(np.asarray(item.frames) + tok.bytes_size),
                  tok.process_audio(item.audio)]
        out.append(concat_segments(arrays)["input_ids"].astype(np.int32))
    return out


MAX_CALIB_BYTES = 1 << 30  # all calibration contexts together, as int32


def npz_streams(path: Path) -> list[np.ndarray]:
    """The (N, 6) context streams of token .npz files, bounded and checked as the runtime reads them
    (``pxby_edge.readers.load_npz``: regular files, 256 MiB decompressed); ids are checked against the
    model's vocabulary by ``check_token_ids``."""
    from pxby_edge.errors import MediaError
    from pxby_edge.readers import load_npz

    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    out = []
    for f in files:
        if not f.is_file():  # is_file follows links: a FIFO, a device or a link to one is refused
            raise DatasetError(f"{f} is not a regular file; give .npz token files")
        try:
            ids = load_npz(f)["input_ids"]
        except MediaError as exc:
            raise DatasetError(str(exc)) from exc
        except KeyError as exc:
            raise DatasetError(f"{f}: not a token file with input_ids") from exc
        if ids.dtype.kind not in "iu":
            raise DatasetError(f"{f}: input_ids must be integer token ids, got {ids.dtype}")
        if ids.ndim not in (2, 3) or ids.shape[-1] != 6:
            raise DatasetError(f"{f}: input_ids must be (N, 6) or (B, N, 6) contexts, got shape {ids.shape}")
        ids = ids[None] if ids.ndim == 2 else ids
        out.extend(a.astype(np.int32) for a in ids if len(a))
        if sum(a.nbytes for a in out) > MAX_CALIB_BYTES:  # each file is bounded; a folder of them is too
            raise DatasetError(f"{path}: the token files hold more than {MAX_CALIB_BYTES >> 20} MiB of contexts; "
                               "calibration needs a few thousand, give fewer files")
    return out


def check_token_ids(streams: list[np.ndarray], vocab_size: int, source) -> None:
    """DatasetError when a stream holds an id the model has no embedding for (it would index past it)."""
    for s in streams:
        if s.size and (int(s.min()) < 0 or int(s.max()) >= vocab_size):
            raise DatasetError(f"{source}: token ids outside 0..{vocab_size - 1} (found {int(s.min())}..{int(s.max())}); "
                               "was it tokenized with another vocabulary?")


def load_streams(source, slicing: dict, val_fraction: float = 0.05) -> Streams:
    """Held-out token streams of ``source`` (None: synthetic); DatasetError when there are none."""
    if source is None:
        return Streams(synthetic_streams(4, slicing, CALIB_SEED), f"synthetic (seed {CALIB_SEED}, 4 items)")
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"no calibration data at {path}")
    if path.suffix == ".npz" or (path.is_dir() and any(path.glob("*.npz")) and not any(path.glob("*.parquet"))
                                 and not (path / "text").is_dir()):
        streams = npz_streams(path)
        if not streams:
            raise DatasetError(f"{path}: no token streams (no .npz with input_ids)")
        return Streams(streams, f"{path} (.npz tokens)")
    from training.data import held_out_streams, iter_streams

    held = held_out_streams(path, dict(slicing), val_fraction)
    what = f"{path} (held-out items, val_fraction {val_fraction})"
    if not held:  # a dataset too small to hold any out: calibrate on what there is, and say so
        held = list(iter_streams(path, dict(slicing)))
        what = f"{path} (all items: none held out at val_fraction {val_fraction})"
    if not held:
        raise DatasetError(f"{path} holds no usable item for calibration")
    return Streams([s.input_ids.astype(np.int32) for s in held], what, [s.id for s in held])


def split_streams(streams: Streams) -> tuple[Streams, Streams]:
    """(calibration, evaluation): alternate items when there are two or more, else share the one."""
    if len(streams.streams) < 2:
        return streams, streams
    cal = Streams(streams.streams[0::2], streams.source + ", even items", streams.ids[0::2])
    ev = Streams(streams.streams[1::2], streams.source + ", odd items", streams.ids[1::2])
    return cal, ev


def lstm_states(model, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States (h, c) before every position of a teacher-forced run from zero: each (T, L, H).

    One single-layer ``nn.LSTM`` call per layer gives that layer's h at every position; c follows from
    the gates, which need only x_t and h_{t-1}, so what is left is an elementwise recurrence. Stepping the
    module token by token gives the same numbers at a hundred times the cost.
    """
    import torch

    lstm = model.sequence_model
    L, H = lstm.num_layers, lstm.hidden_size
    T = len(contexts)
    hs, cs = [], []
    with torch.no_grad():
        x = model.embedding(torch.as_tensor(np.asarray(contexts), dtype=torch.long)).reshape(T, -1)  # (T, 6·E/6)
        for k in range(L):
            layer = torch.nn.LSTM(x.shape[-1], H, 1, batch_first=True, bias=lstm.bias)
            params = {f"{n}_l0": getattr(lstm, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                      if hasattr(lstm, f"{n}_l{k}")}
            layer.load_state_dict(params)
            h_seq = layer(x[None])[0][0]  # (T, H): h after each position
            h_prev = torch.cat([torch.zeros(1, H), h_seq[:-1]])  # (T, H): h before each position
            gates = x @ params["weight_ih_l0"].T + h_prev @ params["weight_hh_l0"].T  # (T, 4H): i, f, g, o
            if lstm.bias:
                gates = gates + params["bias_ih_l0"] + params["bias_hh_l0"]
            i, f = torch.sigmoid(gates[:, :H]), torch.sigmoid(gates[:, H:2 * H])
            ig = (i * torch.tanh(gates[:, 2 * H:3 * H])).numpy()
            f = f.numpy()
            c = np.zeros((T + 1, H), np.float32)
            for t in range(T):
                c[t + 1] = f[t] * c[t] + ig[t]
            hs.append(h_prev.numpy())
            cs.append(c[:-1])
            x = h_seq
    return np.stack(hs, axis=1), np.stack(cs, axis=1)


def teacher_forced_states(step, streams: list, max_steps: int, model=None):
    """Walk the float model over streams (zero state at each item) for at most ``max_steps`` positions.

    Returns contexts (N, 6) int32, h (N, L, H), c (N, L, H): the state *before* each context.
    """
    model = model if model is not None else step
    ctxs, hs, cs = [], [], []
    left = max_steps
    for s in streams:
        if left <= 0:
            break
        s = np.asarray(s[:left], dtype=np.int32)
        h, c = lstm_states(model, s)
        ctxs.append(s)
        hs.append(h)
        cs.append(c)
        left -= len(s)
    if not ctxs or not sum(len(s) for s in ctxs):
        raise DatasetError("the calibration data holds no token")
    return np.concatenate(ctxs), np.concatenate(hs), np.concatenate(cs)


def calibration_samples(step, streams: Streams, calib_steps: int, batch: int = 1, pool: int = 0):
    """``calib_steps`` signature inputs (dicts by input name), each a batch of ``batch`` triples.

    Positions are spread evenly over the first ``pool`` positions (default 4 × the triples needed, at
    least 4096) so early (near-zero) and late states both set the ranges. Returns (samples, summary).
    """
    if calib_steps < 1:
        raise DatasetError(f"--calib-steps must be at least 1, got {calib_steps}")
    need = calib_steps * batch
    pool = pool or max(4 * need, 4096)
    ctx, h, c = teacher_forced_states(step, streams.streams, pool)
    n = len(ctx)
    picks = np.linspace(0, n - 1, need).round().astype(int) if n >= need else np.arange(need) % n
    samples = []
    for k in range(calib_steps):
        idx = picks[k * batch: (k + 1) * batch]
        # (B, 6), (L, B, H), (L, B, H): the step graph's layout.
        values = (ctx[idx], np.ascontiguousarray(h[idx].transpose(1, 0, 2)),
                  np.ascontiguousarray(c[idx].transpose(1, 0, 2)))
        samples.append(dict(zip(INPUT_NAMES, values)))
    summary = {
        "source": streams.source,
        "items": len(streams.streams),
        "tokens_available": streams.tokens,
        "positions_walked": int(n),
        "calib_steps": int(calib_steps),
        "batch": int(batch),
        "h_abs_max": float(np.abs(h).max()),
        "c_abs_max": float(np.abs(c).max()),
    }
    return samples, summary
