#!/usr/bin/env bash
# GPU runs for issue #16 on the device machine (H100, JAX, no TensorFlow, no
# internet). Run from the repository root, with the wheels carried in .whl/
# and the data in .data/ (see benchmarks/README.md, "GPU run"):
#
#   bash benchmarks/gpu_run.sh all     # main, then cifar in the time left (one 10-min call)
#   bash benchmarks/gpu_run.sh cifar   # start or follow the CIFAR-10 run; call again until DONE
#   bash benchmarks/gpu_run.sh main    # augmentation compile check, then (c) (a) (b) (d) (n), ~6 min
#   bash benchmarks/gpu_run.sh probe   # compile time and speed of each piece, ~3 min
#   bash benchmarks/gpu_run.sh check   # environment and a 2-step smoke run, ~2 min
#   bash benchmarks/gpu_run.sh sweep        # (a) for B = 64, 128, 256, one process each, ~6 min
#   bash benchmarks/gpu_run.sh sweep-large  # (a) for B = 512, 1024 (may run out of memory), ~5 min
#
# On 2026-11-24 the augmentation's blur (then 23 unrolled slices per axis at
# 224 px) kept XLA compiling for over 7.5 minutes and `main` printed nothing
# in its 10-minute call. `main` now compiles the augmentation alone first
# and benchmarks without blur (and says so) when that takes over 90 s.
#
# `cifar` trains examples/cifar10_resnet18.py (ResNet-18, as many epochs as
# fit in CIFAR_MINUTES=15 minutes) in a process of its own session, which
# outlives the call while the machine stays warm (30 s after a call ends):
# call `cifar` again at once; each call follows the log for up to
# CIFAR_WAIT seconds and copies what is finished to $OUT. The run's files
# live in /tmp/c10 on the machine (its checkpoint is too large for $OUT).
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
CALL_LIMIT=${CALL_LIMIT:-585}  # seconds this script may use of a 600-s call

if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
  for m in jax keras torch torchvision lightly; do
    $PY -c "import $m; print('$m', $m.__version__)" 2>/dev/null || echo "$m: missing"
  done
  $PY -c "import jax; print(jax.devices())"
} 2>&1 | tee "$OUT/env.txt"

imagenet5() {
  local tar=.data/imagenet5-224.tar
  [ -f "$tar" ] || { echo "missing $tar: copy ../shared/data/imagenet5-224.tar into .data/ and carry .data"; exit 1; }
  DATA=/tmp/simclr_bench_data
  if [ ! -d "$DATA/imagenet5/train" ]; then
    mkdir -p "$DATA" && tar xf "$tar" -C "$DATA" || exit 1
  fi
  common=(--backbone resnet50 --image-size 224 --precision mixed_bfloat16
          --data "$DATA/imagenet5/train" --replicate 8 --peer-python "$PY")
  # BENCH_EXTRA: more options, appended last so they override, e.g.
  # BENCH_EXTRA="--backbone resnet18 --image-size 96" for a quicker look.
  read -r -a extra <<< "${BENCH_EXTRA:-}"
}

# probe PIECE... : one compile_probe.py run, its PROBE line printed, at most $2 s.
probe() {
  local limit=$1; shift
  echo "== $* (limit $limit s)"
  # shellcheck disable=SC2086  # PROBE_EXTRA: more options, e.g. "--image-size 32"
  timeout "$limit" $PY benchmarks/compile_probe.py "$@" --batch-size 256 ${PROBE_EXTRA:-} 2>&1 \
    | tee -a "$OUT/probe.log" | grep --line-buffered -E "PROBE|Error"
}

run_main() {
  imagenet5
  local blur=()
  if ! probe 90 augmentation; then
    echo "augmentation with blur did not compile in 90 s: benchmarking WITHOUT blur (--blur 0)"
    blur=(--blur 0)
  fi
  local left=$((CALL_LIMIT - SECONDS - ${RESERVE:-0}))
  echo "== throughput.py (limit $left s)"
  timeout "$left" $PY benchmarks/throughput.py "${common[@]}" --batch-size 256 --steps 30 \
    --repeats 3 --warmup 3 --loader-workers 1 "${blur[@]}" --json "$OUT/main.json" "${extra[@]}" \
    2>&1 | tee "$OUT/main.log"
}

C10=/tmp/c10
run_cifar() {
  mkdir -p "$C10"
  if [ -f "$C10/metrics.json" ] && ! pgrep -f cifar10_resnet18.py >/dev/null; then
    echo "CIFAR-10 run already finished"
  elif ! pgrep -f cifar10_resnet18.py >/dev/null; then
    echo "== starting CIFAR-10 ResNet-18, ${CIFAR_MINUTES:-15} min of training, log $C10/log"
    # A new session, so that the run outlives this call (see the header).
    setsid nohup $PY examples/cifar10_resnet18.py --mixed-precision \
      --train-minutes "${CIFAR_MINUTES:-15}" --output "$C10" --data-root /tmp/cifar10 ${CIFAR_EXTRA:-} \
      >>"$C10/log" 2>&1 < /dev/null &
  fi
  local until=$((SECONDS + ${CIFAR_WAIT:-$((CALL_LIMIT - SECONDS - 15))}))
  local shown=0
  while pgrep -f cifar10_resnet18.py >/dev/null && [ "$SECONDS" -lt "$until" ]; do
    sleep 10
    local lines; lines=$(wc -l < "$C10/log")
    [ "$lines" -gt "$shown" ] && sed -n "$((shown + 1)),${lines}p" "$C10/log" | grep -v "^\s*$"
    shown=$lines
  done
  for f in log metrics.json epoch_plan.json epoch_seconds.json training_curves.png tsne.png; do
    [ -f "$C10/$f" ] && cp "$C10/$f" "$OUT/cifar10_$f"
  done
  if pgrep -f cifar10_resnet18.py >/dev/null; then
    echo "CIFAR-10 still running: call 'gpu_run.sh cifar' again at once (the machine must stay warm)"
  else
    # What the loop has not shown yet (all of it when the run ended before this call).
    [ "$shown" -gt 0 ] && sed -n "$((shown + 1)),\$p" "$C10/log" || tail -n 30 "$C10/log"
    if [ -f "$C10/metrics.json" ]; then
      echo "CIFAR-10 DONE"
    else
      echo "CIFAR-10 stopped without metrics.json (see the log above)"
    fi
  fi
}

case "$mode" in
  check)
    imagenet5
    timeout 300 $PY benchmarks/throughput.py "${common[@]}" --batch-size 64 --steps 2 \
      --repeats 1 --warmup 1 --replicate 1 --json "$OUT/check.json" "${extra[@]}" 2>&1 | tee "$OUT/check.log"
    ;;
  probe)
    # The augmentation as used, without blur, without blur and jitter (crop,
    # flip, grayscale only); the backbone's forward and backward alone; the
    # whole SimCLR step.
    probe 150 augmentation || echo "no result within 150 s (or it failed; see probe.log)"
    probe 150 augmentation --blur 0
    probe 150 augmentation --blur 0 --jitter 0
    probe 150 backbone || echo "no result within 150 s (or it failed; see probe.log)"
    probe 150 simclr || echo "no result within 150 s (or it failed; see probe.log)"
    ;;
  main)
    run_main ;;
  cifar)
    run_cifar ;;
  all)
    # Keep about 2 minutes for the CIFAR run's start (unpack, decode, plan).
    RESERVE=120 run_main
    run_cifar ;;
  sweep|sweep-large)
    imagenet5
    sizes=${SIZES:-$([ "$mode" = sweep ] && echo 64,128,256 || echo 512,1024)}
    timeout 580 $PY benchmarks/throughput.py "${common[@]}" --parts a --steps 15 --repeats 2 \
      --sweep "$sizes" --json "$OUT/$mode.json" "${extra[@]}" 2>&1 | tee "$OUT/$mode.log"
    ;;
  *)
    echo "usage: bash benchmarks/gpu_run.sh [all|cifar|main|probe|check|sweep|sweep-large]"; exit 2 ;;
esac
