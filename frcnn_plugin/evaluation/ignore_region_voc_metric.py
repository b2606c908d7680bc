"""VOC mAP that does not count detections inside ignore regions (KITTI's DontCare).

mmdet's :class:`~mmdet.evaluation.VOCMetric` (``eval_map``) ignores a detection only
when its best IoU match, at ``iou_thr`` or more, is an ignored gt *of the detection's
class* (``labels_ignore == class``: VOC's difficult boxes). KittiTiny's ignore regions
(DontCare, Van, Truck, ...) have no class (label ``-1``), so they never match, and a
detection on a DontCare area counts as a false positive.

KITTI's devkit (``evaluate_object.cpp``, ``computeStatistics``) does otherwise: after
matching detections to the ground truth, a detection left unmatched (a would-be false
positive) whose intersection with a DontCare area exceeds a threshold *of the
detection's own area* is not counted at all. :class:`IgnoreRegionVOCMetric` does that on
top of ``VOCMetric``:

1. an ignore region without a class (label ``-1``) is an ignore region of every class;
2. each class is matched as ``eval_map`` does (``tpfp_default``, ignored gts included);
3. a detection still counted as a false positive is dropped (neither TP nor FP) when
   more than ``ignore_iof_thr`` of its area lies inside one ignore region of its class.

Detections matched to a real gt stay true positives, even inside an ignore region.
Deviations from the devkit: one ``ignore_iof_thr`` for every class (the devkit uses the
class's match threshold: 0.7 for Car, 0.5 for Pedestrian and Cyclist); every ignore
region counts for every class, whatever its KITTI type (the devkit ignores DontCare areas
for all classes, but a Van only for Car, and counts a Car detection on a Truck as a
false positive); the devkit's difficulty levels (minimum height, occlusion, truncation)
are not applied.
"""
from collections import OrderedDict
from functools import partial
from typing import List, Optional, Sequence

import numpy as np
from mmdet.evaluation import VOCMetric, bbox_overlaps, eval_map
from mmdet.evaluation.functional.mean_ap import tpfp_default
from mmdet.registry import METRICS
from mmengine.logging import MMLogger


def tpfp_ignoring_regions(det_bboxes: np.ndarray,
                          gt_bboxes: np.ndarray,
                          gt_bboxes_ignore: np.ndarray,
                          iou_thr: float = 0.5,
                          area_ranges: Optional[List[tuple]] = None,
                          use_legacy_coordinate: bool = False,
                          ignore_iof_thr: float = 0.5,
                          **kwargs) -> tuple:
    """``eval_map``'s ``tpfp_default`` for one image and class, then every false
    positive with more than ``ignore_iof_thr`` of its area inside one of
    ``gt_bboxes_ignore`` is not counted.

    Shapes: ``det_bboxes (m, 5)`` (box, score), ``gt_bboxes (n, 4)``,
    ``gt_bboxes_ignore (k, 4)``. Returns ``tp, fp``, each ``(num_scales, m)`` of 0 / 1,
    as ``tpfp_default``. ``kwargs``: what ``eval_map`` passes other tpfp functions
    (group-of boxes), unused.
    """
    tp, fp = tpfp_default(det_bboxes, gt_bboxes, gt_bboxes_ignore, iou_thr, area_ranges,
                          use_legacy_coordinate)
    if len(det_bboxes) and len(gt_bboxes_ignore):
        # Intersection over the detection's area (bbox_overlaps' 'iof': over bboxes1).
        iof = bbox_overlaps(det_bboxes[:, :4], gt_bboxes_ignore, mode='iof',
                            use_legacy_coordinate=use_legacy_coordinate)  # [m, k]
        inside = iof.max(axis=1) > ignore_iof_thr  # [m]
        fp[:, inside] = 0
    return tp, fp


@METRICS.register_module()
class IgnoreRegionVOCMetric(VOCMetric):
    """:class:`~mmdet.evaluation.VOCMetric` (``metric='mAP'``) that does not count a
    false positive lying mostly inside an ignore region, as KITTI's devkit does with
    its DontCare areas (see the module docstring for the rule and its deviations).

    Args:
        ignore_iof_thr (float): a would-be false positive with more than this part of
            its area inside one ignore region is not counted. Default: 0.5.
        Everything else as :class:`~mmdet.evaluation.VOCMetric`. ``metric='recall'``
        is ``VOCMetric``'s (proposal recall has no false positives).
    """

    def __init__(self, *args, ignore_iof_thr: float = 0.5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ignore_iof_thr = ignore_iof_thr

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """As ``VOCMetric.process``, with each class-less ignore region (label ``-1``)
        repeated once per class, so that ``eval_map`` hands it to every class."""
        start = len(self.results)
        super().process(data_batch, data_samples)
        num_classes = len(self.dataset_meta['classes'])
        for ann, _ in self.results[start:]:
            labels, bboxes = ann['labels_ignore'], ann['bboxes_ignore']
            classless = labels < 0
            ann['labels_ignore'] = np.concatenate(
                [labels[~classless], np.repeat(np.arange(num_classes), classless.sum())])
            ann['bboxes_ignore'] = np.concatenate(
                [bboxes[~classless], np.tile(bboxes[classless], (num_classes, 1))])

    def compute_metrics(self, results: list) -> dict:
        """``AP50``-style keys and ``mAP`` as ``VOCMetric``, with the tpfp rule above."""
        if self.metric != 'mAP':
            return super().compute_metrics(results)
        logger: MMLogger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        tpfp_fn = partial(tpfp_ignoring_regions, ignore_iof_thr=self.ignore_iof_thr)
        eval_results = OrderedDict()
        mean_aps = []
        for iou_thr in self.iou_thrs:
            logger.info(f'\n{"-" * 15}iou_thr: {iou_thr}, detections inside ignore '
                        f'regions (iof > {self.ignore_iof_thr}) not counted{"-" * 15}')
            # VOCMetric's call (VOC's legacy +1 box sizes), with our tpfp function.
            mean_ap, _ = eval_map(preds, gts, scale_ranges=self.scale_ranges,
                                  iou_thr=iou_thr, dataset=self.dataset_meta['classes'],
                                  logger=logger, tpfp_fn=tpfp_fn, eval_mode=self.eval_mode,
                                  use_legacy_coordinate=True)
            mean_aps.append(mean_ap)
            eval_results[f'AP{int(iou_thr * 100):02d}'] = round(mean_ap, 3)
        eval_results['mAP'] = sum(mean_aps) / len(mean_aps)
        eval_results.move_to_end('mAP', last=False)
        return eval_results
