"""The IoU of every valid anchor with every ground-truth box (the step-by-step PyTorch
tutorial, 'Anchor boxes'; the Korean walkthrough, '3. Anchor Target Layer';
docs/references.md).

The tutorials fill an ``(anchors, gts)`` array with a double Python loop
(``iou = inter_area / (anchor_area + box_area - inter_area)``); here the whole
matrix is one broadcast expression (:func:`frcnn_plugin.boxes.box_overlaps`),
wrapped in the calculator interface mmdet's assigners build from ``iou_calculator``.
"""
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor

from ..boxes import box_overlaps


@TASK_UTILS.register_module()
class ScratchBboxOverlaps2D:
    """IoU / IoF / GIoU calculator, a drop-in for mmdet's ``BboxOverlaps2D``.

    Args:
        scale (float): with ``dtype='fp16'`` the boxes are divided by ``scale``
            before the cast, so large coordinates do not overflow half precision
            (IoU is scale invariant, so the result is unchanged).
        dtype (str, optional): ``'fp16'`` computes in half precision to save
            memory; on CPU the result is returned as float32 again.

    Call ``(bboxes1, bboxes2, mode='iou', is_aligned=False)``:

    * ``bboxes1``: ``(..., m, 4)`` or ``(..., m, 5)`` (the 5th column, a score,
      is ignored), a tensor or a :class:`~mmdet.structures.bbox.HorizontalBoxes`;
    * ``bboxes2``: ``(..., n, 4|5)`` likewise, may be empty;
    * returns ``(..., m, n)``, or ``(..., m)`` with ``is_aligned`` (``m == n``).

    With ``inter`` the intersection area and ``A``, ``B`` the box areas::

        iou  = inter / max(A + B - inter, 1e-6)
        iof  = inter / max(A, 1e-6)
        giou = iou - (C - U) / max(C, 1e-6)    C: smallest enclosing box, U: union
    """

    def __init__(self, scale: float = 1., dtype=None):
        self.scale = scale
        self.dtype = dtype

    def __call__(self, bboxes1, bboxes2, mode: str = 'iou',
                 is_aligned: bool = False) -> Tensor:
        bboxes1 = self._coords(bboxes1)
        bboxes2 = self._coords(bboxes2)
        if self.dtype != 'fp16':
            return box_overlaps(bboxes1, bboxes2, mode, is_aligned)
        # Half precision halves the (m, n) intermediates; dividing by ``scale``
        # first keeps coordinates (and areas, their squares) inside fp16's range.
        overlaps = box_overlaps((bboxes1 / self.scale).half(),
                                (bboxes2 / self.scale).half(), mode, is_aligned)
        # CPU kernels for half are slow and partial, so callers get float32 back
        # there, as with mmdet; on GPU the memory saving is the point, keep fp16.
        return overlaps if overlaps.is_cuda else overlaps.float()

    @staticmethod
    def _coords(boxes) -> Tensor:
        """Plain ``(..., 4)`` coordinates from a tensor or box type, score dropped."""
        boxes = get_box_tensor(boxes)
        if boxes.size(-1) not in (0, 4, 5):
            raise ValueError(f'boxes must have 4 or 5 columns, got shape {tuple(boxes.shape)}')
        return boxes[..., :4]

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(scale={self.scale}, dtype={self.dtype})'
