#!/usr/bin/env python
"""Train a detector: mmdet's own tools/train.py, same flags, same behaviour.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

This checkout's frcnn_plugin is imported first, whatever else is installed, so
configs find our components and checkpoints load under torch >= 2.6. Before mmdet's
tool starts: missing data stops it with one line naming the path and the command that
provides it; pretrained weights that cannot be downloaded (no internet) are dropped
with a warning, and training starts from random initialisation. On a machine without a
GPU, --amp trains with bfloat16 autocast on the CPU (ScratchAmpOptimWrapper)
instead of failing in mmengine's AmpOptimWrapper.
"""
import os.path as osp
import sys

import env_check  # first: without the environment, one line instead of a traceback

env_check.require_environment()
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from frcnn_plugin.utils.mmdet_tools import amp_argv, run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    sys.argv[1:] = amp_argv(sys.argv[1:])
    run_mmdet_tool('train.py', loaders=('train_dataloader', 'val_dataloader'), downloads=True)
