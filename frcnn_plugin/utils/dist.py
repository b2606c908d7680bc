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

mmengine's runner initialises the default process group (``init_dist``) and never
destroys it, nor do mmdet's tools. A gloo group's C++ worker threads (``pt_gloo_runloop``)
then live until interpreter shutdown, and one that releases a finished collective's work
(and with it a tensor created in Python) after the main thread has started finalising
needs the GIL, is ended by Python, and its forced unwind through C++ aborts the process:
"terminate called without an active exception", SIGABRT, after the tool has printed its
results, so torchrun reports the run as failed. :func:`destroy_process_group_started_by`,
which ``run_mmdet_tool`` calls around mmdet's tool, destroys the group once the tool has
returned, while the interpreter is whole, so that the group's destructor stops and joins
those threads there.
"""
import argparse
import functools
import gc
from typing import Callable, Sequence

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


def default_group_initialised() -> bool:
    """Whether torch.distributed's default process group exists in this process."""
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


def destroy_process_group_started_by(run: Callable[[], object]) -> None:
    """Call ``run()``; if it initialised the default process group (mmengine's runner
    under ``--launcher pytorch``, ``slurm`` or ``mpi``), destroy that group once ``run``
    has returned, which joins its backend's threads. A group that existed before ``run``
    is left alone, and so is every group when ``run`` raises: the process is failing
    already, and a group whose peers may be gone is not waited for."""
    import torch.distributed as dist
    started_before = default_group_initialised()
    run()
    if not started_before and default_group_initialised():
        # The finished runner sits in reference cycles that still hold the DDP wrapper,
        # whose Reducer holds the group: collected first, they leave torch's own
        # references as the last, and destroy_process_group releases them, which runs
        # the backend's destructor and joins its threads here.
        gc.collect()
        dist.destroy_process_group()
