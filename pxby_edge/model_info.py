"""What a model file holds, read without an interpreter or torch: what ``pxby-edge inspect`` prints.

    python -c "from pxby_edge.model_info import describe_model; from pxby_edge.generate import default_model_path; print(describe_model(default_model_path()))"
"""

from __future__ import annotations

import collections
import json

from pxby_edge.manifest import read_manifest
from pxby_edge.tflite_file import TFLiteFile


def manifest_json(path) -> str:
    """The manifest of a model file as stored, as indented JSON."""
    return json.dumps(read_manifest(path).to_dict(), indent=2)


# Ops that only convert between float and integer; anywhere else a float tensor means float arithmetic.
CONVERT_OPS = ("QUANTIZE", "DEQUANTIZE")


def op_dtypes(f: TFLiteFile, subgraph: int = 0) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(op name, input dtypes, output dtypes) of every op of ``subgraph``, in graph order ("-": no input)."""
    sub = f.subgraphs[subgraph]
    return [(f.op_name(op), tuple(sub.tensors[i].dtype if i >= 0 else "-" for i in op.inputs),
             tuple(sub.tensors[i].dtype for i in op.outputs)) for op in sub.operators]


def float_compute_ops(f: TFLiteFile, subgraph: int = 0) -> list[str]:
    """Ops that compute in float: any op but QUANTIZE/DEQUANTIZE touching a float tensor, and any
    QUANTIZE/DEQUANTIZE whose float side is not a graph input/output (a float value inside the graph).
    Empty for a full-integer file."""
    sub = f.subgraphs[subgraph]
    edges = set(sub.inputs) | set(sub.outputs)
    found = []
    for op in sub.operators:
        name = f.op_name(op)
        floats = [i for i in (*op.inputs, *op.outputs) if i >= 0 and sub.tensors[i].dtype.startswith("float")]
        if floats and (name not in CONVERT_OPS or any(i not in edges for i in floats)):
            found.append(name)
    return found


def op_dtype_lines(f: TFLiteFile, subgraph: int = 0) -> list[str]:
    """One line per distinct (op, input dtypes → output dtypes), with its count, in first-seen order."""
    counts: dict = {}
    for entry in op_dtypes(f, subgraph):
        counts[entry] = counts.get(entry, 0) + 1
    width = max((len(name) for name, _, _ in counts), default=0)
    return [f"  {name:<{width}} ×{n:<3} {', '.join(ins)} → {', '.join(outs)}"
            for (name, ins, outs), n in counts.items()]


def matrix_storage(f: TFLiteFile, subgraph: int = 0) -> dict[str, int]:
    """How the quantized weight matrices are stored: {"int4 per channel": 1, "int4 in row blocks": 4, ...}."""
    out: collections.Counter = collections.Counter()
    for t in f.subgraphs[subgraph].tensors:
        q = t.quantization
        if len(t.shape) != 2 or not t.quantized or not t.buffer or not f.buffers[t.buffer].size:
            continue
        if q.block_size:
            what = "in row blocks (float16 scale)" if q.block_size == t.shape[1] else f"in blocks of {q.block_size}"
        else:
            what = "per channel (float32 scale, int64 zero point)" if q.per_channel else "per tensor"
        out[f"{t.dtype} {what}"] += 1
    return dict(out)


def describe_model(path) -> str:
    """What ``pxby-edge inspect`` prints: manifest, tensors with their quantization, sizes, operators."""
    f = TFLiteFile.open(path)
    m = read_manifest(f)
    sub = f.subgraphs[f.signature(m.signature).subgraph_index]
    cfg = m.model
    lines = [
        f"{path}: {len(f.data):,} bytes ({f.constant_bytes():,} in constant tensors), "
        f"manifest format {m.format_version}, pxby-edge {m.pxby_edge_version or '?'}",
        f"model      {m.objective}, embed {cfg.get('embed_size')}, hidden {cfg.get('hidden_size')}, "
        f"layers {cfg.get('num_layers')}, vocab {m.vocab.size}, {m.slots} logit slot(s)",
        f"tokenizer  slicing image {m.slicing.get('image')} audio {m.slicing.get('audio')}"
        + (f", audio {m.audio_rate:g} Hz" if m.audio_rate else ""),
        f"recipe     {m.recipe}, batch {m.batch}, signature {m.signature!r}",
        f"checkpoint sha256 {m.checkpoint_sha256 or '?'}",
    ]
    if m.calibration:
        c = m.calibration
        rounding = c.get("rounding") if isinstance(c.get("rounding"), dict) else {}
        if rounding.get("method"):
            qat = rounding.get("qat") if isinstance(rounding.get("qat"), dict) else {}
            trained = rounding.get("checkpoint_trained_for")
            lines.append(f"weights    rounded {rounding['method']}"
                         + (f" to {rounding['bits']} bits" if rounding.get("bits") else "")
                         + (f", then {qat.get('steps')} QAT steps" if qat.get("steps") else "")
                         + (f" (checkpoint trained for {trained}: train --qat)" if isinstance(trained, str) else ""))
        if c.get("calib_steps"):
            ranges = c.get("ranges") if isinstance(c.get("ranges"), dict) else {}
            lines.append(f"calibrated {c.get('calib_steps')} samples from {c.get('source')}"
                         + (f", {ranges.get('method')} ranges" if ranges.get("method") else "")
                         + (f" capped at ±{ranges['cap']:g}" if isinstance(ranges.get("cap"), (int, float)) else ""))
        else:
            lines.append(f"calibration none ({c.get('note', 'not needed by the recipe')})")
    lines.append("tensors")
    for kind, specs in (("in", m.inputs), ("out", m.outputs)):
        for s in specs:
            quant = f"scale {s.scale:.6g} zero point {s.zero_point}" if s.quantized else "not quantized"
            lines.append(f"  {kind:<3} {s.name:<8} {s.dtype:<8} {str(list(s.shape)):<16} {quant}   ({s.tensor})")
    index = f.signature(m.signature).subgraph_index
    weights = {}
    for t in sub.tensors:
        if t.buffer and f.buffers[t.buffer].size:
            weights[t.dtype] = weights.get(t.dtype, 0) + f.buffers[t.buffer].size
    lines.append("weights    " + ", ".join(f"{k} {v:,} B" for k, v in sorted(weights.items())))
    storage = matrix_storage(f, index)
    if storage:
        lines.append("matrices   " + ", ".join(f"{n} {what}" for what, n in sorted(storage.items())))
    lines.append("ops        " + ", ".join(f"{k}×{v}" for k, v in sorted(f.op_counts(index).items())))
    floats = float_compute_ops(f, index)
    lines.append("op dtypes  (inputs → outputs) " + (f"float ops: {', '.join(sorted(set(floats)))}" if floats
                                                    else "full integer: no op reads or writes a float tensor"))
    lines.extend(op_dtype_lines(f, index))
    if m.fidelity:
        fid = m.fidelity
        keys = ("new_token_top1_agreement", "new_token_accuracy_float", "new_token_accuracy_quant", "mean_kl",
                "state_cosine_4096", "quant_bytes", "float_bytes")
        shown = [f"{k} {fid[k]:.4g}" if isinstance(fid[k], float) else f"{k} {fid[k]}" for k in keys if k in fid]
        if shown:
            lines.append("fidelity   " + ", ".join(shown))
    return "\n".join(lines)
