"""Box math, in one place. Boxes are ``(..., 4)`` tensors ``[x1, y1, x2, y2]`` in pixels.

The tutorials (docs/references.md) compute these with loops over numpy arrays; here
each is one broadcast expression over all boxes, so the task modules and heads never loop
over boxes.
"""
import math
from numbers import Number
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

MaxShape = Union[Sequence[int], Sequence[Sequence[int]], Tensor]


def box_area(boxes: Tensor) -> Tensor:
    """``(..., 4) -> (...)``: ``(x2 - x1) * (y2 - y1)`` (negative for inverted boxes)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_overlaps(boxes1: Tensor, boxes2: Tensor, mode: str = 'iou',
                 is_aligned: bool = False, eps: float = 1e-6) -> Tensor:
    """IoU, IoF or GIoU of every box of ``boxes1`` with every box of ``boxes2``.

    Shapes: ``(..., m, 4), (..., n, 4) -> (..., m, n)``, or ``(..., m)`` with
    ``is_aligned`` (pairs ``i <-> i``, ``m == n``); batch dims must match.

        inter = max(0, min(x2, x2') - max(x1, x1')) * max(0, min(y2, y2') - max(y1, y1'))
        iou   = inter / max(area + area' - inter, eps)
        iof   = inter / max(area, eps)                  (overlap over the first box)
        giou  = iou - (enclose - union) / max(enclose, eps)

    The same operations, in the same order, as mmdet's ``bbox_overlaps``, so the
    results are equal (bit for bit). It is faster because each coordinate is made
    a contiguous row first (the broadcast kernels then stream memory instead of
    striding over ``(m, 1, 4)`` views) and because every ``(m, n)`` intermediate
    after the first is updated in place: the matrices are what costs at
    200k anchors x 30 gts, not the arithmetic. Autograd still works through it.
    """
    if mode not in ('iou', 'iof', 'giou'):
        raise ValueError(f"mode must be 'iou', 'iof' or 'giou', got {mode!r}")
    if boxes1.shape[:-2] != boxes2.shape[:-2]:
        raise ValueError(f'batch shapes differ: {tuple(boxes1.shape)} vs {tuple(boxes2.shape)}')
    rows, cols = boxes1.size(-2), boxes2.size(-2)
    if is_aligned and rows != cols:
        raise ValueError(f'is_aligned needs as many boxes on each side, got {rows} and {cols}')
    batch = boxes1.shape[:-2]
    if rows * cols == 0:
        return boxes1.new_zeros(batch + ((rows,) if is_aligned else (rows, cols)))

    coords1, coords2 = boxes1.movedim(-1, 0), boxes2.movedim(-1, 0)  # (4, ..., m)
    area1, area2 = box_area(boxes1), box_area(boxes2)
    if not is_aligned:  # (..., m, 1) against (..., 1, n), each coordinate a contiguous row
        coords1, coords2 = coords1.contiguous()[..., :, None], coords2.contiguous()[..., None, :]
        area1, area2 = area1[..., :, None], area2[..., None, :]
    x1, y1, x2, y2 = coords1
    x1_, y1_, x2_, y2_ = coords2

    overlap = torch.min(x2, x2_).sub_(torch.max(x1, x1_)).clamp_(min=0)
    overlap.mul_(torch.min(y2, y2_).sub_(torch.max(y1, y1_)).clamp_(min=0))
    if mode == 'iof':  # the first box's area alone; the division broadcasts it
        union = area1.clamp(min=eps)
    else:
        union = (area1 + area2).sub_(overlap).clamp_(min=eps)
    ious = overlap.div_(union)
    if mode != 'giou':
        return ious
    enclose = torch.max(x2, x2_).sub_(torch.min(x1, x1_)).clamp_(min=0)
    enclose.mul_(torch.max(y2, y2_).sub_(torch.min(y1, y1_)).clamp_(min=0)).clamp_(min=eps)
    return ious - (enclose - union).div_(enclose)


def _centers_sizes(boxes: Tensor):
    """``(..., 4) -> (..., 2), (..., 2)``: centre ``(cx, cy)`` and size ``(w, h)``."""
    xy1, xy2 = boxes[..., :2], boxes[..., 2:]
    return (xy1 + xy2) * 0.5, xy2 - xy1


def encode_deltas(boxes: Tensor, gt_boxes: Tensor,
                  means: Sequence[float] = (0., 0., 0., 0.),
                  stds: Sequence[float] = (1., 1., 1., 1.)) -> Tensor:
    """Regression targets that move ``boxes`` onto ``gt_boxes`` (R-CNN parametrisation).

    Shapes: ``(..., 4), (..., 4) -> (..., 4)`` float32, columns ``(dx, dy, dw, dh)``::

        dx = (gx - px) / pw        dw = log(gw / pw)
        dy = (gy - py) / ph        dh = log(gh / ph)
        deltas = (deltas - means) / stds

    ``(px, py, pw, ph)`` / ``(gx, gy, gw, gh)`` are the centre and size of the
    box / gt. Offsets are relative to the box size so one regressor serves all
    scales; sizes are logs so shrinking and growing are symmetric. Computed in
    float32 like mmdet (``log`` of half-precision ratios loses the targets).
    Zero-width boxes give ``inf``/``nan``, as in mmdet: assigners never pair them.
    """
    if boxes.shape != gt_boxes.shape or boxes.size(-1) != 4:
        raise ValueError(f'need two (..., 4) tensors of one shape, got '
                         f'{tuple(boxes.shape)} and {tuple(gt_boxes.shape)}')
    # Column by column: contiguous 1-D temporaries are the fastest form on CPU.
    x1, y1, x2, y2 = boxes.float().unbind(-1)
    gx1, gy1, gx2, gy2 = gt_boxes.float().unbind(-1)
    pw, ph = x2 - x1, y2 - y1
    deltas = torch.stack([((gx1 + gx2) * 0.5 - (x1 + x2) * 0.5) / pw,
                          ((gy1 + gy2) * 0.5 - (y1 + y2) * 0.5) / ph,
                          torch.log((gx2 - gx1) / pw), torch.log((gy2 - gy1) / ph)], dim=-1)
    # Subtracting 0 and dividing by 1 change no bit: skip those passes (the RPN's
    # targets have neither, the R-CNN's only stds).
    if any(m != 0 for m in means):
        deltas.sub_(deltas.new_tensor(means))
    if any(s != 1 for s in stds):
        deltas.div_(deltas.new_tensor(stds))
    return deltas


def decode_deltas(boxes: Tensor, deltas: Tensor,
                  means: Sequence[float] = (0., 0., 0., 0.),
                  stds: Sequence[float] = (1., 1., 1., 1.),
                  wh_ratio_clip: float = 16 / 1000,
                  ctr_clamp: Optional[float] = None) -> Tensor:
    """Apply predicted ``deltas`` to ``boxes``: the inverse of :func:`encode_deltas`.

    Shapes: ``boxes (..., n, 4)``, ``deltas (..., n, 4 * k) -> (..., n, 4 * k)``;
    ``k`` sets of deltas per box (class-specific regression) all apply to that
    box, and leading dims broadcast (one image or a batch)::

        (dx, dy, dw, dh) = deltas * stds + means
        dw, dh = clamp(dw, dh, -r, r)           r = |log(wh_ratio_clip)|
        gx = px + pw * dx                       gw = pw * exp(dw)
        gy = py + ph * dy                       gh = ph * exp(dh)
        box = (gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2)

    Clamping ``dw, dh`` stops ``exp`` overflowing on wild early predictions
    (r = 4.135 lets a box grow or shrink ~62x at most). With ``ctr_clamp``
    (YOLOF's variant) the centre shift ``pw * dx, ph * dy`` is clamped to
    ``+-ctr_clamp`` pixels instead and ``dw, dh`` only from above.
    """
    # (..., n, 4k) -> (..., n, 4, k): coordinate j of all k delta sets is one
    # row, so a box's centre and size, (..., n, 2, 1), broadcast along rows
    # instead of being strided over pairs (2x faster for class-specific deltas).
    deltas = deltas.unflatten(-1, (-1, 4)).transpose(-1, -2)
    # Multiplying by 1 changes no bit: skipped, as in encode_deltas. Adding 0 is not
    # skipped: it turns -0 into +0, and mmdet's boxes keep that sign.
    if any(s != 1 for s in stds):
        deltas = deltas * deltas.new_tensor(stds)[:, None]
    deltas = deltas + deltas.new_tensor(means)[:, None]
    centers, sizes = _centers_sizes(boxes)
    centers, sizes = centers[..., None], sizes[..., None]
    shift = sizes * deltas[..., :2, :]
    log_scale = deltas[..., 2:, :]
    max_ratio = abs(math.log(wh_ratio_clip))
    if ctr_clamp is None:
        log_scale = log_scale.clamp(min=-max_ratio, max=max_ratio)
    else:
        shift = shift.clamp(min=-ctr_clamp, max=ctr_clamp)
        log_scale = log_scale.clamp(max=max_ratio)
    centers = centers + shift
    half_sizes = sizes * log_scale.exp() * 0.5
    corners = torch.cat([centers - half_sizes, centers + half_sizes], dim=-2)  # (..., n, 4, k)
    return corners.transpose(-1, -2).flatten(-2)


def clip_boxes(boxes: Tensor, max_shape: MaxShape) -> Tensor:
    """Clamp ``x`` into ``[0, W]`` and ``y`` into ``[0, H]``.

    ``boxes``: ``(..., n, 4 * k)``. ``max_shape``: ``(H, W)`` or ``(H, W, C)``
    for all boxes, or one such shape per image of a batch (a sequence or
    ``(B, 2|3)`` tensor) with ``boxes`` ``(B, n, 4 * k)``. Returns a new tensor.
    """
    if not torch.is_tensor(max_shape) and all(isinstance(v, Number) for v in max_shape):
        # One (H, W[, C]) for all boxes: clamps by Python numbers on the x and y
        # columns (2x faster than by a broadcast tensor).
        clipped = boxes.clamp(min=0)
        clipped[..., 0::2].clamp_(max=max_shape[1])
        clipped[..., 1::2].clamp_(max=max_shape[0])
        return clipped
    bounds = torch.as_tensor(max_shape, device=boxes.device)[..., :2].to(boxes.dtype)
    if bounds.ndim > 1 and bounds.shape[:-1] != boxes.shape[:-2]:
        raise ValueError(f'one max_shape per image needed: got {tuple(bounds.shape)} '
                         f'for boxes {tuple(boxes.shape)}')
    # (..., 2) as (H, W) -> a (..., 4k) row W, H, W, H, ... (one per image: (B, 1, 4k)),
    # which broadcasts over the boxes along their contiguous last dim.
    bounds = bounds.flip(-1).repeat((1,) * (bounds.ndim - 1) + (boxes.size(-1) // 2,))
    if bounds.ndim > 1:
        bounds = bounds.unsqueeze(-2)
    return boxes.clamp(min=0).clamp_(max=bounds)


def rescale_boxes(boxes: Tensor, scale_factor: Sequence[float]) -> Tensor:
    """``(..., 4 * k)`` boxes in the resized image -> the original image.

    ``scale_factor`` is ``(w_scale, h_scale)``, what the resize multiplied by; the
    boxes are multiplied by the reciprocals (computed in Python, as mmdet does, so
    the results are bit-equal to mmdet's heads).
    """
    inverse = boxes.new_tensor([1 / s for s in scale_factor])
    return boxes * inverse.repeat(boxes.size(-1) // 2)


def anchors_inside(anchors: Tensor, img_shape: Sequence[int], allowed_border: float) -> Tensor:
    """``(N, 4) -> (N,)`` bool: the anchor lies in the image grown by ``allowed_border``.

        x1 >= -b,  y1 >= -b,  x2 < W + b,  y2 < H + b          (b = allowed_border)

    ``b = 0`` is the paper's "ignore cross-boundary anchors" (the tutorials'
    ``index_inside``); ``b < 0`` keeps every anchor.
    """
    if allowed_border < 0:
        return anchors.new_ones(anchors.size(0), dtype=torch.bool)
    img_h, img_w = img_shape[:2]
    # Column by column: ``.all(dim=1)`` over 2-wide rows is 5x slower on CPU.
    x1, y1, x2, y2 = anchors.unbind(1)
    return ((x1 >= -allowed_border) & (y1 >= -allowed_border)
            & (x2 < img_w + allowed_border) & (y2 < img_h + allowed_border))
