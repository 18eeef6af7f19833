#!/usr/bin/env bash
# Throughput benchmark on the GPU machine (H100, JAX, no TensorFlow, no
# internet). Run from the repository root, with the wheels carried in .whl/
# and the data in .data/ (see benchmarks/README.md, "GPU run"):
#
#   bash benchmarks/gpu_run.sh main    # (a) (b) (c) at ResNet-50 224 px B=256 bf16, ~5 min
#   bash benchmarks/gpu_run.sh sweep        # (a) for B = 64, 128, 256, one process each, ~6 min
#   bash benchmarks/gpu_run.sh sweep-large  # (a) for B = 512, 1024 (may run out of memory), ~5 min
#   bash benchmarks/gpu_run.sh check   # environment and a 2-step smoke run, ~2 min
#   bash benchmarks/gpu_run.sh probe   # compile time and speed of augmentation / backbone / step, ~3 min
#
# Run `probe` first: on 2026-11-24 the augmentation's blur (then 23 unrolled
# slices per axis at 224 px) kept XLA compiling for over 7.5 minutes and `main`
# printed nothing in its 10-minute call.
#
# Results (logs and JSON) go to $OUT (default /tmp/simclr_bench_out).
set -uo pipefail
mode=${1:-main}
OUT=${OUT:-/tmp/simclr_bench_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=3
# The peer (PyTorch) runs first in its own process; JAX's default 75 %
# preallocation is left on for the Keras parts that follow.
PY=${PYTHON:-python3}

if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi

TAR=.data/imagenet5-224.tar
[ -f "$TAR" ] || { echo "missing $TAR: copy ../shared/data/imagenet5-224.tar into .data/ and carry .data"; exit 1; }
DATA=/tmp/simclr_bench_data
if [ ! -d "$DATA/imagenet5/train" ]; then
  mkdir -p "$DATA" && tar xf "$TAR" -C "$DATA" || exit 1
fi

common=(--backbone resnet50 --image-size 224 --precision mixed_bfloat16
        --data "$DATA/imagenet5/train" --replicate 8 --peer-python "$PY")
# BENCH_EXTRA: more options, appended last so they override, e.g.
# BENCH_EXTRA="--backbone resnet18 --image-size 96" for a quicker look.
read -r -a extra <<< "${BENCH_EXTRA:-}"

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
  for m in jax keras torch torchvision lightly; do
    $PY -c "import $m; print('$m', $m.__version__)" 2>/dev/null || echo "$m: missing"
  done
  $PY -c "import jax; print(jax.devices())"
} 2>&1 | tee "$OUT/env.txt"

case "$mode" in
  check)
    timeout 300 $PY benchmarks/throughput.py "${common[@]}" --batch-size 64 --steps 2 \
      --repeats 1 --warmup 1 --replicate 1 --json "$OUT/check.json" "${extra[@]}" 2>&1 | tee "$OUT/check.log"
    ;;
  probe)
    # Compile time and speed of each piece: the augmentation as used, without
    # blur, and without blur or jitter (crop, flip, grayscale only), then the
    # backbone's forward and backward alone, then the whole SimCLR step.
    for piece in "augmentation" "augmentation --blur 0" "augmentation --blur 0 --jitter 0" \
                 "backbone" "simclr"; do
      echo "== $piece (limit 150 s)"
      # shellcheck disable=SC2086  # $piece holds the piece and its options
      timeout 150 $PY benchmarks/compile_probe.py $piece --batch-size 256 2>&1 \
        | tee -a "$OUT/probe.log" | grep --line-buffered -E "PROBE|Error" \
        || echo "$piece: no result within 150 s (or it failed; see probe.log)"
    done
    ;;
  main)
    timeout 560 $PY benchmarks/throughput.py "${common[@]}" --batch-size 256 --steps 30 \
      --repeats 3 --warmup 3 --loader-workers 1 --json "$OUT/main.json" "${extra[@]}" 2>&1 | tee "$OUT/main.log"
    ;;
  sweep|sweep-large)
    sizes=${SIZES:-$([ "$mode" = sweep ] && echo 64,128,256 || echo 512,1024)}
    timeout 580 $PY benchmarks/throughput.py "${common[@]}" --parts a --steps 15 --repeats 2 \
      --sweep "$sizes" --json "$OUT/$mode.json" "${extra[@]}" 2>&1 | tee "$OUT/$mode.log"
    ;;
  *)
    echo "usage: bash benchmarks/gpu_run.sh [check|probe|main|sweep|sweep-large]"; exit 2 ;;
esac
