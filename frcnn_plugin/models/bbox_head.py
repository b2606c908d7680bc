"""The Fast R-CNN head (the Korean walkthrough, '8. Fast R-CNN'; docs/references.md):
flatten the 7x7 RoI features, FC 4096, FC 4096,
then class scores and per-class boxes; the proposal targets encoded against the
sampled RoIs; cross-entropy plus smooth-L1 losses; and, at test time, softmax,
decoding and per-class NMS.

The tutorials feed ``k.view(n, -1)`` through ``nn.Linear(25088, 4096), nn.Linear(4096,
4096)`` and two predictor layers, builds targets for one image in numpy and takes
the regression loss on ``roi_loc[arange(n), gt_label]`` of the positives. Here the
same steps serve a whole batch at once (targets for every image in one encode,
every class of every RoI in one decode, all classes in one NMS) behind the
interface the RoI head (``ScratchRoIHead``, or mmdet's ``StandardRoIHead``) calls, so
it is a drop-in for ``Shared2FCBBoxHead``. Unlike the tutorials (and like mmdet and the
Fast R-CNN paper) each shared FC is followed by a ReLU: without it the two FCs collapse
into one linear map.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import get_box_tensor
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from ..boxes import rescale_boxes
from ..ops.nms import batched_nms
from ..task_modules.bbox_coder import ScratchDeltaXYWHBBoxCoder  # noqa: F401  registers the default


@MODELS.register_module()
class ScratchBBoxHead(BaseModule):
    """Fast R-CNN box head: shared FCs, then a classifier and a box regressor.

    Drop-in for mmdet's ``Shared2FCBBoxHead`` (``ConvFCBBoxHead`` with shared FCs
    only); same arguments, parameter names and outputs. Shapes, ``n`` RoIs,
    ``C = num_classes`` (label ``C`` is background), ``S = roi_feat_size``::

        x (n, in_channels, S, S) -> flatten (n, in_channels * S * S)   [avg-pool: (n, in_channels)]
        h = relu(shared_fcs.1(relu(shared_fcs.0(x))))  fc6, fc7: (n, fc_out_channels)
        cls_score = fc_cls(h)  (n, C + 1)
        bbox_pred = fc_reg(h)  (n, 4 * C)             (n, 4) with reg_class_agnostic

    Training targets, per sampled RoI ``r`` with matched gt ``g``::

        label = gt label (positives) or C (negatives)
        label_weight = pos_weight (positives, 1 if pos_weight <= 0) or 1
        bbox_target = bbox_coder.encode(r, g), bbox_weight = 1 (positives only)

        loss_cls  = loss_cls(cls_score, label, label_weight) / #(label_weight > 0)
        loss_bbox = loss_bbox(bbox_pred[pos, 4 * label : 4 * label + 4], bbox_target) / n

    Test: ``scores = softmax(cls_score)``; every (RoI, class) box scoring above
    ``score_thr`` is decoded from its RoI, clipped to the image, optionally scaled
    back to the original image; then NMS within each class and the best
    ``max_per_img`` are kept.

    Args:
        fc_out_channels (int): width of the two shared FCs (4096 in the tutorials).
        in_channels (int): channels of the RoI features.
        roi_feat_size (int or tuple): ``S``.
        num_classes (int): foreground classes ``C``.
        bbox_coder (dict): config of the coder, built from ``TASK_UTILS``; the
            default is mmdet's with our coder (``ScratchDeltaXYWHBBoxCoder``,
            bit-equal to mmdet's ``DeltaXYWHBBoxCoder``), stds (0.1, 0.1, 0.2, 0.2).
        reg_class_agnostic (bool): one box per RoI instead of one per class.
        reg_decoded_bbox (bool): regress decoded boxes (IoU-type losses) instead
            of deltas.
        with_avg_pool (bool): average-pool the RoI features instead of flattening.
        with_cls, with_reg (bool): build the classifier / the regressor.
        predict_box_type (str): box type of the predictions ('hbox').
        reg_predictor_cfg, cls_predictor_cfg (dict): the predictor layers.
        loss_cls, loss_bbox (dict): loss configs, built from ``MODELS``.
        conv_out_channels, conv_cfg, norm_cfg: ``ConvFCBBoxHead``'s conv options, which
            ``Shared2FCBBoxHead`` accepts and, having no convs, ignores; so does this head.
        init_cfg (dict or list, optional): defaults to mmdet's: Normal(0.01) for
            ``fc_cls``, Normal(0.001) for ``fc_reg``, uniform Xavier for ``shared_fcs``.
    """

    def __init__(self,
                 fc_out_channels: int = 1024,
                 *,
                 in_channels: int = 256,
                 roi_feat_size: int = 7,
                 num_classes: int = 80,
                 bbox_coder: dict = dict(
                     type='ScratchDeltaXYWHBBoxCoder',
                     clip_border=True,
                     target_means=[0., 0., 0., 0.],
                     target_stds=[0.1, 0.1, 0.2, 0.2]),
                 reg_class_agnostic: bool = False,
                 reg_decoded_bbox: bool = False,
                 with_avg_pool: bool = False,
                 with_cls: bool = True,
                 with_reg: bool = True,
                 predict_box_type: str = 'hbox',
                 reg_predictor_cfg: dict = dict(type='Linear'),
                 cls_predictor_cfg: dict = dict(type='Linear'),
                 loss_cls: dict = dict(
                     type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                 loss_bbox: dict = dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0),
                 conv_out_channels: int = 256,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not (with_cls or with_reg):
            raise ValueError('a box head needs with_cls or with_reg')
        self.with_avg_pool = with_avg_pool
        self.with_cls = with_cls
        self.with_reg = with_reg
        self.roi_feat_size = _pair(roi_feat_size)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.predict_box_type = predict_box_type
        self.reg_class_agnostic = reg_class_agnostic
        self.reg_decoded_bbox = reg_decoded_bbox
        self.fc_out_channels = fc_out_channels
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)

        flat_channels = in_channels * (1 if with_avg_pool else self.roi_feat_size[0]
                                       * self.roi_feat_size[1])
        # The predictors are registered before the shared FCs, as in mmdet, so
        # parameters come in mmdet's order (optimizer states index them by position).
        if with_cls:
            cls_channels = (self.loss_cls.get_cls_channels(num_classes)
                            if self.custom_cls_channels else num_classes + 1)
            self.fc_cls = MODELS.build(dict(cls_predictor_cfg, in_features=fc_out_channels,
                                            out_features=cls_channels))
        if with_reg:
            box_dim = self.bbox_coder.encode_size
            out_features = box_dim if reg_class_agnostic else box_dim * num_classes
            self.fc_reg = MODELS.build(dict(reg_predictor_cfg, in_features=fc_out_channels,
                                            out_features=out_features))
        # fc6 and fc7.
        self.shared_fcs = nn.ModuleList([nn.Linear(flat_channels, fc_out_channels),
                                         nn.Linear(fc_out_channels, fc_out_channels)])

        if init_cfg is None:
            self.init_cfg = []
            if with_cls:
                self.init_cfg.append(dict(type='Normal', std=0.01, override=dict(name='fc_cls')))
            if with_reg:
                self.init_cfg.append(dict(type='Normal', std=0.001, override=dict(name='fc_reg')))
            self.init_cfg.append(dict(type='Xavier', distribution='uniform',
                                      override=[dict(name='shared_fcs')]))

    # Losses such as Seesaw bring their own channels, activation and accuracy.
    @property
    def custom_cls_channels(self) -> bool:
        return getattr(self.loss_cls, 'custom_cls_channels', False)

    @property
    def custom_activation(self) -> bool:
        return getattr(self.loss_cls, 'custom_activation', False)

    @property
    def custom_accuracy(self) -> bool:
        return getattr(self.loss_cls, 'custom_accuracy', False)

    def forward(self, x: Tensor) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """``(n, in_channels, S, S) -> cls_score (n, C + 1), bbox_pred (n, 4C | 4)``."""
        if self.with_avg_pool:
            x = F.avg_pool2d(x, self.roi_feat_size)
        x = x.flatten(1)
        for fc in self.shared_fcs:
            # In place: the linear output is not needed by its own backward.
            x = F.relu(fc(x), inplace=True)
        cls_score = self.fc_cls(x) if self.with_cls else None
        bbox_pred = self.fc_reg(x) if self.with_reg else None
        return cls_score, bbox_pred

    def get_targets(self, sampling_results: List, rcnn_train_cfg: ConfigDict,
                    concat: bool = True) -> tuple:
        """Targets of the sampled RoIs of every image, each image's positives first.

        Returns ``labels (N,)`` long, ``label_weights (N,)``, ``bbox_targets (N, d)``,
        ``bbox_weights (N, d)`` (``d`` = 4, or the gt box size with
        ``reg_decoded_bbox``), ``N`` the RoIs of all images; with ``concat=False``
        each is a list of per-image tensors.
        """
        pos_priors = torch.cat([get_box_tensor(res.pos_priors) for res in sampling_results])
        pos_gt_bboxes = torch.cat([get_box_tensor(res.pos_gt_bboxes) for res in sampling_results])
        pos_gt_labels = torch.cat([res.pos_gt_labels for res in sampling_results])
        counts = [(len(res.pos_priors), len(res.neg_priors)) for res in sampling_results]
        device, dtype = pos_priors.device, pos_priors.dtype
        num = sum(p + n for p, n in counts)
        reg_dim = pos_gt_bboxes.size(-1) if self.reg_decoded_bbox else self.bbox_coder.encode_size

        labels = torch.full((num,), self.num_classes, dtype=torch.long, device=device)
        label_weights = torch.ones(num, dtype=dtype, device=device)
        bbox_targets = torch.zeros(num, reg_dim, dtype=dtype, device=device)
        bbox_weights = torch.zeros(num, reg_dim, dtype=dtype, device=device)
        if pos_priors.size(0):
            # Encoded for all images at once; the rows are image by image, each
            # image's positives first, so every image's positives are one slice.
            pos_targets = (pos_gt_bboxes if self.reg_decoded_bbox else
                           self.bbox_coder.encode(pos_priors, pos_gt_bboxes)).to(dtype)
            # pos_weight <= 0 means "weight positives as negatives".
            pos_weight = rcnn_train_cfg['pos_weight']
            row = first = 0
            for num_pos, num_neg in counts:
                rows, pos = slice(row, row + num_pos), slice(first, first + num_pos)
                labels[rows] = pos_gt_labels[pos]
                label_weights[rows] = 1.0 if pos_weight <= 0 else pos_weight
                bbox_targets[rows] = pos_targets[pos]
                bbox_weights[rows] = 1
                row, first = row + num_pos + num_neg, first + num_pos
        targets = labels, label_weights, bbox_targets, bbox_weights
        if concat:
            return targets
        per_image = [p + n for p, n in counts]
        return tuple(list(t.split(per_image)) for t in targets)

    def loss_and_target(self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor,
                        sampling_results: List, rcnn_train_cfg: ConfigDict,
                        concat: bool = True, reduction_override: Optional[str] = None) -> dict:
        """``dict(loss_bbox=<dict of losses>, bbox_targets=<get_targets' tuple>)``."""
        targets = self.get_targets(sampling_results, rcnn_train_cfg, concat=concat)
        losses = self.loss(cls_score, bbox_pred, rois, *targets,
                           reduction_override=reduction_override)
        return dict(loss_bbox=losses, bbox_targets=targets)

    def loss(self, cls_score: Optional[Tensor], bbox_pred: Optional[Tensor], rois: Tensor,
             labels: Tensor, label_weights: Tensor, bbox_targets: Tensor,
             bbox_weights: Tensor, reduction_override: Optional[str] = None) -> dict:
        """``loss_cls``, ``acc`` (top-1, percent) and ``loss_bbox``.

        The classification loss is averaged over the RoIs with a non-zero weight,
        the box loss over all ``N`` RoIs (the tutorials' normaliser: negatives count,
        they just have no box error).
        """
        losses = dict()
        if cls_score is not None and cls_score.numel() > 0:
            # A tensor, not a Python number: no wait for the device (mmdet's .item()).
            avg_factor = (label_weights > 0).sum().float().clamp_(min=1.)
            loss_cls = self.loss_cls(cls_score, labels, label_weights, avg_factor=avg_factor,
                                     reduction_override=reduction_override)
            if isinstance(loss_cls, dict):
                losses.update(loss_cls)
            else:
                losses['loss_cls'] = loss_cls
            if self.custom_activation:
                losses.update(self.loss_cls.get_accuracy(cls_score, labels))
            else:
                # Shape (1,), as mmdet's ``accuracy``; topk breaks ties as it does.
                correct = cls_score.topk(1, dim=1)[1][:, 0] == labels
                losses['acc'] = correct.float().sum(0, keepdim=True).mul_(100.0 / labels.numel())
        if bbox_pred is not None:
            pos = ((labels >= 0) & (labels < self.num_classes)).nonzero().squeeze(1)
            if pos.numel():
                if self.reg_decoded_bbox:
                    bbox_pred = get_box_tensor(self.bbox_coder.decode(rois[:, 1:], bbox_pred))
                if self.reg_class_agnostic:
                    pos_pred = bbox_pred[pos]
                else:
                    # The tutorials' roi_loc[arange(n), gt_label]: each positive
                    # is regressed by its gt class's box only. One gather (and one
                    # scatter backward), not the positives' rows and then their box.
                    pos_pred = bbox_pred.unflatten(1, (self.num_classes, -1))[pos, labels[pos]]
                losses['loss_bbox'] = self.loss_bbox(
                    pos_pred, bbox_targets[pos], bbox_weights[pos],
                    avg_factor=bbox_targets.size(0), reduction_override=reduction_override)
            else:
                # A zero that still depends on bbox_pred, so every parameter
                # gets a (zero) gradient, as in mmdet (DDP needs one).
                losses['loss_bbox'] = bbox_pred[pos].sum()
        return losses

    def predict_by_feat(self, rois: Tuple[Tensor], cls_scores: Tuple[Tensor],
                        bbox_preds: Tuple[Optional[Tensor]], batch_img_metas: List[dict],
                        rcnn_test_cfg: Optional[ConfigDict] = None,
                        rescale: bool = False) -> List[InstanceData]:
        """Detections per image: ``InstanceData(bboxes (k, 4), scores (k,), labels (k,))``.

        Inputs are per image: ``rois (n, 5)`` (image index, box), ``cls_scores
        (n, C + 1)``, ``bbox_preds (n, 4C | 4)`` or None. Without ``rcnn_test_cfg``
        (test-time augmentation merges later) every box is returned: ``bboxes
        (n, 4C | 4)``, ``scores (n, C + 1)``, no labels.
        """
        if len(cls_scores) != len(bbox_preds):
            raise ValueError(f'{len(cls_scores)} cls_scores but {len(bbox_preds)} bbox_preds')
        return [self._predict_single(roi, cls_score, bbox_pred, img_meta, rcnn_test_cfg, rescale)
                for roi, cls_score, bbox_pred, img_meta
                in zip(rois, cls_scores, bbox_preds, batch_img_metas)]

    def _predict_single(self, roi: Tensor, cls_score: Tensor, bbox_pred: Optional[Tensor],
                        img_meta: dict, rcnn_test_cfg: Optional[ConfigDict],
                        rescale: bool) -> InstanceData:
        """One image of :meth:`predict_by_feat`."""
        results = InstanceData()
        if roi.size(0) == 0:
            results.bboxes = roi.new_zeros((0, 4))
            results.scores = roi.new_zeros((0, self.num_classes + 1) if rcnn_test_cfg is None
                                           else (0,))
            results.labels = roi.new_zeros((0,), dtype=torch.long)
            return results

        if self.custom_cls_channels:
            scores = self.loss_cls.get_activation(cls_score)
        else:
            scores = F.softmax(cls_score, dim=-1) if cls_score is not None else None
        if rcnn_test_cfg is None:
            # (n, 4C): every class's deltas applied to its RoI in one call.
            results.bboxes = self._decode(roi[:, 1:], bbox_pred, img_meta, rescale)
            results.scores = scores
            return results

        # Every (RoI, foreground class) pair is a candidate box with that class's
        # score, enumerated RoI-major, class-minor (so NMS's stable sort breaks
        # score ties as mmdet does). Only the few percent above score_thr are
        # decoded: a box's decoding does not depend on the others.
        num_classes = scores.size(1) - 1
        fg_scores = scores[:, :-1].reshape(-1)
        candidates = (fg_scores > rcnn_test_cfg['score_thr']).nonzero().squeeze(1)
        roi_inds = torch.div(candidates, num_classes, rounding_mode='floor')
        labels = candidates % num_classes
        if bbox_pred is not None:
            bbox_pred = (bbox_pred[roi_inds] if self.reg_class_agnostic else
                         bbox_pred.reshape(-1, self.bbox_coder.encode_size)[candidates])
        bboxes = self._decode(roi[roi_inds, 1:], bbox_pred, img_meta, rescale)
        fg_scores = fg_scores[candidates]
        if candidates.numel():
            # One NMS for all classes: batched_nms keeps the classes apart.
            dets, keep = batched_nms(bboxes, fg_scores, labels, rcnn_test_cfg['nms'])
            max_num = rcnn_test_cfg['max_per_img']
            if max_num > 0:
                dets, keep = dets[:max_num], keep[:max_num]
            bboxes, fg_scores, labels = dets[:, :-1], dets[:, -1], labels[keep]
        results.bboxes, results.scores, results.labels = bboxes, fg_scores, labels
        return results

    def _decode(self, priors: Tensor, deltas: Optional[Tensor], img_meta: dict,
                rescale: bool) -> Tensor:
        """Boxes ``(m, 4k)`` from ``priors (m, 4)`` and ``deltas (m, 4k)``, clipped to
        the image, in the original image's pixels with ``rescale``."""
        if deltas is not None:
            bboxes = get_box_tensor(self.bbox_coder.decode(
                priors, deltas, max_shape=img_meta['img_shape']))
        else:
            # mmdet tries to clip here, but its clamp_ acts on an indexing copy,
            # so its RoIs come back unclipped; kept so for identical results.
            bboxes = priors.clone()
        if rescale and bboxes.size(0):
            bboxes = rescale_boxes(bboxes, img_meta['scale_factor'])
        return bboxes
