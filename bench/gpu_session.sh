#!/usr/bin/env bash
# Everything issue 23 measures on a GPU, in one run (a session is lent 15 device-minutes in all):
#
#   bash bench/gpu_session.sh OUT DATA            # on the GPU machine; DATA: 600 synthetic items (carried)
#   bash bench/gpu_session.sh OUT DATA rehearsal  # the same steps on CPU at toy sizes, to test this script
#
# 1. an upstream-preset checkpoint trained for 2 minutes (for quantization), tarred into OUT (split < 16 MiB);
# 2. host syncs inside our step, checked by CUDA itself (torch.cuda.set_sync_debug_mode("error"));
# 3. tokens/s, ours (bf16) against the upstream-style loop (fp16 + GradScaler), batch 32 and 256 x 1024;
# 4. wall time to held-out new-token accuracy 0.75: ours with upstream-batch256, the reference with upstream.
# Each step has its own time limit and writes its own file, so a step that fails or overruns costs only itself.
set -u
OUT=${1:?OUT folder}
DATA=${2:?dataset folder}
MODE=${3:-gpu}
PY=${PY:-python3}
export PYTHONPATH=$PWD PYTHONWARNINGS=ignore
mkdir -p "$OUT"
LOG=$OUT/session.log
WORK=$(mktemp -d)

if [ "$MODE" = rehearsal ]; then
    DEV=cpu; CFG=tiny; FAST=tiny; MINUTES=0.1; T_CKPT=60; T_BENCH=120; T_ACC=120
    BENCH=(--batches 4,8 --warmup 2 --rounds 2 --min-steps 8 --min-seconds 0)
    GRAPH=()
    GRAPH_BENCH=(--batches 4,8 --warmup 2 --rounds 2 --min-steps 4 --min-seconds 0)
    ACC=(--to-accuracy 0.02 --budget-s 5 --eval-tokens 4000 --ours-set batch_size=8)
else
    DEV=cuda; CFG=upstream; FAST=upstream-batch256; MINUTES=2; T_CKPT=170; T_BENCH=150; T_ACC=230
    BENCH=(--batches 32,256 --warmup 10 --rounds 4 --min-steps 100 --min-seconds 0)
    GRAPH=(--cuda-graph)
    GRAPH_BENCH=(--batches 32,256 --warmup 8 --rounds 2 --min-steps 40 --min-seconds 0)
    ACC=(--to-accuracy 0.75 --budget-s 90 --eval-tokens 2e6)
fi
step() { echo "== $(date -u +%T) $*" >>"$LOG"; }

step environment
{ nvidia-smi -L 2>&1 || true; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no gpu')"; } >>"$LOG" 2>&1

step "checkpoint: python -m training --data DATA --out ckpt --config $CFG --max-minutes $MINUTES --device $DEV"
timeout "$T_CKPT" $PY -m training --data "$DATA" --out "$WORK/ckpt" --config "$CFG" --max-minutes "$MINUTES" \
    --device "$DEV" --no-progress --force >"$WORK/ckpt.log" 2>&1
echo "rc $?" >>"$LOG"
tail -n 4 "$WORK/ckpt.log" >>"$LOG"
if [ -f "$WORK/ckpt/model.safetensors" ]; then
    cp "$WORK/ckpt.log" "$WORK/ckpt/train.log"
    tar -C "$WORK" -cf "$WORK/ckpt.tar" ckpt/config.json ckpt/model.safetensors ckpt/metrics.csv \
        ckpt/train_config.json ckpt/train.log
    split -b 15M -d "$WORK/ckpt.tar" "$OUT/ckpt.tar.part"
    sha256sum "$WORK/ckpt.tar" >>"$LOG"
fi

step "sync check: no host sync inside 20 steps of ours"
timeout 60 $PY - "$DATA" "$CFG" "$DEV" >>"$LOG" 2>&1 <<'EOF'
import sys, tempfile
from dataclasses import replace
import torch
from training.config import load_preset
from training.train import LOG_EVERY, TrainingRun, setup_runtime
data, cfg_name, dev = sys.argv[1:4]
m, cfg = load_preset(cfg_name)
cfg = replace(cfg, max_steps=10**6, eval_every=10**6)
run = TrainingRun(data, tempfile.mkdtemp(), m, cfg, setup_runtime(dev), log=lambda *_: None)
run.setup()
run.start_steps()
groups = run.step_groups()
for _ in range(3):
    run.train_step(next(groups))
if dev == "cuda":
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
try:
    while run.step < LOG_EVERY - 1:
        run.train_step(next(groups))
    how = "under set_sync_debug_mode('error'): no host sync" if dev == "cuda" else "(CPU: CUDA's check not armed)"
    print(f"sync check: steps 4..{run.step} ran {how}")
except RuntimeError as exc:
    print(f"sync check FAILED at step {run.step + 1}: {exc}")
EOF

step "throughput: bench_train.py --config $CFG ${BENCH[*]}"
timeout "$T_BENCH" $PY bench/bench_train.py --config "$CFG" --data "$DATA" --cache-dir "$DATA/.pxby-cache" --device "$DEV" "${BENCH[@]}" --json \
    >"$OUT/bench_train_throughput.json" 2>>"$LOG"
echo "rc $?" >>"$LOG"

# Our step as a CUDA graph, in its own process (a capture that fails must not take the figures above with it).
if [ ${#GRAPH[@]} -gt 0 ]; then
    step "graphed step: bench_train.py --config $CFG ${GRAPH_BENCH[*]} --cuda-graph"
    timeout 100 $PY bench/bench_train.py --config "$CFG" --data "$DATA" --cache-dir "$DATA/.pxby-cache" \
        --device "$DEV" "${GRAPH_BENCH[@]}" "${GRAPH[@]}" --json >"$OUT/bench_train_graph.json" 2>>"$LOG"
    echo "rc $?" >>"$LOG"
fi

# The graphed step goes into the race only where it measured faster than the eager one at the race's batch.
FASTER=$($PY - "$OUT/bench_train_throughput.json" "$OUT/bench_train_graph.json" 2>/dev/null <<'EOF'
import json, sys
eager, graph = ({r["batch"]: r for r in json.load(open(p))["throughput"]} for p in sys.argv[1:3])
print("--cuda-graph" if (graph[256].get("ratio") or 0) > 1.03 * eager[256]["ratio"] else "")
EOF
)
ACC+=($FASTER)
step "to accuracy: bench_train.py --config $CFG --ours-config $FAST ${ACC[*]}"
timeout "$T_ACC" $PY bench/bench_train.py --config "$CFG" --ours-config "$FAST" --batches "" --data "$DATA" \
    --cache-dir "$DATA/.pxby-cache"     --device "$DEV" "${ACC[@]}" --json >"$OUT/bench_train_accuracy.json" 2>>"$LOG"
echo "rc $?" >>"$LOG"
step done
rm -rf "$WORK"
