"""For the engine tests: a toy mmengine training whose every step draws from torch's,
numpy's and Python's generators (as Faster R-CNN's samplers and random transforms do),
so that a resume that does not restore them ends with other weights.

Imported by the tests as ``toy_training`` (pytest puts tests/engine on sys.path)."""
import random

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn


class RandomToy(BaseModel):
    """A linear layer whose loss draws noise from all three generators."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        noisy = inputs + torch.rand_like(inputs)  # [B, 2]
        out = self.linear(noisy) * (1 + random.random())
        return {'loss': out.pow(2).mean()} if mode == 'loss' else out


class RandomToyDataset(torch.utils.data.Dataset):
    """Four items, each with numpy noise drawn when it is loaded (a random transform)."""
    metainfo = dict(classes=('a', 'b'))

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.full((2, ), float(index)) + float(np.random.rand()))


def toy_runner(work_dir, name, by_epoch=True, length=3, checkpoint=None, hooks=(), **kwargs):
    """A runner of ``length`` epochs (``by_epoch``) or iterations of batch 1, seed 0,
    shuffled data; ``checkpoint``: the checkpoint hook's arguments."""
    checkpoint = dict(dict(type='ScratchCheckpointHook', interval=1), **(checkpoint or {}))
    if by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=length)
        sampler = dict(type='DefaultSampler', shuffle=True)
    else:
        train_cfg = dict(by_epoch=False, max_iters=length, val_interval=length + 1)
        sampler = dict(type='InfiniteSampler', shuffle=True)
        checkpoint['by_epoch'] = False
    torch.manual_seed(0)  # the same initial weights in every runner
    return Runner(model=RandomToy(), work_dir=str(work_dir), experiment_name=name,
                  train_dataloader=dict(dataset=RandomToyDataset(), batch_size=1,
                                        sampler=sampler,
                                        collate_fn=dict(type='default_collate')),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
                  train_cfg=train_cfg,
                  default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                                     checkpoint=checkpoint),
                  custom_hooks=list(hooks), randomness=dict(seed=0),
                  log_level='WARNING', default_scope='mmdet', **kwargs)
