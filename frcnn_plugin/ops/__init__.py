"""Pure-torch operators, equal to mmcv's: NMS (the tutorials' proposal layer) and RoI
pooling (``ScratchRoIAlign``, ``ScratchRoIPool``, registered in mmdet's ``MODELS``);
docs/references.md names the tutorials."""
from .nms import batched_nms, nms
from .roi_align import ScratchRoIAlign
from .roi_pool import ScratchRoIPool

__all__ = ['ScratchRoIAlign', 'ScratchRoIPool', 'batched_nms', 'nms']
