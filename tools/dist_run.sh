#!/usr/bin/env bash
# What tools/dist_train.sh and tools/dist_test.sh share: run tools/TOOL with PyTorch's
# own launcher (torchrun) and mmengine's `--launcher pytorch`, as mmdet's scripts do.
#
#   tools/dist_run.sh GPUS TOOL [TOOL's positional arguments...] -- [TOOL's options...]
#
# GPUS: processes on this machine (torchrun's --nproc_per_node); without CUDA, CPU
# processes. Environment (mmdet's names and defaults):
#   NNODES=1  NODE_RANK=0  MASTER_ADDR=127.0.0.1  PORT=29500
#   PYTHON=<this checkout>/.venv/bin/python if it exists, else python
# Without CUDA, the configs' NCCL backend and mmengine's GPU-only DDP wrapping
# (device_ids=[LOCAL_RANK]) cannot work: the TOOL's arguments are then preceded by
#   --cfg-options env_cfg.dist_cfg.backend=gloo model_wrapper_cfg.device_ids=None ...
# (CPU_OPTIONS below); a --cfg-options of yours overrides them. (mmengine's own
# torch.cuda.set_device there is skipped by frcnn_plugin/utils/dist.py, which our tools call.)
set -euo pipefail

GPUS=$1
TOOL=$2
shift 2
positional=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    positional+=("$1")
    shift
done
[ $# -gt 0 ] && shift  # the --
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
TOOLS=$(cd "$(dirname "$0")" && pwd)
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python
    [ -x "$TOOLS/../.venv/bin/python" ] && PYTHON=$TOOLS/../.venv/bin/python
fi

CPU_OPTIONS=()
if ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    # The model_wrapper_cfg path skips the top-level find_unused_parameters: set
    # model_wrapper_cfg.find_unused_parameters=True yourself if a model needs it.
    CPU_OPTIONS=(--cfg-options env_cfg.dist_cfg.backend=gloo
                 model_wrapper_cfg.type=MMDistributedDataParallel
                 model_wrapper_cfg.device_ids=None model_wrapper_cfg.broadcast_buffers=False)
fi

"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS/$TOOL" ${positional[@]+"${positional[@]}"} --launcher pytorch \
    ${CPU_OPTIONS[@]+"${CPU_OPTIONS[@]}"} "$@"
