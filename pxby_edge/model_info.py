"""What a model file holds, read without an interpreter or torch: what ``pxby-edge inspect`` prints.

    python -c "from pxby_edge.model_info import describe_model; from pxby_edge.generate import default_model_path; print(describe_model(default_model_path()))"
"""

from __future__ import annotations

import json

from pxby_edge.manifest import read_manifest
from pxby_edge.tflite_file import TFLiteFile


def manifest_json(path) -> str:
    """The manifest of a model file as stored, as indented JSON."""
    return json.dumps(read_manifest(path).to_dict(), indent=2)


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
        if c.get("calib_steps"):
            lines.append(f"calibrated {c.get('calib_steps')} samples from {c.get('source')}")
        else:
            lines.append(f"calibration none ({c.get('note', 'not needed by the recipe')})")
    lines.append("tensors")
    for kind, specs in (("in", m.inputs), ("out", m.outputs)):
        for s in specs:
            quant = f"scale {s.scale:.6g} zero point {s.zero_point}" if s.quantized else "not quantized"
            lines.append(f"  {kind:<3} {s.name:<8} {s.dtype:<8} {str(list(s.shape)):<16} {quant}   ({s.tensor})")
    weights = {}
    for t in sub.tensors:
        if t.buffer and f.buffers[t.buffer].size:
            weights[t.dtype] = weights.get(t.dtype, 0) + f.buffers[t.buffer].size
    lines.append("weights    " + ", ".join(f"{k} {v:,} B" for k, v in sorted(weights.items())))
    lines.append("ops        " + ", ".join(f"{k}×{v}" for k, v in sorted(f.op_counts(
        f.signature(m.signature).subgraph_index).items())))
    if m.fidelity:
        fid = m.fidelity
        keys = ("new_token_top1_agreement", "new_token_accuracy_float", "new_token_accuracy_quant", "mean_kl",
                "state_cosine_4096", "quant_bytes", "float_bytes")
        shown = [f"{k} {fid[k]:.4g}" if isinstance(fid[k], float) else f"{k} {fid[k]}" for k in keys if k in fid]
        if shown:
            lines.append("fidelity   " + ", ".join(shown))
    return "\n".join(lines)
