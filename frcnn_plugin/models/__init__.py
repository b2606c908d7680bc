"""Model components, one per file, each for one step of the tutorials
(docs/references.md); registered in mmdet's ``MODELS`` as drop-ins for the mmdet modules
they are named after."""
from .bbox_head import ScratchBBoxHead
from .roi_extractor import ScratchRoIExtractor
from .roi_head import ScratchRoIHead
from .rpn_head import ScratchRPNHead
from .vgg import ScratchVGG16

__all__ = ['ScratchBBoxHead', 'ScratchRPNHead', 'ScratchRoIExtractor', 'ScratchRoIHead',
           'ScratchVGG16']
