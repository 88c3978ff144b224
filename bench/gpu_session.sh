#!/usr/bin/env bash
# Everything issue 23 measures on a GPU, in one run (a session is lent 15 device-minutes in all):
#
#   bash bench/gpu_session.sh OUT DATA            # on the GPU machine; DATA: 600 synthetic items (carried)
#   bash bench/gpu_session.sh OUT DATA rehearsal  # the same steps on CPU at toy sizes, to test this script
#
# 1. an upstream-preset checkpoint trained for 2 minutes (for quantization), tarred into OUT (split < 16 MiB);
# 2. host syncs inside our (eager) step, checked by CUDA itself (torch.cuda.set_sync_debug_mode("error"));
# 3. the graphed step against the eager one, same seed (bench/check_graph_step.py);
# 4. tokens/s at batch 32 and 256 x 1024: ours (bf16; CUDA graph, then eager) against the upstream-style
#    loop (fp16 + GradScaler);
# 5. wall time to held-out new-token accuracy 0.75, ours and the reference both with the upstream preset.
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
    DEV=cpu; CFG=tiny; MINUTES=0.1; T_CKPT=60; T_BENCH=120; T_ACC=120
    BENCH=(--batches 4,8 --warmup 2 --rounds 2 --min-steps 8 --min-seconds 0)
    ACC=(--to-accuracy 0.02 --budget-s 5 --eval-tokens 4000)
else
    DEV=cuda; CFG=upstream; MINUTES=2; T_CKPT=170; T_BENCH=120; T_ACC=260
    BENCH=(--batches 32,256 --warmup 10 --rounds 4 --min-steps 100 --min-seconds 0)
    ACC=(--to-accuracy 0.75 --budget-s 100 --eval-tokens 2e6)
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

step "sync check: no host sync inside 20 eager steps of ours"
timeout 60 $PY - "$DATA" "$CFG" "$DEV" >>"$LOG" 2>&1 <<'EOF'
import sys, tempfile
from dataclasses import replace
import torch
from training.config import load_preset
from training.train import LOG_EVERY, TrainingRun, setup_runtime
data, cfg_name, dev = sys.argv[1:4]
m, cfg = load_preset(cfg_name)
cfg = replace(cfg, max_steps=10**6, eval_every=10**6)
run = TrainingRun(data, tempfile.mkdtemp(), m, cfg, setup_runtime(dev), log=lambda *_: None, cuda_graph=False)
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

if [ "$DEV" = cuda ]; then
    step "graphed step against the eager one: check_graph_step.py DATA $CFG 40"
    timeout 90 $PY bench/check_graph_step.py "$DATA" "$CFG" 40 >"$OUT/graph_check.json" 2>>"$LOG"
    echo "rc $?" >>"$LOG"
fi

for S in auto eager; do
    step "throughput: bench_train.py --config $CFG ${BENCH[*]} --step $S"
    timeout "$T_BENCH" $PY bench/bench_train.py --config "$CFG" --data "$DATA" --cache-dir "$DATA/.pxby-cache" \
        --device "$DEV" "${BENCH[@]}" --step "$S" --json >"$OUT/bench_train_throughput_$S.json" 2>>"$LOG"
    echo "rc $?" >>"$LOG"
done

step "to accuracy: bench_train.py --config $CFG ${ACC[*]}"
timeout "$T_ACC" $PY bench/bench_train.py --config "$CFG" --batches "" --data "$DATA" \
    --cache-dir "$DATA/.pxby-cache" --device "$DEV" "${ACC[@]}" --json >"$OUT/bench_train_accuracy.json" 2>>"$LOG"
echo "rc $?" >>"$LOG"
step done
rm -rf "$WORK"
