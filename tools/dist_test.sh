#!/usr/bin/env bash
# Distributed testing with PyTorch's own launcher (torchrun) and mmengine's
# `--launcher pytorch`, as mmdet's tools/dist_test.sh, running our tools/test.py:
#
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options...]
#
# Each process tests its share of the images; the metric (and --out) gathers them all
# on rank 0, which reports once. GPUS and the environment: tools/dist_train.sh.
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '2,8p' "$0" | cut -c3- >&2
    exit 2
fi
exec "$(dirname "$0")/dist_run.sh" "$3" test.py "$1" "$2" -- "${@:4}"
