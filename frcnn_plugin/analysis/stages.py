"""The detector's own stages on one image, opened up: what ``tools/explain.py`` draws
and ``tools/diagnose.py`` counts.

Each function calls the detector's modules through their public methods and
attributes (``prior_generator``, ``rpn_head.assigner``, ``roi_head.bbox_roi_extractor``,
``roi_head.bbox_head.predict_by_feat``, ...), so what it shows is what the detector
computes, whichever components the config chose (ours or mmdet's).
"""
from typing import List, Sequence, Tuple

import torch
from mmdet.structures.bbox import bbox2roi
from mmengine.structures import InstanceData
from torch import Tensor

from ..boxes import anchors_inside


def image_anchors(prior_generator, featmap_sizes: Sequence[Tuple[int, int]], img_meta: dict,
                  allowed_border: float, device='cpu') -> Tuple[List[Tensor], Tensor]:
    """The anchors of one image per level ``[(N_l, 4)]`` and the ``(N,)`` mask of those
    the RPN trains on, as ``rpn_head.get_anchors`` and its targets select them: valid
    cells (within ``pad_shape``) inside the image grown by ``allowed_border`` (the
    seeds' ``index_inside`` at 0; all anchors if negative)."""
    per_level = prior_generator.grid_priors(list(featmap_sizes), device=device)
    valid = torch.cat(prior_generator.valid_flags(list(featmap_sizes), img_meta['pad_shape'],
                                                  device))
    inside = valid & anchors_inside(torch.cat(per_level), img_meta['img_shape'], allowed_border)
    return per_level, inside


def best_anchor_ious(iou_calculator, gt_boxes: Tensor, anchors: Tensor) -> Tuple[Tensor, Tensor]:
    """Each gt's best IoU with ``anchors`` ``(G,)`` and how many anchors reach exactly
    that IoU ``(G,)`` (the seeds' ``gt_max_ious`` and ``np.where(ious == gt_max_ious)``).
    Without anchors the best IoU is 0, reached by none."""
    if anchors.size(0) == 0:
        return gt_boxes.new_zeros(gt_boxes.size(0)), gt_boxes.new_zeros(gt_boxes.size(0),
                                                                         dtype=torch.long)
    ious = iou_calculator(gt_boxes, anchors)  # (G, N)
    best = ious.amax(dim=1)
    return best, (ious == best[:, None]).sum(dim=1)


def gts_with_positive_anchor(assigner, anchors: Tensor, gt: InstanceData,
                             ignored: InstanceData = None) -> Tensor:
    """``(G,)`` bool: the RPN's assigner gives the gt at least one positive anchor
    (IoU >= ``pos_iou_thr``, or its best anchors from ``min_pos_iou`` with
    ``match_low_quality``), as in training."""
    result = assigner.assign(InstanceData(priors=anchors), gt, ignored)
    has_positive = torch.zeros(len(gt), dtype=torch.bool, device=gt.bboxes.device)
    has_positive[result.gt_inds[result.gt_inds > 0] - 1] = True
    return has_positive


def rcnn_outputs(roi_head, feats: Sequence[Tensor], proposals: Tensor, img_meta: dict,
                 rcnn_test_cfg) -> Tuple[InstanceData, InstanceData]:
    """The Fast R-CNN head on ``proposals (P, 4)``, as ``StandardRoIHead.predict`` runs it
    (RoI pooling, the head, ``bbox_head.predict_by_feat``), in the resized image:

    - the candidates before score threshold and NMS: ``bboxes (P, C, 4)`` (every
      class's box, decoded from its deltas and clipped), ``scores (P, C + 1)``
      (softmax, background last);
    - the detections with ``rcnn_test_cfg``: ``bboxes (D, 4)``, ``scores``, ``labels``.
    """
    rois = bbox2roi([proposals])
    extractor = roi_head.bbox_roi_extractor
    bbox_feats = extractor(feats[:extractor.num_inputs], rois)
    if getattr(roi_head, 'with_shared_head', False):
        bbox_feats = roi_head.shared_head(bbox_feats)
    cls_score, bbox_pred = roi_head.bbox_head(bbox_feats)
    outputs = ((rois,), (cls_score,), (bbox_pred,), [img_meta])
    every = roi_head.bbox_head.predict_by_feat(*outputs, rcnn_test_cfg=None, rescale=False)[0]
    detections = roi_head.bbox_head.predict_by_feat(*outputs, rcnn_test_cfg=rcnn_test_cfg,
                                                    rescale=False)[0]
    num_classes = every.scores.size(1) - 1
    bboxes = every.bboxes.view(rois.size(0), -1, 4).expand(-1, num_classes, -1)
    return InstanceData(bboxes=bboxes, scores=every.scores), detections
