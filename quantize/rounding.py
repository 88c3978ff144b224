"""GPTQ rounding of the int8 weight matrices, chosen before ai-edge-quantizer sees the float file.

    python -c "import numpy as np; from quantize.rounding import gptq_round, row_scales; w = np.random.randn(4, 8); print(gptq_round(w, np.eye(8), row_scales(w)))"

Why: every recipe stores each FULLY_CONNECTED weight matrix as int8, symmetric per output row, and the
nearest grid point of each weight on its own is not what keeps the *outputs* closest. GPTQ (Frantar et
al., 2022, after Optimal Brain Surgeon) rounds one input column at a time and moves the columns not yet
rounded so they absorb the error, weighted by H = XᵀX of the inputs the matrix really sees; that
minimises ||(W - Ŵ) X||² far better than nearest rounding does. On the demo model the new-token top-1
agreement of the dynamic recipe goes from 97.9 % (nearest, OCTAV ranges) to 98.9-99.1 % on the
report's stream and from 97.4 % to 98.5 % on 27.5k further held-out steps (docs/BENCHMARKS.md, quantize).

What the matrices are: litert-torch lowers ``nn.LSTM`` to two FULLY_CONNECTED per layer, one on x_t with
``weight_ih_l{k}`` and one on h_{t-1} with ``weight_hh_l{k}`` (each with its own per-row scales), whose
outputs are added, and ``fc`` to one more on the top layer's h_t. The two gate matrices of a layer are
rounded together, as one matrix [W_ih | W_hh] on the input [x_t, h_{t-1}] (each half keeping its own
row scales), so the error of one half is absorbed by the other too; ``fc`` is rounded on its own.
X comes from the float model run teacher-forced over the calibration streams (never the evaluation
ones), as ``quantize.calibrate`` does.

How the quantizer is made to keep our integers: each row's scale is the one the quantizer computes
itself (max |w| / 127, narrow range [-127, 127]); the rounded matrix q·s is written into the float
file in place of the original, and every row keeps its largest weight on ±127, so the quantizer's
min/max recomputes the same scale and its round-to-nearest lands on exactly q. The recipe then takes
these ranges as they are (min/max, not OCTAV, whose clipping would re-round them), and
``check_weights`` reads the quantized file back and fails if any integer differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pxby_edge.errors import ModelFileError

ROUNDINGS = ("gptq", "nearest")
DEFAULT_ROUNDING = "gptq"
ROUNDING_HELP = {
    "gptq": "error-compensating rounding (GPTQ) of the int8 weights on calibration inputs",
    "nearest": "each weight to its nearest int8 value (the quantizer's own rounding)",
}
QMAX = 127  # symmetric narrow-range int8, as ai-edge-quantizer stores weights
GPTQ_DAMP = 0.01  # fraction of the mean diagonal added to H (the GPTQ paper's default)
GPTQ_POSITIONS = 16384  # at most this many teacher-forced positions make H


def row_scales(w: np.ndarray) -> np.ndarray:
    """Per-row scale of ``w`` as the quantizer computes it: max |w_row| / 127 (float32)."""
    bound = np.maximum(np.abs(np.asarray(w, np.float32)).max(axis=1), np.float32(1e-9))
    return (bound / np.float32(QMAX)).astype(np.float32)


def nearest_round(w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Round to nearest on per-row ``scale`` (R,): int32 (R, C) in [-127, 127]."""
    return np.clip(np.rint(np.asarray(w, np.float64) / np.asarray(scale, np.float64)[:, None]),
                   -QMAX, QMAX).astype(np.int32)


def gptq_round(w: np.ndarray, hessian: np.ndarray, scale: np.ndarray, *, damp: float = GPTQ_DAMP,
               act_order: bool = True, pinned=None) -> np.ndarray:
    """Integers q (R, C) in [-127, 127] with q·scale ≈ w where it matters for ``hessian`` = XᵀX (C, C).

    ``scale`` is per row (R,) or per element (R, C) (two matrices side by side, each with its own rows'
    scales). ``pinned`` (R, C) bool marks weights set to ±127 by their sign whatever the error feedback
    made of them: each row's largest weight, so the quantizer recomputes the same scale. Columns go in
    decreasing order of H's diagonal (``act_order``); an input that is always 0 gets H_ii = 1.
    """
    w = np.array(w, dtype=np.float64)
    rows, cols = w.shape
    s = np.asarray(scale, np.float64)
    s = np.broadcast_to(s[:, None] if s.ndim == 1 else s, (rows, cols))
    h = np.array(hessian, dtype=np.float64)
    if h.shape != (cols, cols):
        raise ValueError(f"hessian {h.shape} does not fit a weight of {cols} columns")
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    h[np.diag_indices(cols)] += damp * np.mean(np.diag(h))
    pin = np.zeros((rows, cols), bool) if pinned is None else np.asarray(pinned, bool)
    sign = np.sign(np.asarray(w))
    order = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(cols)
    w, s, pin, sign, h = w[:, order], s[:, order], pin[:, order], sign[:, order], h[order][:, order]
    # Upper Cholesky factor of H⁻¹: row i holds the update of columns i+1.. after column i is rounded.
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    q = np.zeros((rows, cols))
    for i in range(cols):
        col = w[:, i]
        qi = np.clip(np.rint(col / s[:, i]), -QMAX, QMAX)
        qi[pin[:, i]] = QMAX * sign[pin[:, i], i]
        q[:, i] = qi
        err = (col - qi * s[:, i]) / u[i, i]
        w[:, i + 1:] -= np.outer(err, u[i, i + 1:])
    return q[:, np.argsort(order)].astype(np.int32)


def max_pins(w: np.ndarray) -> np.ndarray:
    """Each row's largest |w| (first on ties), as a (R, C) mask."""
    a = np.abs(np.asarray(w))
    pin = np.zeros(a.shape, bool)
    pin[np.arange(a.shape[0]), a.argmax(axis=1)] = True
    return pin


@dataclass
class Rounded:
    """The rounded matrices by state-dict name: integers, row scales, and grid weights q·s (float32)."""

    ints: dict = field(default_factory=dict)
    scales: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def weights(self, name: str) -> np.ndarray:
        return (self.ints[name] * self.scales[name][:, None]).astype(np.float32)


def matmul_inputs(model, streams: list, max_positions: int = GPTQ_POSITIONS) -> dict:
    """What each matmul of the step sees over teacher-forced ``streams`` (each from a zero state).

    Returns {"x{k}": (N, in_k), "h{k}": (N, H) h_{t-1} of layer k, "top": (N, H) h_t of the last layer}.
    Position t needs h after t, i.e. the state before t + 1, so each item's last position is left out.
    """
    import torch

    from quantize.calibrate import lstm_states

    L = model.sequence_model.num_layers
    parts: dict = {}
    left = max_positions
    for s in streams:
        s = np.asarray(s, dtype=np.int32)
        if left <= 0 or len(s) < 2:
            continue
        s = s[:left + 1]
        h, _ = lstm_states(model, s)  # (T, L, H): h before each position
        with torch.no_grad():
            x0 = model.embedding(torch.as_tensor(s[:-1], dtype=torch.long)).reshape(len(s) - 1, -1).numpy()
        for k in range(L):
            parts.setdefault(f"x{k}", []).append(x0 if k == 0 else h[1:, k - 1])
            parts.setdefault(f"h{k}", []).append(h[:-1, k])
        parts.setdefault("top", []).append(h[1:, L - 1])
        left -= len(s) - 1
    if not parts:
        raise ValueError("no calibration position for GPTQ rounding (streams of fewer than 2 tokens)")
    return {k: np.concatenate(v).astype(np.float64) for k, v in parts.items()}


def gptq_weights(model, streams: list, max_positions: int = GPTQ_POSITIONS, damp: float = GPTQ_DAMP) -> Rounded:
    """GPTQ integers for every LSTM gate matrix and ``fc`` of ``model`` (upstream attribute names)."""
    lstm = model.sequence_model
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    xs = matmul_inputs(model, streams, max_positions)
    out = Rounded()
    for k in range(lstm.num_layers):
        ih, hh = f"sequence_model.weight_ih_l{k}", f"sequence_model.weight_hh_l{k}"
        w_ih, w_hh = sd[ih], sd[hh]
        s_ih, s_hh = row_scales(w_ih), row_scales(w_hh)
        x = np.concatenate([xs[f"x{k}"], xs[f"h{k}"]], axis=1)
        n = w_ih.shape[1]
        scale = np.concatenate([np.repeat(s_ih[:, None], n, 1), np.repeat(s_hh[:, None], w_hh.shape[1], 1)], 1)
        q = gptq_round(np.concatenate([w_ih, w_hh], 1), x.T @ x, scale, damp=damp,
                       pinned=np.concatenate([max_pins(w_ih), max_pins(w_hh)], 1))
        out.ints[ih], out.scales[ih] = q[:, :n], s_ih
        out.ints[hh], out.scales[hh] = q[:, n:], s_hh
    w_fc = sd["fc.weight"]
    s_fc = row_scales(w_fc)
    top = xs["top"]
    out.ints["fc.weight"] = gptq_round(w_fc, top.T @ top, s_fc, damp=damp, pinned=max_pins(w_fc))
    out.scales["fc.weight"] = s_fc
    out.summary = {"method": "gptq", "damp": damp, "act_order": True, "positions": int(len(top)),
                   "matrices": sorted(out.ints)}
    return out


def _constant_tensors(model_bytes: bytes):
    from pxby_edge.tflite_file import TFLiteFile

    f = TFLiteFile(model_bytes)
    for sg in f.subgraphs:
        for t in sg.tensors:
            if t.buffer and f.buffers[t.buffer].size:
                yield f, t


def replace_weights(float_model: bytes, originals: dict, replacements: dict) -> bytes:
    """``float_model`` with each constant equal to ``originals[name]`` overwritten by ``replacements[name]``.

    Tensors are found by content (litert-torch names them by module path, and the three (4H, H) gate
    matrices share a shape); each must be found exactly once, or the lowering is not what the rounding
    assumed and this fails rather than quantize something else.
    """
    out = bytearray(float_model)
    for name, new in replacements.items():
        old = np.asarray(originals[name], np.float32)
        hits = [(f, t) for f, t in _constant_tensors(float_model)
                if t.dtype == "float32" and tuple(t.shape) == old.shape and np.array_equal(f.tensor_array(t), old)]
        buffers = {t.buffer for _, t in hits}
        if len(buffers) != 1:
            raise ModelFileError(f"{name}: found {len(buffers)} constant tensors holding it in the float file, "
                                 "expected 1; cannot place its rounded weights")
        f, t = hits[0]
        b = f.buffers[t.buffer]
        out[b.offset:b.offset + b.size] = np.ascontiguousarray(new, dtype=np.float32).tobytes()
    return bytes(out)


def check_weights(quant_model: bytes, rounded: Rounded) -> int:
    """Fail unless every rounded matrix is in ``quant_model`` as our integers on our scales; returns how many."""
    found = set()
    for f, t in _constant_tensors(quant_model):
        if t.dtype != "int8" or len(t.shape) != 2:
            continue
        ints = f.tensor_array(t)
        for name, q in rounded.ints.items():
            if name not in found and ints.shape == q.shape and np.array_equal(ints, q):
                scale = np.asarray(t.quantization.scale, np.float64)
                if len(scale) == len(rounded.scales[name]) and np.allclose(scale, rounded.scales[name], rtol=1e-6):
                    found.add(name)
                    break
    missing = sorted(set(rounded.ints) - found)
    if missing:
        raise ModelFileError(f"the quantizer did not keep the rounded integers of {', '.join(missing)}")
    return len(found)
