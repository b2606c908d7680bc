"""Faster R-CNN written from scratch, one readable component at a time, as an
MMDetection 3.x plugin.

Importing the package (configs do it with ``custom_imports``) registers its
components in mmdet's registries (``Scratch*`` names) and re-registers mmengine's
checkpoint loaders so that they read mmengine checkpoints with torch's
``weights_only=True``, safely (see :mod:`frcnn_plugin.engine.checkpoint`).
"""
from .datasets import KittiTinyDataset, ScratchCocoDataset, ScratchVOCDataset
from .engine import FineTuneHook, FreezeModulesHook, ScratchAmpOptimWrapper
from .engine.checkpoint import guard_mmengine_loaders
from .evaluation import IgnoreRegionVOCMetric
from .models import (
                     ScratchBBoxHead,
                     ScratchRoIExtractor,
                     ScratchRoIHead,
                     ScratchRPNHead,
                     ScratchVGG16,
)
from .ops import ScratchRoIAlign, ScratchRoIPool, batched_nms, nms
from .task_modules import (
                     ScratchAnchorGenerator,
                     ScratchBboxOverlaps2D,
                     ScratchDeltaXYWHBBoxCoder,
                     ScratchMaxIoUAssigner,
                     ScratchRandomSampler,
)

__version__ = '0.1.0'
__all__ = [
    'FineTuneHook', 'FreezeModulesHook', 'IgnoreRegionVOCMetric', 'KittiTinyDataset',
    'ScratchAmpOptimWrapper', 'ScratchAnchorGenerator', 'ScratchBBoxHead',
    'ScratchBboxOverlaps2D', 'ScratchCocoDataset',
    'ScratchDeltaXYWHBBoxCoder', 'ScratchMaxIoUAssigner', 'ScratchRPNHead',
    'ScratchRandomSampler', 'ScratchRoIAlign', 'ScratchRoIExtractor', 'ScratchRoIHead',
    'ScratchRoIPool', 'ScratchVGG16', 'ScratchVOCDataset', 'batched_nms', 'nms', '__version__'
]

guard_mmengine_loaders()
