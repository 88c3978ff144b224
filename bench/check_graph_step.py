"""Does the graphed step (``--cuda-graph``) train like the eager one? Same seed, same batches, on CUDA.

    python bench/check_graph_step.py DATA upstream-batch64 40

Prints JSON: each run's mean training loss over the steps, and the largest parameter difference after
them relative to that parameter's largest magnitude (bf16 and atomics make the two differ slightly,
never by much).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import load_preset  # noqa: E402
from training.train import TrainingRun, setup_runtime  # noqa: E402


def trained(data: str, preset: str, steps: int, graph: bool) -> TrainingRun:
    model_cfg, cfg = load_preset(preset)
    cfg = replace(cfg, max_steps=10**6, eval_every=10**6)
    run = TrainingRun(data, Path(tempfile.mkdtemp()), model_cfg, cfg, setup_runtime("cuda"), log=lambda *_: None,
                      cuda_graph=graph)
    run.setup()
    run.start_steps()
    groups = run.step_groups()
    for _ in range(steps):
        run.train_step(next(groups))
    return run


def main() -> None:
    data, preset, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    eager, graph = trained(data, preset, steps, False), trained(data, preset, steps, True)
    rel = {}
    for (name, a), b in zip(eager.raw_model.named_parameters(), graph.raw_model.parameters()):
        rel[name] = float((a - b).abs().max() / a.abs().max().clamp(min=1e-12))
    ea, ga = eager.acc.tolist(), graph.acc.tolist()
    print(json.dumps({"preset": preset, "steps": steps, "eager_mean_loss": ea[0] / ea[5], "graph_mean_loss": ga[0] / ga[5],
                      "max_relative_param_diff": max(rel.values()), "per_param": rel}))


if __name__ == "__main__":
    main()
