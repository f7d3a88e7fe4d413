#!/usr/bin/env bash
# One prepared GPU check (draft; other helpers may add steps): time-boxed to under 5 minutes in all, every step
# under its own `timeout`, logs in $OUT (default ./gpu_check_out). Harmless without a GPU: says so and exits 0.
#   bash scripts/gpu_check.sh            # on the GPU machine, from the repository root
# Steps: the card; the parity tests that need torchvision or CUDA (Inception/LPIPS vs torchvision, SSIM/PSNR vs
# skimage, fused modulated conv, streaming + CUDA graph); benchmarks/metrics_gpu.py per-metric rows;
# benchmarks/models_motion.py streaming (p50/p95/p99, compile, CUDA graphs) and batched rows, then training rows;
# then every CUDA entry point of the toolkit (issue 11): the Evaluator on CUDA against the CPU
# (tests/metrics/test_cuda_parity.py, tolerances in the test), a few training steps of each model family, generation,
# motion extraction, and `bench run` (gt, static, ours) on the demo material with --device cuda.
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
  tests/metrics/test_pixel.py tests/models/test_model_layers.py tests/models/test_streaming.py
step metrics_gpu 40 "$PY" benchmarks/metrics_gpu.py --skip-full --per-metric-frames 256
step motion_infer 70 "$PY" benchmarks/models_motion.py --device cuda --preset base --stream-frames 200 \
  --infer-batches 32 64 --frames 512
step motion_train 60 "$PY" benchmarks/models_motion.py --device cuda --preset base --skip-batched --no-compile \
  --stream-frames 20 --train-batches 32 --steps 5 --warmup 2 --train-modes "fp32 eager" "bf16 eager"
step motion_train_compile 60 "$PY" benchmarks/models_motion.py --device cuda --preset base --skip-batched \
  --no-compile --stream-frames 20 --train-batches 32 --steps 5 --warmup 2 --train-modes "bf16 compile"

# ---- every CUDA entry point (issue 11, point 14) ----
# commands as arrays: `timeout` runs programs, not shell functions
TB=("$PY" -c 'import sys; from talkbench.cli.main import main; sys.exit(main(sys.argv[1:]))')
BENCH=("$PY" -c 'import sys; from talkbench.cli.bench import main; sys.exit(main(sys.argv[1:]))')
step evaluator_cuda 60 "$PY" -m pytest -q -p no:cacheprovider tests/metrics/test_cuda_parity.py \
  tests/metrics/test_devices.py tests/models/test_model_devices.py
# the demo: real portraits → curated manifest (gt and static scored on the CPU by the demo itself)
step demo 90 "${TB[@]}" demo run "$OUT/demo" --workers 8 --quiet
MANIFEST=$(find "$OUT/demo" -name clips.parquet -print -quit 2>/dev/null)
FAMILIES=$("$PY" -c 'from talkbench.models.families import FAMILIES; print(" ".join(FAMILIES))' 2>/dev/null)
if [ -n "$MANIFEST" ]; then
  for fam in $FAMILIES; do
    step "train_$fam" 60 "${TB[@]}" train "$fam" --manifest "$MANIFEST" --out "$OUT/train_$fam" --preset tiny \
      --max-steps 5 --batch-size 4 --device cuda --perceptual none-l1-pyramid
  done
  CKPT="$OUT/train_motion/last.pt"
  CLIP=$(find "$(dirname "$MANIFEST")" -name '*.mp4' -print -quit)
  step generate 30 "${TB[@]}" generate reenact --source "$CLIP" --driver "$CLIP" --checkpoint "$CKPT" \
    --out "$OUT/generated.mp4" --device cuda
  step extract_motion 30 "${TB[@]}" extract-motion --manifest "$MANIFEST" --checkpoint "$CKPT" \
    --out "$OUT/motion.parquet" --device cuda
  for method in gt static; do
    step "bench_$method" 60 "${BENCH[@]}" run --method "$method" --task self-reenact --manifest "$MANIFEST" \
      --out "$OUT/bench_$method" --device cuda --quiet --bootstrap 200
  done
  step bench_ours 60 "${BENCH[@]}" run --method ours --checkpoint "$CKPT" --task self-reenact --manifest "$MANIFEST" \
    --out "$OUT/bench_ours" --device cuda --quiet --bootstrap 200
  cp "$OUT"/bench_*/summary.json "$OUT/" 2>/dev/null
else
  summary "demo: no clips.parquet under $OUT/demo; training, generation and bench steps skipped (see demo.log)"
fi

summary "gpu_check: $(( $(date +%s) - START ))s in all; logs in $OUT"
exit 0
