"""Three steps of the tutorials, named as the Korean walkthrough names its sections
(docs/references.md): '4. RPN (Region Proposal Network)' (a 3x3 conv on the feature
map, then a 1x1 objectness branch and a 1x1 box branch), '3. Anchor Target Layer' (keep
the anchors inside the image, label them against the gt boxes, sample the mini-batch,
encode the box targets, then '4.1 Multi-task Loss') and '5. Proposal Layer' (decode the
best-scored anchors, clip them to the image, drop tiny ones, NMS at 0.7, keep the top N).

The tutorials do this for one 50x50 map with numpy loops and index bookkeeping; here
one class does it for any number of pyramid levels and images, each step a tensor
expression over all anchors of an image.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.task_modules import SamplingResult
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import get_box_tensor, get_box_wh
from mmdet.utils import ConfigType, InstanceList, MultiConfig, OptConfigType, OptInstanceList
from mmengine.structures import InstanceData
from torch import Tensor

from ..boxes import anchors_inside, rescale_boxes
from ..ops.nms import batched_nms


@MODELS.register_module()
class ScratchRPNHead(BaseDenseHead):
    """Region Proposal Network head, a drop-in for mmdet's ``RPNHead``.

    Per pyramid level ``l`` with features ``x_l`` ``(B, in_channels, H, W)`` and
    ``A`` anchors per cell (``C = 1`` with a sigmoid loss, ``2`` with softmax)::

        h         = relu(rpn_conv(x_l))            (B, feat_channels, H, W)   3x3
        cls_score = rpn_cls(h)                     (B, A * C, H, W)           1x1
        bbox_pred = rpn_reg(h)                     (B, A * 4, H, W)           1x1

    Channel ``a * C + c`` (``a * 4 + j``) of cell ``(i, j)`` belongs to anchor
    ``(i * W + j) * A + a`` of the anchor generator, so
    ``permute(0, 2, 3, 1).reshape(B, -1, C)`` lines the outputs up with the anchors.

    Training (anchor target layer), per image, over its ``N`` anchors::

        inside  = valid (cell within pad_shape) & inside the image +- allowed_border
        label   = assigner(anchors[inside], gt)        positive / negative / ignored
        sampled = sampler(label)                       e.g. 256, at most half positive
        loss    = sum_l CE(cls_l, fg/bg) / avg + sum_l L1(bbox_l, encode(anchor, gt)) / avg

    with ``avg`` the number of sampled anchors of the batch (positives only
    without a sampler); unsampled and outside anchors weigh 0.

    Testing (proposal layer), per image: per level the ``nms_pre`` best anchors
    by objectness, decoded and clipped to ``img_shape``; boxes not wider and higher
    than ``min_bbox_size`` dropped; NMS (``test_cfg.nms``) inside each level;
    the best ``max_per_img`` kept.

    Args:
        in_channels (int): channels of the input features.
        num_classes (int): must be 1 (objectness).
        init_cfg: weight init, by default ``N(0, 0.01)`` for every conv.
        num_convs (int): 3x3 convs before the branches (ConvModules when > 1).
        feat_channels (int): channels of the 3x3 convs.
        anchor_generator, bbox_coder: ``TASK_UTILS`` configs.
        reg_decoded_bbox (bool): regress decoded boxes onto gt boxes (IoU losses).
        loss_cls, loss_bbox: ``MODELS`` loss configs; ``loss_cls.use_sigmoid``
            picks sigmoid (1 channel) or 2-way softmax (fg, bg) scores.
        train_cfg: ``assigner``, ``sampler`` (optional), ``allowed_border``,
            ``pos_weight`` (<= 0: 1).
        test_cfg: ``nms_pre``, ``min_bbox_size``, ``nms``, ``max_per_img``.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int = 1,
                 init_cfg: MultiConfig = dict(type='Normal', layer='Conv2d', std=0.01),
                 num_convs: int = 1,
                 feat_channels: int = 256,
                 anchor_generator: ConfigType = dict(
                     type='ScratchAnchorGenerator', scales=[8, 16, 32],
                     ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]),
                 bbox_coder: ConfigType = dict(
                     type='ScratchDeltaXYWHBBoxCoder', clip_border=True,
                     target_means=(.0, .0, .0, .0), target_stds=(1.0, 1.0, 1.0, 1.0)),
                 reg_decoded_bbox: bool = False,
                 loss_cls: ConfigType = dict(
                     type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
                 loss_bbox: ConfigType = dict(
                     type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0),
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes != 1:
            raise ValueError(f'the RPN scores objectness only: num_classes must be 1, '
                             f'got {num_classes}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.num_convs = num_convs
        self.feat_channels = feat_channels
        # Sigmoid: one "object" logit per anchor. Softmax: (object, background)
        # logits, the tutorials' 9 x 2 channels; label 1 (= num_classes) is background.
        self.use_sigmoid_cls = loss_cls.get('use_sigmoid', False)
        self.cls_out_channels = num_classes if self.use_sigmoid_cls else num_classes + 1
        self.reg_decoded_bbox = reg_decoded_bbox
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        if train_cfg:
            self.assigner = TASK_UTILS.build(train_cfg['assigner'])
            # Without a sampler every assigned anchor counts (see _sample).
            self.sampler = (TASK_UTILS.build(train_cfg['sampler'], default_args=dict(context=self))
                            if train_cfg.get('sampler') is not None else None)
        self.prior_generator = TASK_UTILS.build(anchor_generator)
        self.num_base_priors = self.prior_generator.num_base_priors[0]
        self._init_layers()

    def _init_layers(self) -> None:
        """``rpn_conv`` (a Conv2d, or a Sequential of ConvModules), ``rpn_cls``, ``rpn_reg``."""
        if self.num_convs > 1:
            # Conv + ReLU blocks; not in-place, the pre-activation is needed by autograd.
            self.rpn_conv = nn.Sequential(*[
                ConvModule(self.in_channels if i == 0 else self.feat_channels,
                           self.feat_channels, 3, padding=1, inplace=False)
                for i in range(self.num_convs)])
        else:
            self.rpn_conv = nn.Conv2d(self.in_channels, self.feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(self.feat_channels,
                                 self.num_base_priors * self.cls_out_channels, 1)
        self.rpn_reg = nn.Conv2d(self.feat_channels,
                                 self.num_base_priors * self.bbox_coder.encode_size, 1)

    # ----------------------------------------------------------------- forward
    def forward_single(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """One level: ``(B, in, H, W) -> (B, A * C, H, W), (B, A * 4, H, W)``."""
        x = F.relu(self.rpn_conv(x))
        return self.rpn_cls(x), self.rpn_reg(x)

    def forward(self, x: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Per-level ``cls_scores`` and ``bbox_preds`` (the same weights on every level)."""
        cls_scores, bbox_preds = [], []
        for feat in x:
            cls_score, bbox_pred = self.forward_single(feat)
            cls_scores.append(cls_score)
            bbox_preds.append(bbox_pred)
        return cls_scores, bbox_preds

    # ------------------------------------------------------ anchor target layer
    def get_anchors(self, featmap_sizes: List[Tuple[int, int]], batch_img_metas: List[dict],
                    device: Union[torch.device, str] = 'cuda'
                    ) -> Tuple[List[List[Tensor]], List[List[Tensor]]]:
        """Anchors per image and level (one shared list: the batch has one map size)
        and valid flags per image and level (cells within that image's ``pad_shape``)."""
        anchors = self.prior_generator.grid_priors(featmap_sizes, device=device)
        valid_flags = [self.prior_generator.valid_flags(featmap_sizes, meta['pad_shape'], device)
                       for meta in batch_img_metas]
        return [anchors] * len(batch_img_metas), valid_flags

    def _sample(self, assign_result, pred_instances: InstanceData,
                gt_instances: InstanceData) -> SamplingResult:
        """The configured sampler's mini-batch; without one, every positive and
        negative anchor, averaged over the positives only."""
        if self.sampler is not None:
            return self.sampler.sample(assign_result, pred_instances, gt_instances)
        priors = pred_instances.priors
        return SamplingResult(
            pos_inds=(assign_result.gt_inds > 0).nonzero().view(-1),
            neg_inds=(assign_result.gt_inds == 0).nonzero().view(-1),
            priors=priors, gt_bboxes=gt_instances.bboxes, assign_result=assign_result,
            gt_flags=priors.new_zeros(priors.size(0), dtype=torch.uint8),
            avg_factor_with_neg=False)

    def _get_targets_single(self, flat_anchors: Tensor, valid_flags: Tensor,
                            gt_instances: InstanceData, img_meta: dict,
                            gt_instances_ignore: Optional[InstanceData] = None) -> tuple:
        """Targets of one image's ``N`` anchors (all levels concatenated).

        Returns ``labels (N,)`` long (``num_classes`` = background), ``label_weights
        (N,)``, ``bbox_targets (N, D)``, ``bbox_weights (N, D)`` and the sampling
        result (indices into the inside anchors). Anchors outside the image or not
        sampled keep weight 0.
        """
        inside = valid_flags & anchors_inside(flat_anchors, img_meta['img_shape'],
                                              self.train_cfg['allowed_border'])
        inside_inds = inside.nonzero().view(-1)
        if inside_inds.numel() == 0:
            raise ValueError('No anchor lies inside the image: check the image and anchor '
                             'sizes, or set train_cfg.allowed_border=-1 to keep all anchors.')
        pred_instances = InstanceData(priors=flat_anchors[inside_inds])
        assign_result = self.assigner.assign(pred_instances, gt_instances, gt_instances_ignore)
        sampling_result = self._sample(assign_result, pred_instances, gt_instances)

        num_anchors = flat_anchors.size(0)
        target_dim = (gt_instances.bboxes.size(-1) if self.reg_decoded_bbox
                      else self.bbox_coder.encode_size)
        labels = flat_anchors.new_full((num_anchors,), self.num_classes, dtype=torch.long)
        label_weights = flat_anchors.new_zeros(num_anchors, dtype=torch.float)
        bbox_targets = flat_anchors.new_zeros(num_anchors, target_dim)
        bbox_weights = flat_anchors.new_zeros(num_anchors, target_dim)
        # Sampled indices count inside anchors; write straight into the full-size
        # targets through inside_inds rather than building small ones and scattering.
        pos = inside_inds[sampling_result.pos_inds]
        if pos.numel():
            if self.reg_decoded_bbox:
                bbox_targets[pos] = get_box_tensor(sampling_result.pos_gt_bboxes)
            else:
                bbox_targets[pos] = self.bbox_coder.encode(sampling_result.pos_priors,
                                                           sampling_result.pos_gt_bboxes)
            bbox_weights[pos] = 1.0
            labels[pos] = sampling_result.pos_gt_labels
            pos_weight = self.train_cfg['pos_weight']
            label_weights[pos] = pos_weight if pos_weight > 0 else 1.0
        label_weights[inside_inds[sampling_result.neg_inds]] = 1.0
        return labels, label_weights, bbox_targets, bbox_weights, sampling_result

    def get_targets(self, anchor_list: List[List[Tensor]], valid_flag_list: List[List[Tensor]],
                    batch_gt_instances: InstanceList, batch_img_metas: List[dict],
                    batch_gt_instances_ignore: OptInstanceList = None) -> tuple:
        """Targets of a batch, per level: ``labels``, ``label_weights``
        ``(B, N_l)``, ``bbox_targets``, ``bbox_weights`` ``(B, N_l, D)`` (lists over
        levels), and ``avg_factor``, the loss normaliser summed over the images."""
        num_imgs = len(batch_img_metas)
        if batch_gt_instances_ignore is None:
            batch_gt_instances_ignore = [None] * num_imgs
        num_level_anchors = [anchors.size(0) for anchors in anchor_list[0]]
        per_image = [self._get_targets_single(torch.cat(anchor_list[i]),
                                              torch.cat(valid_flag_list[i]),
                                              batch_gt_instances[i], batch_img_metas[i],
                                              batch_gt_instances_ignore[i])
                     for i in range(num_imgs)]
        *targets, sampling_results = zip(*per_image)
        # Kept for get_positive_infos(), as mmdet's heads do.
        self._raw_positive_infos.update(sampling_results=list(sampling_results))
        avg_factor = sum(result.avg_factor for result in sampling_results)
        # (B, N) -> per level (B, N_l): the loss then reads each level like its
        # cls_score, image by image.
        per_level = [list(torch.stack(target).split(num_level_anchors, dim=1))
                     for target in targets]
        return (*per_level, avg_factor)

    def loss_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList, batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """``dict(loss_rpn_cls=[per level], loss_rpn_bbox=[per level])``, each level's
        sum normalised by the batch's ``avg_factor`` (so the levels add up)."""
        featmap_sizes = [cls_score.shape[-2:] for cls_score in cls_scores]
        if len(featmap_sizes) != self.prior_generator.num_levels:
            raise ValueError(f'{self.prior_generator.num_levels} levels expected, '
                             f'got {len(featmap_sizes)}')
        anchor_list, valid_flag_list = self.get_anchors(
            featmap_sizes, batch_img_metas, device=cls_scores[0].device)
        labels, label_weights, bbox_targets, bbox_weights, avg_factor = self.get_targets(
            anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
            batch_gt_instances_ignore)

        reg_dim = self.bbox_coder.encode_size
        losses_cls, losses_bbox = [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            cls_score = cls_score.permute(0, 2, 3, 1).reshape(-1, self.cls_out_channels)
            losses_cls.append(self.loss_cls(cls_score, labels[level].reshape(-1),
                                            label_weights[level].reshape(-1),
                                            avg_factor=avg_factor))
            bbox_pred = bbox_pred.permute(0, 2, 3, 1).reshape(-1, reg_dim)
            if self.reg_decoded_bbox:  # compare boxes, not deltas (IoU-type losses)
                anchors = torch.cat([anchors[level] for anchors in anchor_list])
                bbox_pred = get_box_tensor(self.bbox_coder.decode(anchors, bbox_pred))
            target_dim = bbox_targets[level].size(-1)
            losses_bbox.append(self.loss_bbox(bbox_pred,
                                              bbox_targets[level].reshape(-1, target_dim),
                                              bbox_weights[level].reshape(-1, target_dim),
                                              avg_factor=avg_factor))
        return dict(loss_rpn_cls=losses_cls, loss_rpn_bbox=losses_bbox)

    # ----------------------------------------------------------- proposal layer
    def _objectness(self, cls_score: Tensor) -> Tensor:
        """``(A * C, H, W) -> (H * W * A,)`` object probability, in anchor order."""
        cls_score = cls_score.permute(1, 2, 0).reshape(-1, self.cls_out_channels)
        if self.use_sigmoid_cls:
            return cls_score.sigmoid().view(-1)
        return cls_score.softmax(-1)[:, 0]  # channel 0 is "object", 1 background

    def top_proposals_by_level(self, cls_score_list: List[Tensor], bbox_pred_list: List[Tensor],
                               mlvl_priors: List[Tensor], img_meta: dict,
                               cfg: ConfigType) -> Tuple[Tensor, Tensor, Tensor]:
        """Proposal layer, first steps, for one image: per level the ``cfg.nms_pre``
        anchors of best objectness (all if ``nms_pre <= 0``), moved by their deltas and
        clipped to ``img_shape``. Inputs per level: ``(A * C, H, W)`` scores, ``(A * 4,
        H, W)`` deltas, ``(H * W * A, 4)`` anchors. Returns ``bboxes (K, 4)``, ``scores
        (K,)`` and ``level_ids (K,)``, level by level."""
        nms_pre = cfg.get('nms_pre', -1)
        reg_dim = self.bbox_coder.encode_size
        scores, deltas, priors, level_ids = [], [], [], []
        for level, (cls_score, bbox_pred, level_priors) in enumerate(
                zip(cls_score_list, bbox_pred_list, mlvl_priors)):
            level_scores = self._objectness(cls_score)
            level_deltas = bbox_pred.permute(1, 2, 0).reshape(-1, reg_dim)
            # Exporting, one graph serves every map size: it sorts whatever the size
            # (the cut then keeps all anchors of a small map).
            if 0 < nms_pre and (torch.compiler.is_exporting()
                                or nms_pre < level_scores.numel()):
                # A full sort, as mmdet: ties (common with near-0 early logits) then
                # fall in the same order, so the same anchors make the cut.
                level_scores, order = level_scores.sort(descending=True)
                level_scores, order = level_scores[:nms_pre], order[:nms_pre]
                level_deltas, level_priors = level_deltas[order], level_priors[order]
            scores.append(level_scores)
            deltas.append(level_deltas)
            priors.append(level_priors)
            level_ids.append(torch.full_like(level_scores, level, dtype=torch.long))
        bboxes = get_box_tensor(self.bbox_coder.decode(
            torch.cat(priors), torch.cat(deltas), max_shape=img_meta['img_shape']))
        return bboxes, torch.cat(scores), torch.cat(level_ids)

    @staticmethod
    def large_enough(bboxes: Tensor, min_bbox_size: float) -> Tensor:
        """``(K, 4) -> (K,)`` bool: wider and higher than ``min_bbox_size`` (the tutorials'
        ``min_size`` filter; they keep ``>=``, mmdet ``>``)."""
        widths, heights = get_box_wh(bboxes)
        return (widths > min_bbox_size) & (heights > min_bbox_size)

    def _predict_by_feat_single(self, cls_score_list: List[Tensor], bbox_pred_list: List[Tensor],
                                score_factor_list: List[Optional[Tensor]],
                                mlvl_priors: List[Tensor], img_meta: dict,
                                cfg: Optional[ConfigType], rescale: bool = False,
                                with_nms: bool = True) -> InstanceData:
        """Proposals of one image from its per-level ``(A * C, H, W)`` scores and
        ``(A * 4, H, W)`` deltas: ``InstanceData`` with ``bboxes (K, 4)``, ``scores
        (K,)`` best first, ``labels (K,)`` zeros; ``score_factor_list`` is unused."""
        if not with_nms:
            raise ValueError('the RPN proposal layer always applies NMS (with_nms=True)')
        cfg = self.test_cfg if cfg is None else cfg
        bboxes, scores, level_ids = self.top_proposals_by_level(
            cls_score_list, bbox_pred_list, mlvl_priors, img_meta, cfg)

        if rescale:  # back to the original image: multiply by 1 / scale (w, h)
            bboxes = rescale_boxes(bboxes, img_meta['scale_factor'])
        min_bbox_size = cfg.get('min_bbox_size', -1)
        if min_bbox_size >= 0:
            # One nonzero, then plain indexing: one wait for the device, not three masks.
            big = self.large_enough(bboxes, min_bbox_size).nonzero().squeeze(1)
            bboxes, scores, level_ids = bboxes[big], scores[big], level_ids[big]

        results = InstanceData()
        if bboxes.numel():
            # Levels never suppress each other: their boxes have different scales.
            dets, keep = batched_nms(bboxes, scores, level_ids, cfg['nms'])
            max_per_img = cfg['max_per_img']
            results.bboxes = bboxes[keep[:max_per_img]]
            results.scores = dets[:max_per_img, -1]
        else:
            results.bboxes = bboxes.new_zeros(0, 4)
            results.scores = scores.new_zeros(0)
        results.labels = torch.zeros_like(results.scores, dtype=torch.long)
        return results
