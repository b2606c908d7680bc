"""Two steps of the tutorials (docs/references.md): the locations (dx, dy, dw, dh) of
each anchor's matched gt box (the step-by-step PyTorch tutorial, 'Anchor boxes';
``np.log(base_width / width)``), and the predicted locations turned back into boxes
(its 'Generating proposals to feed Fast R-CNN network'; ``np.exp(dw) * anc_width``).

The arithmetic is :func:`frcnn_plugin.boxes.encode_deltas` /
:func:`~frcnn_plugin.boxes.decode_deltas` / :func:`~frcnn_plugin.boxes.clip_boxes`;
this class gives it the ``bbox_coder`` interface mmdet's heads call.
"""
from typing import Optional, Sequence, Union

from mmdet.models.task_modules import BaseBBoxCoder
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import BaseBoxes, HorizontalBoxes, get_box_tensor
from torch import Tensor

from ..boxes import MaxShape, clip_boxes, decode_deltas, encode_deltas


@TASK_UTILS.register_module()
class ScratchDeltaXYWHBBoxCoder(BaseBBoxCoder):
    """(x1, y1, x2, y2) <-> (dx, dy, dw, dh), a drop-in for mmdet's ``DeltaXYWHBBoxCoder``.

    ``(px, py, pw, ph)`` is a base box (anchor / proposal) as centre and size,
    ``(gx, gy, gw, gh)`` the target box::

        encode: d = ((gx - px) / pw, (gy - py) / ph, log(gw / pw), log(gh / ph))
                deltas = (d - target_means) / target_stds
        decode: (dx, dy, dw, dh) = deltas * target_stds + target_means
                gx = px + pw * dx,  gw = pw * exp(clamp(dw, +-|log(wh_ratio_clip)|)), same for y, h

    ``target_stds`` < 1 (e.g. 0.1, 0.2 in the R-CNN head) scale the small
    refinements a second stage learns up to unit variance for the loss.

    Args:
        target_means (Sequence[float]): means subtracted from the deltas.
        target_stds (Sequence[float]): stds the deltas are divided by.
        clip_border (bool): clip decoded boxes to the image when ``max_shape`` is given.
        add_ctr_clamp (bool): clamp the decoded centre shift to ``+-ctr_clamp``
            pixels (YOLOF); ``dw, dh`` are then clamped from above only.
        ctr_clamp (int): the largest centre shift, in pixels, with ``add_ctr_clamp``.
        use_box_type (bool): return :class:`HorizontalBoxes` from ``decode``.
    """

    def __init__(self,
                 target_means: Sequence[float] = (0., 0., 0., 0.),
                 target_stds: Sequence[float] = (1., 1., 1., 1.),
                 clip_border: bool = True,
                 add_ctr_clamp: bool = False,
                 ctr_clamp: int = 32,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.means = target_means
        self.stds = target_stds
        self.clip_border = clip_border
        self.add_ctr_clamp = add_ctr_clamp
        self.ctr_clamp = ctr_clamp

    def encode(self, bboxes: Union[Tensor, BaseBoxes],
               gt_bboxes: Union[Tensor, BaseBoxes]) -> Tensor:
        """``(N, 4), (N, 4) -> (N, 4)``: float32 targets moving ``bboxes`` onto ``gt_bboxes``."""
        return encode_deltas(get_box_tensor(bboxes), get_box_tensor(gt_bboxes),
                             self.means, self.stds)

    def decode(self, bboxes: Union[Tensor, BaseBoxes], pred_bboxes: Tensor,
               max_shape: Optional[MaxShape] = None,
               wh_ratio_clip: Optional[float] = 16 / 1000) -> Union[Tensor, BaseBoxes]:
        """Boxes ``(N, 4 * C)`` or ``(B, N, 4 * C)`` from base boxes and deltas.

        Args:
            bboxes (Tensor or BaseBoxes): base boxes ``(N, 4)`` or ``(B, N, 4)``.
            pred_bboxes (Tensor): deltas ``(N, 4 * C)`` or ``(B, N, 4 * C)``;
                ``C > 1`` for class-specific regression.
            max_shape: ``(H, W[, C])`` to clip to (with ``clip_border``); for a
                batch also one shape per image, as a sequence or ``(B, 2|3)`` tensor.
            wh_ratio_clip (float): bounds ``|dw|, |dh|`` by ``|log(wh_ratio_clip)|``.
        """
        bboxes = get_box_tensor(bboxes)
        if pred_bboxes.size(0) != bboxes.size(0) or (
                pred_bboxes.ndim == 3 and pred_bboxes.size(1) != bboxes.size(1)):
            raise ValueError(f'deltas {tuple(pred_bboxes.shape)} do not match '
                             f'boxes {tuple(bboxes.shape)}')
        # One code path serves one image and a batch: the math broadcasts over
        # leading dims (mmdet routes batches through a separate ONNX function).
        decoded = decode_deltas(bboxes, pred_bboxes, self.means, self.stds, wh_ratio_clip,
                                self.ctr_clamp if self.add_ctr_clamp else None)
        if self.clip_border and max_shape is not None:
            decoded = clip_boxes(decoded, max_shape)
        if self.use_box_type:
            if decoded.size(-1) != 4:
                raise ValueError('class-specific boxes (N, 4 * C) cannot be wrapped '
                                 'as HorizontalBoxes')
            decoded = HorizontalBoxes(decoded)
        return decoded
