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
WEIGHT_BITS = (8, 6, 5, 4)  # int8 (every recipe but int4), int4 (recipe int4); 6 and 5 only measured (bench/)
GPTQ_DAMP = 0.01  # fraction of the mean diagonal added to H (the GPTQ paper's default)
GPTQ_POSITIONS = 16384  # at most this many teacher-forced positions make H
CLIP_LOW, CLIP_GRID = 0.6, 21  # int4 row scales: alpha = max |w| fraction searched, and how many steps


def qmax_for(bits: int) -> int:
    """Largest integer of a symmetric ``bits``-bit grid: 127 for int8, 7 for int4.

    int4 weights are stored in [-8, 7] with scale max |w| / 7 (ai-edge-quantizer's symmetric int4); we
    keep to [-7, 7] so that the quantizer recomputes our scale from each row's largest weight.
    """
    if bits not in WEIGHT_BITS:
        raise ValueError(f"weights are rounded to {' or '.join(map(str, WEIGHT_BITS))} bits, not {bits}")
    return (1 << (bits - 1)) - 1


def row_scales(w: np.ndarray, qmax: int = QMAX) -> np.ndarray:
    """Per-row scale of ``w`` as the quantizer computes it: max |w_row| / qmax (float32)."""
    bound = np.maximum(np.abs(np.asarray(w, np.float32)).max(axis=1), np.float32(1e-9))
    return (bound / np.float32(qmax)).astype(np.float32)


def nearest_round(w: np.ndarray, scale: np.ndarray, qmax: int = QMAX) -> np.ndarray:
    """Round to nearest on per-row ``scale`` (R,): int32 (R, C) in [-qmax, qmax]."""
    return np.clip(np.rint(np.asarray(w, np.float64) / np.asarray(scale, np.float64)[:, None]),
                   -qmax, qmax).astype(np.int32)


def gptq_round(w: np.ndarray, hessian: np.ndarray, scale: np.ndarray, *, damp: float = GPTQ_DAMP,
               act_order: bool = True, pinned=None, qmax: int = QMAX) -> np.ndarray:
    """Integers q (R, C) in [-qmax, qmax] with q·scale ≈ w where it matters for ``hessian`` = XᵀX (C, C).

    ``scale`` is per row (R,) or per element (R, C) (two matrices side by side, each with its own rows'
    scales). ``pinned`` (R, C) bool marks weights set to ±qmax by their sign whatever the error feedback
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
        qi = np.clip(np.rint(col / s[:, i]), -qmax, qmax)
        qi[pin[:, i]] = qmax * sign[pin[:, i], i]
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
    bits: int = 8

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


def clipped_scales(w: np.ndarray, weight: np.ndarray, qmax: int, grid: int = CLIP_GRID) -> np.ndarray:
    """Per-row scale α·max|w_row|/qmax, α in [CLIP_LOW, 1], minimising Σ_j weight_j (w - ŵ)² of nearest rounding.

    At 4 bits one outlier per row sets a step too coarse for every other weight; clipping it trades its
    error for theirs (OCTAV does the same for the quantizer's own rounding). ``weight`` is H's diagonal,
    so the inputs that are large count more. The clipped weights are pinned at ±qmax by ``max_pins``, so
    the quantizer still recomputes exactly this scale from the rounded matrix.
    """
    w = np.asarray(w, np.float64)
    bound = np.maximum(np.abs(w).max(axis=1), 1e-9)
    best = np.full(len(w), np.inf)
    # alpha = 1 (the row's own max) is tried last and wins only when strictly better, but a row already on
    # its grid (a ``train --qat`` checkpoint) has zero error there and keeps its scale exactly.
    out = bound / qmax
    for alpha in np.linspace(CLIP_LOW, 1.0, grid):
        s = alpha * bound / qmax
        err = (((w - np.clip(np.rint(w / s[:, None]), -qmax, qmax) * s[:, None]) ** 2) * weight).sum(axis=1)
        better = err < best
        best[better], out[better] = err[better], s[better]
    return out.astype(np.float32)


def to_bfloat16(x: np.ndarray) -> np.ndarray:
    """``x`` rounded (to nearest even) to bfloat16's 8 significant bits, as float32.

    The int4 file stores row scales that way (ai-edge-quantizer's blockwise scales; ``quantize.recipes``);
    a scale already on that grid goes through unchanged, so the rounding here is the only one. Finite
    inputs only (scales are): the bit trick below is the standard float32 → bfloat16 conversion."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).reshape(np.shape(x))


def _scales(w: np.ndarray, diag: np.ndarray, qmax: int) -> np.ndarray:
    from quantize.recipes import ROW_BLOCK_WIDTHS

    if qmax == QMAX:
        return row_scales(w, qmax)
    s = clipped_scales(w, diag, qmax)
    # Rows stored as one block keep a bfloat16 scale; per-channel rows keep float32 (0.3 points of
    # agreement on the upstream-size model when its 512-wide rows were rounded to bfloat16 too).
    return to_bfloat16(s) if w.shape[1] in ROW_BLOCK_WIDTHS else s


def gptq_weights(model, streams: list, max_positions: int = GPTQ_POSITIONS, damp: float = GPTQ_DAMP,
                 bits: int = 8) -> Rounded:
    """GPTQ integers for every LSTM gate matrix and ``fc`` of ``model`` (upstream attribute names).

    ``bits`` 8: max-abs row scales (what the quantizer computes); 4: clipped row scales (``clipped_scales``).
    """
    qmax = qmax_for(bits)
    lstm = model.sequence_model
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    xs = matmul_inputs(model, streams, max_positions)
    out = Rounded(bits=bits)
    for k in range(lstm.num_layers):
        ih, hh = f"sequence_model.weight_ih_l{k}", f"sequence_model.weight_hh_l{k}"
        w_ih, w_hh = sd[ih], sd[hh]
        x = np.concatenate([xs[f"x{k}"], xs[f"h{k}"]], axis=1)
        hessian = x.T @ x
        n = w_ih.shape[1]
        diag = np.diag(hessian)
        s_ih, s_hh = _scales(w_ih, diag[:n], qmax), _scales(w_hh, diag[n:], qmax)
        scale = np.concatenate([np.repeat(s_ih[:, None], n, 1), np.repeat(s_hh[:, None], w_hh.shape[1], 1)], 1)
        q = gptq_round(np.concatenate([w_ih, w_hh], 1), hessian, scale, damp=damp, qmax=qmax,
                       pinned=np.concatenate([max_pins(w_ih), max_pins(w_hh)], 1))
        out.ints[ih], out.scales[ih] = q[:, :n], s_ih
        out.ints[hh], out.scales[hh] = q[:, n:], s_hh
    w_fc = sd["fc.weight"]
    top = xs["top"]
    hessian = top.T @ top
    s_fc = _scales(w_fc, np.diag(hessian), qmax)
    out.ints["fc.weight"] = gptq_round(w_fc, hessian, s_fc, damp=damp, pinned=max_pins(w_fc), qmax=qmax)
    out.scales["fc.weight"] = s_fc
    out.summary = {"method": "gptq", "bits": bits, "damp": damp, "act_order": True, "positions": int(len(top)),
                   "scales": "max-abs" if qmax == QMAX else f"clipped (alpha {CLIP_LOW}..1, {CLIP_GRID} steps)",
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
        if t.dtype != f"int{rounded.bits}" or len(t.shape) != 2:
            continue
        ints = f.tensor_array(t)
        for name, q in rounded.ints.items():
            if name not in found and ints.shape == q.shape and np.array_equal(ints, q):
                scale = np.asarray(t.quantization.scale, np.float64)
                if t.quantization.block_size == t.shape[1]:  # one block per row: the row scales
                    scale = f.block_scales(t)[:, 0].astype(np.float64)
                if len(scale) == len(rounded.scales[name]) and np.allclose(scale, rounded.scales[name], rtol=1e-6):
                    found.add(name)
                    break
    missing = sorted(set(rounded.ints) - found)
    if missing:
        raise ModelFileError(f"the quantizer did not keep the rounded integers of {', '.join(missing)}")
    return len(found)
