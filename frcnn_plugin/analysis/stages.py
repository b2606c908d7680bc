"""The detector's own stages on one image, opened up: what ``tools/explain.py`` draws
(:mod:`.walkthrough`) and ``tools/diagnose.py`` counts (:mod:`.diagnosis`).

Each function calls the detector's modules through their public methods and
attributes (``prior_generator``, ``rpn_head.assigner``, ``rpn_head.get_targets``,
``roi_head.bbox_sampler``, the RoI head's own ``_bbox_forward``,
``roi_head.bbox_head.predict_by_feat``, ...), so what it shows is what the detector
computes, whichever components the config chose (ours or mmdet's). This module is the
one place the analysis tools call them.
"""
import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

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
    ``index_inside`` of the Korean walkthrough, '3. Anchor Target Layer', at 0; all
    anchors if negative)."""
    per_level = prior_generator.grid_priors(list(featmap_sizes), device=device)
    valid = torch.cat(prior_generator.valid_flags(list(featmap_sizes), img_meta['pad_shape'],
                                                  device))
    inside = valid & anchors_inside(torch.cat(per_level), img_meta['img_shape'], allowed_border)
    return per_level, inside


def best_anchor_ious(iou_calculator, gt_boxes: Tensor, anchors: Tensor) -> Tuple[Tensor, Tensor]:
    """Each gt's best IoU with ``anchors`` ``(G,)`` and how many anchors reach exactly
    that IoU ``(G,)`` (``gt_max_ious`` and ``np.where(ious == gt_max_ious)`` of the
    Korean walkthrough, '3. Anchor Target Layer').
    Without anchors the best IoU is 0, reached by none."""
    if anchors.size(0) == 0:
        return gt_boxes.new_zeros(gt_boxes.size(0)), gt_boxes.new_zeros(gt_boxes.size(0),
                                                                         dtype=torch.long)
    ious = iou_calculator(gt_boxes, anchors)  # (G, N)
    best = ious.amax(dim=1)
    return best, (ious == best[:, None]).sum(dim=1)


def rpn_ground_truth(gt: InstanceData) -> InstanceData:
    """The gts as the RPN sees them: one class, "object" (label 0), as
    ``TwoStageDetector.loss`` hands them to the RPN head."""
    return InstanceData(bboxes=gt.bboxes, labels=torch.zeros_like(gt.labels))


def assign_anchors(assigner, anchors: Tensor, gt: InstanceData,
                   ignored: Optional[InstanceData] = None):
    """The RPN's assigner on ``anchors (N, 4)``: its ``AssignResult`` (``gt_inds (N,)``:
    ``i + 1`` for gt ``i``, 0 negative, -1 neither)."""
    return assigner.assign(InstanceData(priors=anchors), gt, ignored)


def gts_with_positive_anchor(assigner, anchors: Tensor, gt: InstanceData,
                             ignored: InstanceData = None) -> Tensor:
    """``(G,)`` bool: the RPN's assigner gives the gt at least one positive anchor
    (IoU >= ``pos_iou_thr``, or its best anchors from ``min_pos_iou`` with
    ``match_low_quality``), as in training."""
    result = assign_anchors(assigner, anchors, gt, ignored)
    has_positive = torch.zeros(len(gt), dtype=torch.bool, device=gt.bboxes.device)
    has_positive[result.gt_inds[result.gt_inds > 0] - 1] = True
    return has_positive


@dataclass
class RPNTargets:
    """``rpn_head.get_targets`` for one image, over all its anchors (levels joined)."""
    positive: Tensor       # (N,) bool: sampled positive
    negative: Tensor       # (N,) bool: sampled negative
    bbox_targets: Tensor   # (N, 4) the encoded deltas (dx, dy, dw, dh) of the positives


def rpn_targets(rpn_head, featmap_sizes: Sequence[Tuple[int, int]], gt: InstanceData,
                ignored: Optional[InstanceData], img_meta: dict, device='cpu') -> RPNTargets:
    """The RPN's training targets of one image, as its loss computes them (anchors,
    assigner, sampler: seeded by the caller's ``torch.manual_seed``). ``gt`` as the
    RPN sees it (:func:`rpn_ground_truth`)."""
    anchor_list, valid_list = rpn_head.get_anchors(list(featmap_sizes), [img_meta],
                                                   device=device)
    labels, label_weights, bbox_targets = rpn_head.get_targets(
        anchor_list, valid_list, [gt], [img_meta], [ignored])[:3]
    labels, weights = torch.cat(labels, 1)[0], torch.cat(label_weights, 1)[0]
    return RPNTargets(positive=(weights > 0) & (labels < rpn_head.num_classes),
                      negative=(weights > 0) & (labels == rpn_head.num_classes),
                      bbox_targets=torch.cat(bbox_targets, 1)[0])


@dataclass
class Proposals:
    """The RPN's proposal layer on one image with one config (``test_cfg.rpn`` or
    ``train_cfg.rpn_proposal``)."""
    proposals: InstanceData   # bboxes (P, 4), scores (P,): what the RoI head gets
    # Boxes left after each step, where the head shows its steps (ours: ``'top_n'``,
    # ``'min_size'``, ``'nms'``); empty for a head that does not.
    counts: Dict[str, int] = field(default_factory=dict)


def rpn_proposals(rpn_head, feats: Sequence[Tensor], img_meta: dict, cfg) -> Proposals:
    """``rpn_head.predict_by_feat`` with ``cfg`` on the head's outputs for ``feats``
    (one image), and, for our RPN head (``top_proposals_by_level``), the boxes left
    after the pre-NMS top-N per level, the min-size filter and NMS (the Korean
    walkthrough's '5. Proposal Layer', step by step)."""
    cls_scores, bbox_preds = rpn_head(feats)

    def predict(config):
        return rpn_head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=[img_meta],
                                        cfg=config, rescale=False)[0]
    result = Proposals(predict(cfg))
    if hasattr(rpn_head, 'top_proposals_by_level'):
        featmap_sizes = [tuple(f.shape[-2:]) for f in feats]
        priors = rpn_head.prior_generator.grid_priors(featmap_sizes, device=feats[0].device)
        bboxes, _, _ = rpn_head.top_proposals_by_level(
            [s[0] for s in cls_scores], [b[0] for b in bbox_preds], priors, img_meta, cfg)
        uncapped = copy.deepcopy(cfg)
        uncapped.max_per_img = bboxes.size(0)
        result.counts = dict(
            top_n=bboxes.size(0),
            min_size=int(rpn_head.large_enough(bboxes, cfg.get('min_bbox_size', -1)).sum()),
            nms=len(predict(uncapped)))
    return result


def sample_rois(roi_head, proposals: InstanceData, gt: InstanceData,
                ignored: Optional[InstanceData], feats: Sequence[Tensor]):
    """The proposal target layer on one image's ``proposals (bboxes (P, 4))``: the RoI
    head's assigner and sampler (seeded by the caller), as its ``loss`` runs them.
    Returns the ``SamplingResult`` (``priors``: the sampled RoIs, positives first)."""
    priors = InstanceData(priors=proposals.bboxes)
    assign = roi_head.bbox_assigner.assign(priors, gt, ignored)
    return roi_head.bbox_sampler.sample(assign, priors, gt, feats=[f[0][None] for f in feats])


def pooled_features(roi_head, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
    """The RoI extractor alone: ``rois (n, 5)`` -> pooled ``(n, C, h, w)`` (before any
    shared head)."""
    extractor = roi_head.bbox_roi_extractor
    return extractor(feats[:extractor.num_inputs], rois)


def bbox_forward(roi_head, feats: Sequence[Tensor], rois: Tensor) -> dict:
    """RoI pooling and the box head as the detector runs them: the RoI head's own
    ``_bbox_forward(x, rois)`` (ours and mmdet's ``StandardRoIHead`` alike: the
    extractor, the ``shared_head`` if any, the bbox head). ``rois (n, 5)`` ->
    ``cls_score (n, C + 1)``, ``bbox_pred (n, 4C)``, ``bbox_feats`` (what the bbox head
    got)."""
    return roi_head._bbox_forward(tuple(feats), rois)


def rcnn_outputs(roi_head, feats: Sequence[Tensor], proposals: Tensor, img_meta: dict,
                 rcnn_test_cfg) -> Tuple[InstanceData, InstanceData]:
    """The Fast R-CNN head on ``proposals (P, 4)``, as ``StandardRoIHead.predict`` runs it
    (:func:`bbox_forward`, then ``bbox_head.predict_by_feat``), in the resized image:

    - the candidates before score threshold and NMS: ``bboxes (P, C, 4)`` (every
      class's box, decoded from its deltas and clipped), ``scores (P, C + 1)``
      (softmax, background last);
    - the detections with ``rcnn_test_cfg``: ``bboxes (D, 4)``, ``scores``, ``labels``.
    """
    rois = bbox2roi([proposals])
    results = bbox_forward(roi_head, feats, rois)
    outputs = ((rois,), (results['cls_score'],), (results['bbox_pred'],), [img_meta])
    every = roi_head.bbox_head.predict_by_feat(*outputs, rcnn_test_cfg=None, rescale=False)[0]
    detections = roi_head.bbox_head.predict_by_feat(*outputs, rcnn_test_cfg=rcnn_test_cfg,
                                                    rescale=False)[0]
    num_classes = every.scores.size(1) - 1
    bboxes = every.bboxes.view(rois.size(0), -1, 4).expand(-1, num_classes, -1)
    return InstanceData(bboxes=bboxes, scores=every.scores), detections


def detections(roi_head, feats: Sequence[Tensor], proposals: InstanceData,
               data_samples: list) -> InstanceData:
    """``roi_head.predict`` on one image's proposals (``model.predict``'s second half),
    in the resized image: ``bboxes (D, 4)``, ``scores (D,)``, ``labels (D,)``."""
    return roi_head.predict(feats, [proposals], data_samples, rescale=False)[0]


def image_losses(model, inputs: Tensor, data_sample) -> Dict[str, float]:
    """``model.loss`` on one image (``data_sample`` with ``gt_instances`` and
    ``ignored_instances``; the samplers seeded by the caller): each of ``loss_rpn_cls``,
    ``loss_rpn_bbox``, ``loss_cls``, ``loss_bbox`` the model returns, summed over levels."""
    with torch.no_grad():
        losses = model.loss(inputs, [data_sample])
    result = {}
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'):
        value = losses.get(key)
        if value is not None:
            value = sum(value) if isinstance(value, (list, tuple)) else value
            result[key] = float(value)
    return result
