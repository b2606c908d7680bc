"""Our NMS, RoIAlign and RoI max pooling as torch custom operators that export to the
standard ONNX operators: ``NonMaxSuppression``, ``RoiAlign`` and ``MaxRoiPool``.

Each operator's eager implementation is the plugin's own function
(:func:`~frcnn_plugin.ops.nms.nms`, :func:`~frcnn_plugin.ops.roi_align.roi_align_avg_sparse`,
:func:`~frcnn_plugin.ops.roi_pool.roi_pool_by_bin_shape`), so a model that calls them
computes exactly what the detector computes; ``torch.onnx.export(..., dynamo=True)``
writes each call as one node of the default ONNX domain through
:data:`ONNX_TRANSLATIONS`. The ONNX operators compute the same numbers as ours:

* ``NonMaxSuppression`` (``center_point_box=0``): greedy, best score first, a box
  suppressed when its IoU with a kept box is ``> iou_threshold``, IoU without the
  +1 pixel (``offset=0``), a pair of zero area never suppressing; the selected
  indices come best first, as ``nms`` returns them. Equal scores may fall in another
  order (onnxruntime takes the lower index first, ``torch.sort`` no defined order).
* ``RoiAlign`` (opset 16, ``mode='avg'``): Detectron's bilinear sampling, as mmcv's;
  ``coordinate_transformation_mode='half_pixel'`` is mmcv's ``aligned=True`` (the
  half-pixel shift, no 1-pixel minimum size), ``'output_half_pixel'`` its ``False``.
* ``MaxRoiPool``: Caffe's RoI pooling (``round`` half away from zero, bins by
  ``floor`` / ``ceil``), which ``roi_pool`` equals.
"""
import torch
from onnxscript import opset18 as op
from torch import Tensor

from ..ops.nms import nms as scratch_nms
from ..ops.roi_align import roi_align_avg_sparse
from ..ops.roi_pool import roi_pool_by_bin_shape

# RoiAlign's coordinate_transformation_mode arrived in opset 16.
OPSET = 18


@torch.library.custom_op('frcnn_plugin::nms', mutates_args=())
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, max_num: int) -> Tensor:
    """``boxes (N, 4)`` ``[x1, y1, x2, y2]``, ``scores (N,)`` -> ``keep (K,)`` int64, best
    first, at most ``max_num`` (all when ``max_num <= 0``): :func:`~frcnn_plugin.ops.nms.nms`."""
    return scratch_nms(boxes, scores, iou_threshold, max_num=max_num)


@nms.register_fake
def _(boxes, scores, iou_threshold, max_num):
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty(kept, dtype=torch.long)


@torch.library.custom_op('frcnn_plugin::roi_align', mutates_args=())
def roi_align(input: Tensor, rois: Tensor, out_h: int, out_w: int, spatial_scale: float,
              sampling_ratio: int, aligned: bool) -> Tensor:
    """``input (1, C, H, W)``, ``rois (K, 5)`` -> ``(K, C, out_h, out_w)``: average RoIAlign
    (``ScratchRoIAlign`` with ``pool_mode='avg'``)."""
    return roi_align_avg_sparse(input, rois, (out_h, out_w), spatial_scale, sampling_ratio,
                                aligned)


@roi_align.register_fake
def _(input, rois, out_h, out_w, spatial_scale, sampling_ratio, aligned):
    return input.new_empty(rois.size(0), input.size(1), out_h, out_w)


@torch.library.custom_op('frcnn_plugin::roi_pool', mutates_args=())
def roi_pool(input: Tensor, rois: Tensor, out_h: int, out_w: int,
             spatial_scale: float) -> Tensor:
    """``input (1, C, H, W)``, ``rois (K, 5)`` -> ``(K, C, out_h, out_w)``: RoI max pooling
    (``ScratchRoIPool``)."""
    return roi_pool_by_bin_shape(input, rois, (out_h, out_w), spatial_scale)


@roi_pool.register_fake
def _(input, rois, out_h, out_w, spatial_scale):
    return input.new_empty(rois.size(0), input.size(1), out_h, out_w)


def nms_to_onnx(boxes, scores, iou_threshold: float, max_num: int):
    """``NonMaxSuppression`` over one batch and one class; its third column, the kept
    box indices."""
    if max_num > 0:
        max_output = op.Constant(value_ints=[max_num])
    else:  # every box may be kept (0 would keep none)
        max_output = op.Shape(boxes, start=0, end=1)
    selected = op.NonMaxSuppression(
        op.Unsqueeze(boxes, [0]), op.Unsqueeze(scores, [0, 1]), max_output,
        op.Constant(value_floats=[iou_threshold]), center_point_box=0)  # [K, 3]
    return op.Reshape(op.Slice(selected, [2], [3], [1]), [-1])


def roi_align_to_onnx(input, rois, out_h: int, out_w: int, spatial_scale: float,
                      sampling_ratio: int, aligned: bool):
    """``RoiAlign`` on the rows' boxes, their first column the batch index."""
    batch_indices = op.Cast(op.Reshape(op.Slice(rois, [0], [1], [1]), [-1]), to=7)  # int64
    return op.RoiAlign(
        input, op.Slice(rois, [1], [5], [1]), batch_indices, mode='avg',
        output_height=out_h, output_width=out_w, sampling_ratio=sampling_ratio,
        spatial_scale=spatial_scale,
        coordinate_transformation_mode='half_pixel' if aligned else 'output_half_pixel')


def roi_pool_to_onnx(input, rois, out_h: int, out_w: int, spatial_scale: float):
    """``MaxRoiPool``: the same ``(K, 5)`` rows."""
    return op.MaxRoiPool(input, rois, pooled_shape=[out_h, out_w], spatial_scale=spatial_scale)


# torch.onnx.export(..., custom_translation_table=ONNX_TRANSLATIONS)
ONNX_TRANSLATIONS = {
    torch.ops.frcnn_plugin.nms.default: nms_to_onnx,
    torch.ops.frcnn_plugin.roi_align.default: roi_align_to_onnx,
    torch.ops.frcnn_plugin.roi_pool.default: roi_pool_to_onnx,
}
