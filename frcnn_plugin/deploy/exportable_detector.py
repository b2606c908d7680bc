"""The test-time pass of our Faster R-CNN as one traceable function of the image, for
``torch.onnx.export``: what ``TwoStageDetector.predict(..., rescale=False)`` computes for
one image, written without Python decisions on data (each ``if n:`` on a count, each
loop over kept boxes) so that one graph serves every image size and every number of
boxes. mmdeploy rewrites mmdet's heads the same way; here every step calls the heads'
own modules and helpers, and NMS and RoI pooling are the custom operators of
:mod:`.onnx_ops`, which export as standard ONNX operators.
"""
from typing import Tuple

import torch
from torch import Tensor, nn

from ..models.bbox_head import ScratchBBoxHead
from ..models.roi_extractor import ScratchRoIExtractor
from ..models.roi_head import ScratchRoIHead
from ..models.rpn_head import ScratchRPNHead
from ..ops.roi_align import ScratchRoIAlign
from ..ops.roi_pool import ScratchRoIPool
from ..task_modules.bbox_coder import ScratchDeltaXYWHBBoxCoder
from . import onnx_ops


class NotExportable(ValueError):
    """A component the graph cannot hold (one line, naming it)."""


def class_name(module) -> str:
    return f'{type(module).__module__.split(".")[0]}\'s {type(module).__name__}'


def check_exportable(detector: nn.Module) -> None:
    """Raise :class:`NotExportable` naming the first component that is not one of ours
    with an ONNX translation (a stock mmdet head or mmcv op: mmcv's compiled NMS and
    RoIAlign have no standard ONNX form)."""
    checks = [('model.rpn_head', getattr(detector, 'rpn_head', None), ScratchRPNHead),
              ('model.roi_head', getattr(detector, 'roi_head', None), ScratchRoIHead)]
    roi_head = getattr(detector, 'roi_head', None)
    if isinstance(roi_head, ScratchRoIHead):
        checks += [('model.roi_head.bbox_roi_extractor', roi_head.bbox_roi_extractor,
                    ScratchRoIExtractor),
                   ('model.roi_head.bbox_head', roi_head.bbox_head, ScratchBBoxHead)]
        extractor = roi_head.bbox_roi_extractor
        if isinstance(extractor, ScratchRoIExtractor):
            checks.append(('model.roi_head.bbox_roi_extractor.roi_layer',
                           extractor.roi_layers[0], (ScratchRoIAlign, ScratchRoIPool)))
        checks.append(('model.roi_head.bbox_head.bbox_coder',
                       getattr(roi_head.bbox_head, 'bbox_coder', None),
                       ScratchDeltaXYWHBBoxCoder))
    rpn_head = getattr(detector, 'rpn_head', None)
    if isinstance(rpn_head, ScratchRPNHead):
        checks.append(('model.rpn_head.bbox_coder', rpn_head.bbox_coder,
                       ScratchDeltaXYWHBBoxCoder))
    for where, component, allowed in checks:
        if not isinstance(component, allowed):
            names = ' or '.join(c.__name__ for c in
                                (allowed if isinstance(allowed, tuple) else (allowed,)))
            what = 'missing' if component is None else class_name(component)
            raise NotExportable(f'{where} is {what}: only {names} exports to standard '
                                'ONNX operators')
    layer = roi_head.bbox_roi_extractor.roi_layers[0]
    if isinstance(layer, ScratchRoIAlign) and layer.pool_mode != 'avg' \
            and not layer.use_torchvision:
        raise NotExportable("model.roi_head.bbox_roi_extractor.roi_layer is ScratchRoIAlign "
                            "with pool_mode='max': ONNX's RoiAlign max mode is not mmcv's")
    if roi_head.with_shared_head or roi_head.bbox_head.custom_cls_channels:
        raise NotExportable('model.roi_head: a shared head or custom classifier channels '
                            'do not export (only the plain Fast R-CNN box head)')


def batched_nms_keep(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float,
                     max_num: int) -> Tensor:
    """``batched_nms``'s ``keep`` (at most ``max_num`` when > 0): each group's boxes
    moved by ``group * (max + 1)`` as mmcv moves them, then one NMS. The boxes are
    clipped to the image, so ``>= 0``: a 0 joined to them changes no maximum and makes
    an empty set's maximum 0."""
    shift = torch.cat((boxes.flatten(), boxes.new_zeros(1))).max() + boxes.new_tensor(1)
    shifted = boxes + (groups.to(boxes) * shift)[:, None]
    return onnx_ops.nms(shifted, scores, iou_threshold, max_num)


class ExportableFasterRCNN(nn.Module):
    """``forward(image, img_shape)``: ``image (1, 3, H, W)`` as the data preprocessor
    gives it (normalised, padded), ``img_shape (2,)`` int64 the resized image's
    ``(h, w)`` inside it -> ``bboxes (K, 4)`` in that image's pixels, ``scores (K,)``,
    ``labels (K,)`` int64, best first: ``detector.predict`` with ``rescale=False``.

    The steps, each as the detector runs it: backbone (+ neck), RPN head, per level the
    ``nms_pre`` best anchors decoded and clipped, boxes not larger than
    ``min_bbox_size`` dropped, NMS per level keeping ``max_per_img``; RoI pooling of the
    proposals (each to its pyramid level), the box head, softmax, the (proposal, class)
    pairs above ``score_thr`` decoded and clipped, NMS per class, the best
    ``max_per_img``.
    """

    def __init__(self, detector: nn.Module):
        super().__init__()
        check_exportable(detector)
        self.detector = detector

    def forward(self, image: Tensor, img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        feats = self.detector.extract_feat(image)
        proposals = self.proposals(feats, img_shape)
        return self.detections(feats, proposals, img_shape)

    def proposals(self, feats: Tuple[Tensor], img_shape: Tensor) -> Tensor:
        """The proposal layer: ``(P, 4)`` boxes, best first."""
        rpn_head = self.detector.rpn_head
        cfg = self.detector.test_cfg.rpn
        cls_scores, bbox_preds = rpn_head(feats)
        priors = rpn_head.prior_generator.grid_priors(
            [score.shape[-2:] for score in cls_scores], dtype=cls_scores[0].dtype,
            device=cls_scores[0].device)
        bboxes, scores, level_ids = rpn_head.top_proposals_by_level(
            [score[0] for score in cls_scores], [pred[0] for pred in bbox_preds], priors,
            dict(img_shape=img_shape), cfg)
        min_bbox_size = cfg.get('min_bbox_size', -1)
        if min_bbox_size >= 0:
            big = rpn_head.large_enough(bboxes, min_bbox_size).nonzero()[:, 0]
            bboxes, scores, level_ids = bboxes[big], scores[big], level_ids[big]
        keep = batched_nms_keep(bboxes, scores, level_ids, cfg.nms['iou_threshold'],
                                cfg['max_per_img'])
        return bboxes[keep]

    def pool(self, feats: Tuple[Tensor], rois: Tensor) -> Tensor:
        """``ScratchRoIExtractor.forward``: each RoI pooled from its level (every level
        pools every RoI; each RoI takes its own level's result)."""
        extractor = self.detector.roi_head.bbox_roi_extractor
        feats = feats[:extractor.num_inputs]
        pooled = [self.roi_layer(layer, feat, rois)
                  for layer, feat in zip(extractor.roi_layers, feats)]
        if len(pooled) == 1:
            return pooled[0]
        levels = extractor.map_roi_levels(rois, len(feats))[:, None, None, None]
        roi_feats = torch.zeros_like(pooled[0])
        for level, level_feats in enumerate(pooled):
            roi_feats = torch.where(levels == level, level_feats, roi_feats)
        return roi_feats

    @staticmethod
    def roi_layer(layer: nn.Module, feat: Tensor, rois: Tensor) -> Tensor:
        """``layer(feat, rois)`` through its exportable operator."""
        out_h, out_w = layer.output_size
        if isinstance(layer, ScratchRoIPool):
            return onnx_ops.roi_pool(feat, rois, out_h, out_w, layer.spatial_scale)
        return onnx_ops.roi_align(feat, rois, out_h, out_w, layer.spatial_scale,
                                  layer.sampling_ratio, layer.aligned)

    def detections(self, feats: Tuple[Tensor], proposals: Tensor,
                   img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The Fast R-CNN stage on the proposals: ``bboxes (K, 4)``, ``scores (K,)``,
        ``labels (K,)``."""
        bbox_head = self.detector.roi_head.bbox_head
        cfg = self.detector.test_cfg.rcnn
        rois = torch.cat((proposals.new_zeros(proposals.size(0), 1), proposals), dim=1)
        cls_score, bbox_pred = bbox_head(self.pool(feats, rois))
        scores = cls_score.softmax(-1)
        num_classes = scores.size(1) - 1
        fg_scores = scores[:, :-1].reshape(-1)
        candidates = (fg_scores > cfg['score_thr']).nonzero()[:, 0]
        roi_inds = torch.div(candidates, num_classes, rounding_mode='floor')
        labels = candidates % num_classes
        deltas = (bbox_pred[roi_inds] if bbox_head.reg_class_agnostic else
                  bbox_pred.reshape(-1, bbox_head.bbox_coder.encode_size)[candidates])
        bboxes = bbox_head.bbox_coder.decode(rois[roi_inds, 1:], deltas, max_shape=img_shape)
        fg_scores = fg_scores[candidates]
        keep = batched_nms_keep(bboxes, fg_scores, labels, cfg.nms['iou_threshold'],
                                cfg['max_per_img'])
        return bboxes[keep], fg_scores[keep], labels[keep]
