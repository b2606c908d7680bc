#!/usr/bin/env bash
# Distributed training with PyTorch's own launcher (torchrun) and mmengine's
# `--launcher pytorch`, as mmdet's tools/dist_train.sh, running our tools/train.py:
#
#   tools/dist_train.sh CONFIG GPUS [tools/train.py options...]
#
# GPUS: processes on this machine (one per GPU; without CUDA, CPU processes with the
# gloo backend). Several machines: run it on each with the same NNODES, MASTER_ADDR,
# PORT and that machine's NODE_RANK. Environment and CPU options: tools/dist_run.sh.
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,9p' "$0" | cut -c3- >&2
    exit 2
fi
exec "$(dirname "$0")/dist_run.sh" "$2" train.py "$1" -- "${@:3}"
