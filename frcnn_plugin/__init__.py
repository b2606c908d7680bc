"""Faster R-CNN written from scratch, one readable component at a time, as an
MMDetection 3.x plugin.

Importing the package (configs do it with ``custom_imports``) registers its
components in mmdet's registries (``Scratch*`` names) and lets ``torch.load`` read
mmengine checkpoints under torch >= 2.6's ``weights_only=True``
(see :mod:`frcnn_plugin.checkpoint`).
"""
from . import dist  # noqa: F401  (--launcher pytorch on CPU-only machines)
from .alternating import FreezeModulesHook
from .amp_optim_wrapper import ScratchAmpOptimWrapper
from .checkpoint import allow_mmengine_checkpoints
from .datasets import KittiTinyDataset
from .finetune import FineTuneHook
from .models import ScratchBBoxHead, ScratchRoIExtractor, ScratchRPNHead, ScratchVGG16
from .ops import ScratchRoIAlign, ScratchRoIPool, batched_nms, nms
from .task_modules import (ScratchAnchorGenerator, ScratchBboxOverlaps2D,
                           ScratchDeltaXYWHBBoxCoder, ScratchMaxIoUAssigner,
                           ScratchRandomSampler)

__version__ = '0.1.0'
__all__ = [
    'FineTuneHook', 'FreezeModulesHook', 'KittiTinyDataset', 'ScratchAmpOptimWrapper',
    'ScratchAnchorGenerator',
    'ScratchBBoxHead', 'ScratchBboxOverlaps2D', 'ScratchDeltaXYWHBBoxCoder',
    'ScratchMaxIoUAssigner', 'ScratchRPNHead', 'ScratchRandomSampler', 'ScratchRoIAlign',
    'ScratchRoIExtractor', 'ScratchRoIPool', 'ScratchVGG16', 'allow_mmengine_checkpoints',
    'batched_nms', 'nms', '__version__'
]

allow_mmengine_checkpoints()
