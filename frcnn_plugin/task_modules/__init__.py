"""Task modules, one class per file, each for one step of the tutorials
(docs/references.md); each registered in mmdet's ``TASK_UTILS`` as a drop-in for the
mmdet class it is named after."""
from .anchor_generator import ScratchAnchorGenerator
from .bbox_coder import ScratchDeltaXYWHBBoxCoder
from .iou_calculator import ScratchBboxOverlaps2D
from .max_iou_assigner import ScratchMaxIoUAssigner
from .random_sampler import ScratchRandomSampler

__all__ = ['ScratchAnchorGenerator', 'ScratchBboxOverlaps2D', 'ScratchDeltaXYWHBBoxCoder',
           'ScratchMaxIoUAssigner', 'ScratchRandomSampler']
