#!/usr/bin/env bash
# One prepared GPU check (draft; other helpers may add steps): time-boxed to under 5 minutes in all, every step
# under its own `timeout`, logs in $OUT (default ./gpu_check_out). Harmless without a GPU: says so and exits 0.
#   bash scripts/gpu_check.sh            # on the GPU machine, from the repository root
# Steps: the card; the parity tests that need torchvision or CUDA (Inception/LPIPS vs torchvision, SSIM/PSNR vs
# skimage, fused modulated conv, streaming + CUDA graph); benchmarks/metrics_gpu.py per-metric rows;
# benchmarks/models_motion.py streaming (p50/p95/p99, compile, CUDA graphs) and batched rows, then training rows.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA device visible to torch ($PY); nothing to do" | tee "$OUT/summary.txt"
  exit 0
fi

START=$(date +%s)
summary() { echo "$1" | tee -a "$OUT/summary.txt"; }
step() {  # step NAME SECONDS CMD...: run with a time limit, log to $OUT/NAME.log, record rc and seconds
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout --signal=INT --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  summary "$(printf '%-16s rc=%-3s %4ss (limit %ss)' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$limit")"
}

: >"$OUT/summary.txt"
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; } \
  >"$OUT/card.txt" 2>&1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
  >>"$OUT/card.txt" 2>&1
summary "card: $(head -1 "$OUT/card.txt")"

step parity_tests 60 "$PY" -m pytest -q -p no:cacheprovider \
  tests/metrics/test_nets.py::test_parity_with_torchvision_inception_and_lpips \
  tests/metrics/test_pixel.py tests/models/test_layers.py tests/models/test_streaming.py
step metrics_gpu 40 "$PY" benchmarks/metrics_gpu.py --skip-full --per-metric-frames 256
step motion_infer 70 "$PY" benchmarks/models_motion.py --device cuda --preset base --stream-frames 200 \
  --infer-batches 32 64 --frames 512
step motion_train 60 "$PY" benchmarks/models_motion.py --device cuda --preset base --skip-batched --no-compile \
  --stream-frames 20 --train-batches 32 --steps 5 --warmup 2 --train-modes "fp32 eager" "bf16 eager"
step motion_train_compile 60 "$PY" benchmarks/models_motion.py --device cuda --preset base --skip-batched \
  --no-compile --stream-frames 20 --train-batches 32 --steps 5 --warmup 2 --train-modes "bf16 compile"

summary "gpu_check: $(( $(date +%s) - START ))s in all; logs in $OUT"
exit 0
