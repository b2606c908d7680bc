"""The proposal target layer (the Korean walkthrough, '6. Proposal Target Layer'; the
step-by-step PyTorch tutorial, 'Proposal targets') and the detection pass of the Fast
R-CNN stage: the RoI head that ties the RoI extractor and the bbox head together.

Training, per image (the tutorials' one image): label every proposal by its best gt
(``ious.argmax(axis=1)``: positive from IoU 0.5, negative below), add the gt boxes to
the proposals (py-faster-rcnn's proposal target layer does so), draw 128 of them with up
to 25 % positives, then pool the drawn RoIs of all images from the feature map and feed
them to the Fast R-CNN head, whose losses are the stage's. Testing: pool every proposal,
score and regress it, decode per class, NMS per class (the bbox head's
``predict_by_feat``).
"""
from typing import List, Optional, Tuple

import torch
from mmdet.models.roi_heads.base_roi_head import BaseRoIHead
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi
from mmengine.structures import InstanceData
from torch import Tensor


@MODELS.register_module()
class ScratchRoIHead(BaseRoIHead):
    """Fast R-CNN stage of Faster R-CNN, a drop-in for mmdet's ``StandardRoIHead`` with a
    box branch (same arguments, attributes, outputs and loss names; no mask branch).

    ``loss(x, rpn_results_list, batch_data_samples)``: ``x`` the feature levels
    ``(N, C, H_l, W_l)``, one ``InstanceData(bboxes (n_i, 4))`` of proposals per image
    -> the bbox head's losses (``loss_cls``, ``acc``, ``loss_bbox``)::

        per image i:  assign = assigner(proposals_i, gt_i)          IoU labels, (n_i,)
                      sample = sampler(assign, proposals_i, gt_i)   gt prepended, m_i drawn
        rois = bbox2roi(sample.priors of every image)               (sum m_i, 5)
        cls_score, bbox_pred = bbox_head(roi_extractor(x, rois))    (M, C + 1), (M, 4C)
        losses = bbox_head.loss_and_target(..., sampling results)

    ``predict(x, rpn_results_list, batch_data_samples, rescale)``: every proposal is
    pooled and scored, then ``bbox_head.predict_by_feat`` decodes, thresholds and NMSes
    per class: one ``InstanceData(bboxes (k, 4), scores (k,), labels (k,))`` per image.

    Args:
        bbox_roi_extractor (dict): the RoI extractor (``ScratchRoIExtractor``).
        bbox_head (dict): the box head (``ScratchBBoxHead``).
        mask_roi_extractor, mask_head: not supported (Faster R-CNN has no masks); a
            mask head is an error.
        shared_head (dict, optional): a module applied to the pooled features before
            the box head (mmdet's ResLayer C4 head).
        train_cfg (dict): ``assigner``, ``sampler`` and the bbox head's ``pos_weight``.
        test_cfg (dict): ``score_thr``, ``nms``, ``max_per_img`` for ``predict_by_feat``.
        init_cfg (dict, optional): passed to ``BaseModule``.
    """

    def init_assigner_sampler(self) -> None:
        """The proposal target layer's assigner and sampler (training only)."""
        self.bbox_assigner = None
        self.bbox_sampler = None
        if self.train_cfg:
            self.bbox_assigner = TASK_UTILS.build(self.train_cfg.assigner)
            self.bbox_sampler = TASK_UTILS.build(self.train_cfg.sampler,
                                                 default_args=dict(context=self))

    def init_bbox_head(self, bbox_roi_extractor: dict, bbox_head: dict) -> None:
        self.bbox_roi_extractor = MODELS.build(bbox_roi_extractor)
        self.bbox_head = MODELS.build(bbox_head)

    def init_mask_head(self, mask_roi_extractor: Optional[dict], mask_head: dict) -> None:
        raise NotImplementedError(
            'ScratchRoIHead has a box branch only (Faster R-CNN); for a mask head use '
            "mmdet's StandardRoIHead (our extractor and bbox head work inside it)")

    def sample_proposals(self, x: Tuple[Tensor], rpn_results_list: List[InstanceData],
                         batch_data_samples: SampleList) -> list:
        """The proposal target layer: one ``SamplingResult`` per image (its ``priors``
        the drawn RoIs, positives first, with their gt boxes and labels)."""
        if len(rpn_results_list) != len(batch_data_samples):
            raise ValueError(f'{len(rpn_results_list)} proposal lists for '
                             f'{len(batch_data_samples)} images')
        sampling_results = []
        for i, (proposals, sample) in enumerate(zip(rpn_results_list, batch_data_samples)):
            proposals = InstanceData(priors=proposals.bboxes)
            ignored = sample.get('ignored_instances', None)
            assign_result = self.bbox_assigner.assign(proposals, sample.gt_instances, ignored)
            # feats: for samplers that look at the features (mmdet's OHEMSampler).
            sampling_results.append(self.bbox_sampler.sample(
                assign_result, proposals, sample.gt_instances,
                feats=[level[i][None] for level in x]))
        return sampling_results

    def loss(self, x: Tuple[Tensor], rpn_results_list: List[InstanceData],
             batch_data_samples: SampleList) -> dict:
        sampling_results = self.sample_proposals(x, rpn_results_list, batch_data_samples)
        return dict(self.bbox_loss(x, sampling_results)['loss_bbox'])

    def _bbox_forward(self, x: Tuple[Tensor], rois: Tensor) -> dict:
        """RoI pooling and the head: ``rois (n, 5)`` -> ``cls_score``, ``bbox_pred``,
        ``bbox_feats`` (the pooled ``(n, C, 7, 7)``)."""
        bbox_feats = self.bbox_roi_extractor(x[:self.bbox_roi_extractor.num_inputs], rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        cls_score, bbox_pred = self.bbox_head(bbox_feats)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, bbox_feats=bbox_feats)

    def bbox_loss(self, x: Tuple[Tensor], sampling_results: list) -> dict:
        """:meth:`_bbox_forward` on the sampled RoIs plus ``loss_bbox``, the head's losses."""
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self._bbox_forward(x, rois)
        targets = self.bbox_head.loss_and_target(
            cls_score=bbox_results['cls_score'], bbox_pred=bbox_results['bbox_pred'],
            rois=rois, sampling_results=sampling_results, rcnn_train_cfg=self.train_cfg)
        bbox_results.update(loss_bbox=targets['loss_bbox'])
        return bbox_results

    def forward(self, x: Tuple[Tensor], rpn_results_list: List[InstanceData],
                batch_data_samples: Optional[SampleList] = None) -> tuple:
        """The raw head outputs on every proposal: ``(cls_score, bbox_pred)``."""
        rois = bbox2roi([res.bboxes for res in rpn_results_list])
        bbox_results = self._bbox_forward(x, rois)
        return bbox_results['cls_score'], bbox_results['bbox_pred']

    def predict_bbox(self, x: Tuple[Tensor], batch_img_metas: List[dict],
                     rpn_results_list: List[InstanceData], rcnn_test_cfg: Optional[dict],
                     rescale: bool = False) -> List[InstanceData]:
        """Detections per image from its proposals (see the class doc); without
        ``rcnn_test_cfg`` every class's box and score of every proposal."""
        proposals = [res.bboxes for res in rpn_results_list]
        rois = bbox2roi(proposals)
        if rois.size(0) == 0:
            # No proposal in the whole batch: nothing to pool (mmdet's empty_instances).
            scores_shape = (0, self.bbox_head.num_classes + 1) if rcnn_test_cfg is None else (0,)
            return [InstanceData(bboxes=torch.zeros(0, 4, device=rois.device),
                                 scores=torch.zeros(scores_shape, device=rois.device),
                                 labels=torch.zeros(0, dtype=torch.long, device=rois.device))
                    for _ in batch_img_metas]
        bbox_results = self._bbox_forward(x, rois)
        per_image = [len(p) for p in proposals]
        bbox_preds = bbox_results['bbox_pred']
        bbox_preds = ((None,) * len(proposals) if bbox_preds is None
                      else bbox_preds.split(per_image))
        return self.bbox_head.predict_by_feat(
            rois=rois.split(per_image), cls_scores=bbox_results['cls_score'].split(per_image),
            bbox_preds=bbox_preds, batch_img_metas=batch_img_metas,
            rcnn_test_cfg=rcnn_test_cfg, rescale=rescale)
