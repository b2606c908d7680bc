"""Pure-torch operators: NMS (seed step "proposal layer"), equal to mmcv's."""
from .nms import batched_nms, nms

__all__ = ['batched_nms', 'nms']
