"""The random states that training draws from, as checkpoint-safe values.

Training draws from torch's CPU generator (proposal and RoI sampling, initialisation, the
data loader's base seed), its CUDA generators, numpy's global generator (mmcv's and
mmdet's random transforms, e.g. ``RandomFlip``) and Python's ``random``. The data order
is not among them: mmengine's ``DefaultSampler`` draws it from a generator seeded with
``seed + epoch`` for each epoch, so only its ``seed`` is kept.

The states are tensors and plain Python values, so that a checkpoint holding them still
loads weights-only (:mod:`frcnn_plugin.engine.checkpoint`):

- ``'torch'``: ``torch.get_rng_state()``, a uint8 tensor;
- ``'cuda'``: ``torch.cuda.get_rng_state_all()``, one uint8 tensor per device (only
  where CUDA is available);
- ``'numpy'``: ``numpy.random.get_state()`` as ``dict(keys=int64 tensor [624], pos=int,
  has_gauss=int, cached_gaussian=float)``;
- ``'python'``: ``random.getstate()``, a tuple of ints.
"""
import random
from typing import Optional

import numpy as np
import torch


def capture_random_state() -> dict:
    """The current states of torch's, numpy's and Python's generators."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), cached_gaussian=float(cached_gaussian)),
        python=random.getstate())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict) -> None:
    """Set the generators to ``state`` (from :func:`capture_random_state`, possibly loaded
    onto a GPU by ``map_location``). CUDA states are restored where as many devices exist."""
    torch.set_rng_state(state['torch'].cpu())
    numpy_state = state['numpy']
    np.random.set_state(('MT19937', numpy_state['keys'].cpu().numpy().astype(np.uint32),
                         numpy_state['pos'], numpy_state['has_gauss'],
                         numpy_state['cached_gaussian']))
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([device_state.cpu() for device_state in cuda])


def seeded_sampler(dataloader) -> Optional[object]:
    """The sampler of ``dataloader`` that has a ``seed`` (mmengine's ``DefaultSampler``,
    ``InfiniteSampler``), under a batch sampler or not; ``None`` if there is none."""
    for sampler in (getattr(getattr(dataloader, 'batch_sampler', None), 'sampler', None),
                    getattr(dataloader, 'sampler', None)):
        if isinstance(getattr(sampler, 'seed', None), int):
            return sampler
    return None
