"""mmengine's ``--launcher pytorch`` on machines without CUDA (CPU processes, gloo).

mmengine 0.10's ``_init_dist_pytorch`` pins each process to its GPU with
``torch.cuda.set_device(LOCAL_RANK)`` before ``init_process_group``, unconditionally,
so under torchrun on a CPU-only machine every rank dies with "Found no NVIDIA driver"
whatever the backend. Our ``tools/train.py`` and ``tools/test.py`` call
:func:`skip_cuda_pinning_for_cpu_launch` before running mmdet's script: with
``--launcher pytorch`` and no CUDA device, it wraps that mmengine function so that the
pinning is skipped (the process group is initialised as before, with the config's
``env_cfg.dist_cfg.backend``: gloo, which tools/dist_train.sh passes there), and logs
that it did. Importing the plugin changes nothing; with CUDA, or without the pytorch
launcher, mmengine runs unchanged.
"""
import argparse
import functools
from typing import Sequence

import torch
from mmengine.dist import utils as dist_utils
from mmengine.logging import print_log


def _skip_cuda_pinning(init_dist_pytorch):
    @functools.wraps(init_dist_pytorch)
    def wrapper(*args, **kwargs):
        set_device = torch.cuda.set_device
        torch.cuda.set_device = lambda device: None
        try:
            return init_dist_pytorch(*args, **kwargs)
        finally:
            torch.cuda.set_device = set_device
    wrapper.skips_cuda_pinning = True
    return wrapper


def skip_cuda_pinning_for_cpu_launch(argv: Sequence[str]) -> bool:
    """Given a tool's arguments ``argv``: with ``--launcher pytorch`` and no CUDA, make
    mmengine's ``_init_dist_pytorch`` skip ``torch.cuda.set_device``. Returns whether
    mmengine now does."""
    parser = argparse.ArgumentParser(add_help=False)  # mmdet's flag, abbreviations too
    parser.add_argument('--launcher')
    launcher = parser.parse_known_args(list(argv))[0].launcher
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    if not getattr(dist_utils._init_dist_pytorch, 'skips_cuda_pinning', False):
        dist_utils._init_dist_pytorch = _skip_cuda_pinning(dist_utils._init_dist_pytorch)
        print_log('frcnn_plugin: --launcher pytorch without CUDA: mmengine\'s '
                  '_init_dist_pytorch runs without its torch.cuda.set_device (CPU processes)',
                  logger='current')
    return True
