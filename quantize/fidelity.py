"""How far a TFLite step file is from the float model: accuracy, agreement, KL, state drift, size.

    python -c "from quantize.fidelity import TFLiteStep; s = TFLiteStep(open('model.tflite','rb').read()); print(s.step([[0,0,0,0,0,0]])[0].shape)"

Everything is teacher-forced over one held-out stream (items back to back, the state carried across
them, as a long generation would): at position t the model sees context t and is scored on context
t + 1. The *new token* is slot 5 of the next context, the one token generation actually samples; the
other five slots are scored too (*all slots*). The quantized file runs exactly as the runtime will:
state out of step t, dequantized, re-quantized to the input's parameters, into step t + 1.
"""

from __future__ import annotations

import numpy as np

from pxby_edge.manifest import INPUT_C, INPUT_CONTEXT, INPUT_H, OUTPUT_C, OUTPUT_H, OUTPUT_LOGITS
from pxby_edge.tflite_file import TFLiteFile

_INT_RANGE = {"int8": (-128, 127), "int16": (-32768, 32767), "uint8": (0, 255)}


def quantize_array(x: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    if not scale:
        return np.asarray(x, dtype=dtype)
    lo, hi = _INT_RANGE[dtype]
    return np.clip(np.round(x / scale) + zero_point, lo, hi).astype(dtype)


def dequantize_array(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if not scale:
        return np.asarray(q, dtype=np.float32)
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


class TFLiteStep:
    """A step file under ai-edge-litert with float state kept outside: ``step(ctx) -> logits`` (float)."""

    def __init__(self, model: bytes, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        f = TFLiteFile(model)
        sig = f.signature()
        tensors = f.subgraphs[sig.subgraph_index].tensors
        self.inputs = {n: tensors[i] for n, i in sig.inputs.items()}
        self.outputs = {n: tensors[i] for n, i in sig.outputs.items()}
        from quantize.export import quiet

        with quiet():  # the interpreter logs its delegate to fd 2
            self.interp = Interpreter(model_content=bytes(model), num_threads=threads)
            self.interp.allocate_tensors()
        self.batch = self.inputs[INPUT_CONTEXT].shape[0]
        self.state_shape = tuple(self.inputs[INPUT_H].shape)
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros(self.state_shape, np.float32)
        self.c = np.zeros(self.state_shape, np.float32)

    def step(self, ctx) -> np.ndarray:
        it = self.interp
        ctx = np.asarray(ctx, dtype=np.int32).reshape(self.batch, -1)
        it.set_tensor(self.inputs[INPUT_CONTEXT].index, ctx)
        for name, value in ((INPUT_H, self.h), (INPUT_C, self.c)):
            t = self.inputs[name]
            it.set_tensor(t.index, quantize_array(value, t.dtype, t.scale, t.zero_point))
        it.invoke()
        out = {}
        for name in (OUTPUT_LOGITS, OUTPUT_H, OUTPUT_C):
            t = self.outputs[name]
            out[name] = dequantize_array(it.get_tensor(t.index), t.scale, t.zero_point)
        self.h, self.c = out[OUTPUT_H], out[OUTPUT_C]
        return out[OUTPUT_LOGITS]

    def run(self, contexts: np.ndarray) -> np.ndarray:
        """Teacher-forced over contexts (T, 6) from a zero state (lane 0 of every batch lane) → (T, slots, V)."""
        self.reset()
        out = [self.step(np.broadcast_to(c, (self.batch, c.shape[-1])))[0] for c in contexts]
        return np.stack(out)


def torch_reference(model, contexts: np.ndarray):
    """Float PyTorch, whole-sequence forward: logits (T, slots, V), final h, c (L, H)."""
    import torch

    with torch.no_grad():
        x = torch.as_tensor(contexts[None], dtype=torch.long)
        emb = model.embedding(x).reshape(1, x.shape[1], -1)
        y, (h, c) = model.sequence_model(emb)
        logits = model.fc(y[0]).reshape(x.shape[1], -1, model.embedding.num_embeddings)
    return logits.numpy(), h[:, 0].numpy(), c[:, 0].numpy()


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom else float(np.array_equal(a, b))


def scores(logits: np.ndarray, contexts: np.ndarray) -> dict:
    """Teacher-forced accuracy of logits (T, slots, V) on contexts (T, 6): all slots and the new token."""
    nxt = contexts[1:]  # (T-1, 6): the target of position t is context t + 1
    pred = logits[:-1].argmax(-1)  # (T-1, slots)
    new = pred[:, -1] == nxt[:, 5]
    if pred.shape[1] == 6:
        all_slots = float((pred == nxt).mean())
    else:  # predict objective: only the new token is predicted
        all_slots = float(new.mean())
    return {"all_slot_accuracy": all_slots, "new_token_accuracy": float(new.mean())}


def compare(ref: np.ndarray, other: np.ndarray) -> dict:
    """Agreement and KL(ref || other) of two logit streams (T, slots, V)."""
    lr, lo = _log_softmax(ref), _log_softmax(other)
    kl = (np.exp(lr) * (lr - lo)).sum(-1)  # (T, slots)
    top_r, top_o = ref.argmax(-1), other.argmax(-1)
    return {
        "new_token_top1_agreement": float((top_r[:, -1] == top_o[:, -1]).mean()),
        "all_slot_top1_agreement": float((top_r == top_o).mean()),
        "mean_kl": float(kl.mean()),
        "mean_kl_new_token": float(kl[:, -1].mean()),
        "max_abs_logit_diff": float(np.abs(ref - other).max()),
    }


def eval_stream(streams: list, steps: int) -> np.ndarray:
    """Items back to back, cut at ``steps`` contexts (repeated when the data is shorter)."""
    if not streams:
        raise ValueError("no evaluation stream")
    joined = np.concatenate([np.asarray(s, dtype=np.int32) for s in streams])
    reps = -(-steps // len(joined))
    return np.concatenate([joined] * reps)[:steps]


def fidelity_report(model, float_tflite: bytes, quant_tflite: bytes, contexts: np.ndarray) -> dict:
    """Float torch vs float TFLite vs quantized TFLite over ``contexts`` (T, 6)."""
    ref, h_ref, c_ref = torch_reference(model, contexts)
    f_step, q_step = TFLiteStep(float_tflite), TFLiteStep(quant_tflite)
    f_logits = f_step.run(contexts)
    q_logits = q_step.run(contexts)
    s_ref, s_f, s_q = scores(ref, contexts), scores(f_logits, contexts), scores(q_logits, contexts)
    vs_float = compare(ref, q_logits)
    f_vs = compare(ref, f_logits)
    h_q, c_q = q_step.h[:, 0], q_step.c[:, 0]
    return {
        "eval_steps": int(len(contexts)),
        "all_slot_accuracy_float": s_ref["all_slot_accuracy"],
        "all_slot_accuracy_float_tflite": s_f["all_slot_accuracy"],
        "all_slot_accuracy_quant": s_q["all_slot_accuracy"],
        "new_token_accuracy_float": s_ref["new_token_accuracy"],
        "new_token_accuracy_float_tflite": s_f["new_token_accuracy"],
        "new_token_accuracy_quant": s_q["new_token_accuracy"],
        "new_token_accuracy_drop_points": 100.0 * (s_ref["new_token_accuracy"] - s_q["new_token_accuracy"]),
        "new_token_top1_agreement": vs_float["new_token_top1_agreement"],
        "all_slot_top1_agreement": vs_float["all_slot_top1_agreement"],
        "mean_kl": vs_float["mean_kl"],
        "mean_kl_new_token": vs_float["mean_kl_new_token"],
        "max_abs_logit_diff_quant": vs_float["max_abs_logit_diff"],
        "max_abs_logit_diff_float_tflite": f_vs["max_abs_logit_diff"],
        "float_tflite_top1_agreement": f_vs["new_token_top1_agreement"],
        # After all eval_steps (4096 unless asked otherwise): drift of the carried state.
        "state_cosine_4096": _cosine(np.concatenate([h_ref, c_ref]), np.concatenate([h_q, c_q])),
        "h_cosine_final": _cosine(h_ref, h_q),
        "c_cosine_final": _cosine(c_ref, c_q),
        "float_tflite_state_cosine_final": _cosine(np.concatenate([h_ref, c_ref]),
                                                   np.concatenate([f_step.h[:, 0], f_step.c[:, 0]])),
    }
