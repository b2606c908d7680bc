"""mmengine's ``--launcher pytorch`` on machines without CUDA (CPU processes, gloo).

mmengine 0.10's ``_init_dist_pytorch`` pins each process to its GPU with
``torch.cuda.set_device(LOCAL_RANK)`` before ``init_process_group``, unconditionally,
so under torchrun on a CPU-only machine every rank dies with "Found no NVIDIA driver"
whatever the backend. Importing this module wraps that function so that, when torch
sees no CUDA device, the pinning is skipped and the process group is initialised as
before (the backend is the config's ``env_cfg.dist_cfg.backend``: gloo on CPU;
tools/dist_train.sh passes it). With CUDA, mmengine's function runs unchanged.
"""
import functools

import torch
from mmengine.dist import utils as dist_utils


def _skip_cuda_pinning(init_dist_pytorch):
    @functools.wraps(init_dist_pytorch)
    def wrapper(*args, **kwargs):
        if torch.cuda.is_available():
            return init_dist_pytorch(*args, **kwargs)
        set_device = torch.cuda.set_device
        torch.cuda.set_device = lambda device: None
        try:
            return init_dist_pytorch(*args, **kwargs)
        finally:
            torch.cuda.set_device = set_device
    wrapper.skips_cuda_pinning = True
    return wrapper


if not getattr(dist_utils._init_dist_pytorch, 'skips_cuda_pinning', False):
    dist_utils._init_dist_pytorch = _skip_cuda_pinning(dist_utils._init_dist_pytorch)
