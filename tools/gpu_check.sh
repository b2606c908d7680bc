#!/usr/bin/env bash
# One command on a bare CUDA machine: set up, run the CUDA tests, benchmark ours against
# torchvision's (and mmcv's) CUDA kernels, train an all-Scratch detector on the GPU in
# float32 and with --amp, and print one summary.
#
#   tools/gpu_check.sh [WORK_DIR]          (default work_dirs/gpu_check)
#
# Environment:
#   MMCV_OPS: as tools/setup_env.sh. The default set-up compiles nothing: mmdet's own
#     RoIAlign / NMS run on torchvision's CUDA kernels (backend/mmcv_ext.py), so the CUDA
#     tests and the benchmark compare ours with them on the GPU. MMCV_OPS=compiled builds
#     compiled mmcv with its CUDA kernels instead (20+ min) and compares with those.
#   TRAIN_IMAGES (default 400), TRAIN_EPOCHS (default 2): each training run's share of
#     the training set (its first images) and epochs.
#   PYTHON, FRCNN_CACHE_DIR, MAX_JOBS, MMCV_CUDA_OPS: as tools/setup_env.sh.
#
# Every step runs even if an earlier one failed; the exit status is 1 if any failed.
# Each step's full output is in WORK_DIR/<step>.log.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
WORK=${1:-work_dirs/gpu_check}
TRAIN_IMAGES=${TRAIN_IMAGES:-400}
TRAIN_EPOCHS=${TRAIN_EPOCHS:-2}
PY=.venv/bin/python
mkdir -p "$WORK"
declare -a SUMMARY=()
FAILED=0

step() {  # step NAME COMMAND...: run, log to WORK/NAME.log, remember the outcome
    local name=$1 t0=$SECONDS status
    shift
    echo "[gpu_check] $name: $*"
    "$@" >"$WORK/$name.log" 2>&1
    status=$?
    if [ "$status" = 0 ]; then
        SUMMARY+=("$name: ok ($((SECONDS - t0)) s)")
    else
        SUMMARY+=("$name: FAILED with status $status ($((SECONDS - t0)) s), see $WORK/$name.log")
        FAILED=1
        tail -20 "$WORK/$name.log"
    fi
    return "$status"
}

iter_seconds() {  # mean 'time: X' of a training log's lines, after the first (warm-up) one
    grep -o 'Epoch(train).* time: [0-9.]*' "$1" | sed 's/.* time: //' | tail -n +2 \
        | awk '{ s += $1; n += 1 } END { if (n) printf "%.3f s/iter", s / n; else print "?" }'
}

last_map() {  # the last mAP a log reports
    grep -o 'pascal_voc/mAP: [0-9.]*' "$1" | tail -1 | sed 's/.*: //'
}

if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "[gpu_check] no NVIDIA GPU here (nvidia-smi -L failed): nothing to check" >&2
    exit 2
fi
nvidia-smi -L | tee "$WORK/gpu.txt"

step setup bash tools/setup_env.sh || { printf '%s\n' "${SUMMARY[@]}"; exit 1; }
step torch_sees_cuda "$PY" -c "
import torch, mmcv.ops
assert torch.cuda.is_available(), 'torch sees no CUDA device'
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(),
      'mmcv CUDA ops:', mmcv.ops.get_compiling_cuda_version())" \
    || { printf '%s\n' "${SUMMARY[@]}"; exit 1; }

# The CUDA tests (collected from the whole suite, only those marked cuda run).
step cuda_tests "$PY" -m pytest -m cuda -q -p no:cacheprovider tests
SUMMARY+=("  $(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$WORK/cuda_tests.log" | tail -1)")

step benchmark "$PY" tools/benchmark.py --device cuda --json "$WORK/benchmark_cuda.json" \
    --markdown "$WORK/benchmark_cuda.md"
if [ -f "$WORK/benchmark_cuda.json" ]; then
    SUMMARY+=("  ratios ours / theirs on CUDA: $("$PY" -c "
import json, sys
r = json.load(open(sys.argv[1]))['ratio']
print(', '.join(f'{k} {v:.2f}' for k, v in r.items()))" "$WORK/benchmark_cuda.json")")
fi

# A short all-Scratch training on the GPU: the generated Shapes set when this checkout
# has it (no download), else KittiTiny from $KITTI_TINY_SRC.
if [ -f configs/frcnn_shapes.py ]; then
    config=configs/frcnn_shapes.py
    step data "$PY" tools/prepare_data.py shapes
else
    config=configs/frcnn_kitti_tiny.py
    step data "$PY" tools/prepare_data.py kitti_tiny
fi
# The first TRAIN_IMAGES images, TRAIN_EPOCHS epochs, from random initialisation.
schedule=(--cfg-options "train_dataloader.dataset.indices=$TRAIN_IMAGES"
          "train_cfg.max_epochs=$TRAIN_EPOCHS" "train_cfg.val_interval=$TRAIN_EPOCHS"
          "default_hooks.logger.interval=10" "model.backbone.init_cfg=None" "load_from=None"
          "randomness.seed=0")
for mode in fp32 amp; do
    amp=()
    [ "$mode" = amp ] && amp=(--amp)
    if step "train_$mode" "$PY" tools/train.py "$config" --work-dir "$WORK/train_$mode" \
            "${amp[@]}" "${schedule[@]}"; then
        SUMMARY+=("  $config $mode: $(iter_seconds "$WORK/train_$mode.log"), mAP after" \
                  "$TRAIN_EPOCHS epochs of $TRAIN_IMAGES images: $(last_map "$WORK/train_$mode.log")")
    fi
done

echo
echo "[gpu_check] summary ($(head -1 "$WORK/gpu.txt"))"
printf '  %s\n' "${SUMMARY[@]}"
echo "[gpu_check] logs and the benchmark table in $WORK/"
exit "$FAILED"
