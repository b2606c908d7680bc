"""Where each missed object is lost: every gt of a dataset split followed through the
detector's stages, the first stage that loses it named.

For a gt box ``g`` of class ``c`` (ignore regions, e.g. VOC's ``difficult`` and
COCO's ``iscrowd`` boxes, are left out) with ``IOU_THR = 0.5`` and the user's score
threshold ``thr`` (boxes must score *above* it, as ``tools/infer.py`` draws them):

``detected``
    a final detection (``model.predict``, ``test_cfg.rcnn``) of class ``c`` with
    IoU >= 0.5 with ``g`` scores above ``thr``.

Otherwise the first of these, checked in this order, is where ``g`` is lost:

``no_positive_anchor``
    the RPN's assigner (``train_cfg.rpn``: ``pos_iou_thr``, ``min_pos_iou`` with
    ``match_low_quality``, ``allowed_border``) gives ``g`` no positive anchor: the RPN
    is never trained to propose it.
``not_in_proposals``
    no RPN proposal (``test_cfg.rpn``, after NMS, the ones the R-CNN head gets) has
    IoU >= 0.5 with ``g``.
``suppressed``
    before NMS, a box of class ``c`` (a proposal moved by its class-``c`` deltas) with
    IoU >= 0.5 with ``g`` scored above ``thr`` (and above ``test_cfg.rcnn.score_thr``),
    but no such detection is left: per-class NMS or ``max_per_img`` removed it.
``misclassified``
    no box of class ``c`` covering ``g`` (IoU >= 0.5) scored above ``thr``, while a
    box of another class covering ``g`` did.
``below_score_thr``
    a proposal covers ``g``, but no box of any class covering ``g`` scored above
    ``thr`` (including a class-``c`` score above ``thr`` whose regressed box no
    longer covers ``g``).

Every gt is counted once: ``detected + sum(lost_at) == num_gt``.

Anchor coverage uses each gt's best IoU with the anchors the RPN trains on (valid and
inside the image grown by ``allowed_border``), and sizes as COCO does: the gt's area in
the original image's pixels, small < 32², medium < 96², large otherwise.
"""
import copy
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import get_box_tensor
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from ..boxes import box_area, box_overlaps
from ..utils.dataset_wrappers import leaves
from ..utils.pipelines import annotated_pipeline
from .stages import best_anchor_ious, gts_with_positive_anchor, image_anchors, rcnn_outputs

IOU_THR = 0.5
STAGES = ('no_positive_anchor', 'not_in_proposals', 'misclassified', 'suppressed',
          'below_score_thr')
SIZES = (('small', 0, 32 ** 2), ('medium', 32 ** 2, 96 ** 2), ('large', 96 ** 2, float('inf')))
RECALL_IOUS = (0.5, 0.7)
#: The proposal rank of a gt no proposal covers.
NOT_COVERED = 2 ** 62


# ------------------------------------------------------------ one image, one stage each
def covers(boxes: Tensor, gt_boxes: Tensor, iou_thr: float = IOU_THR) -> Tensor:
    """``(P, 4), (G, 4) -> (P, G)`` bool: IoU >= ``iou_thr``."""
    return box_overlaps(boxes, gt_boxes) >= iou_thr


def detected(detections: InstanceData, gt_boxes: Tensor, gt_labels: Tensor,
             score_thr: float) -> Tensor:
    """``(G,)``: a final detection of the gt's class covers it, scoring above ``score_thr``."""
    hits = covers(detections.bboxes, gt_boxes)
    hits &= detections.labels[:, None] == gt_labels[None, :]
    hits &= (detections.scores > score_thr)[:, None]
    return hits.any(dim=0)


def in_proposals(proposals: Tensor, gt_boxes: Tensor) -> Tensor:
    """``(G,)``: some proposal covers the gt."""
    return covers(proposals, gt_boxes).any(dim=0)


def class_boxes_above(candidates: InstanceData, gt_boxes: Tensor, score_thr: float) -> Tensor:
    """``(G, C)``: a pre-NMS box of class ``k`` covering the gt scores above ``score_thr``."""
    num_classes = candidates.scores.size(1) - 1
    above = []
    for k in range(num_classes):
        hits = covers(candidates.bboxes[:, k], gt_boxes)
        above.append((hits & (candidates.scores[:, k] > score_thr)[:, None]).any(dim=0))
    if not above:
        return torch.zeros(gt_boxes.size(0), 0, dtype=torch.bool)
    return torch.stack(above, dim=1)


def lost_stages(gt_labels: Tensor, is_detected: Tensor, has_positive_anchor: Tensor,
                is_in_proposals: Tensor, above: Tensor) -> List[str]:
    """The outcome of each gt: ``'detected'`` or the first stage that loses it
    (see the module docstring). ``above (G, C)`` from :func:`class_boxes_above`."""
    outcomes = []
    for g, label in enumerate(gt_labels.tolist()):
        others = above[g].clone()
        right = bool(others[label]) if others.numel() else False
        if others.numel():
            others[label] = False
        if is_detected[g]:
            outcomes.append('detected')
        elif not has_positive_anchor[g]:
            outcomes.append('no_positive_anchor')
        elif not is_in_proposals[g]:
            outcomes.append('not_in_proposals')
        elif right:
            outcomes.append('suppressed')
        elif others.any():
            outcomes.append('misclassified')
        else:
            outcomes.append('below_score_thr')
    return outcomes


def proposal_ranks(proposals: Tensor, gt_boxes: Tensor, iou_thr: float) -> Tensor:
    """``(G,)`` long: the rank (0 = best score) of the first proposal covering the gt at
    ``iou_thr``; ``NOT_COVERED`` if none does. Proposals come best first."""
    hits = covers(proposals, gt_boxes, iou_thr)  # (P, G)
    none = torch.full((gt_boxes.size(0),), NOT_COVERED, dtype=torch.long)
    if proposals.size(0) == 0:
        return none
    first = hits.int().argmax(dim=0)  # first True (argmax returns the first maximum)
    return torch.where(hits.any(dim=0), first, none)


def confusion_pairs(detections: InstanceData, gt_boxes: Tensor, gt_labels: Tensor,
                    score_thr: float) -> List[tuple]:
    """``(gt class, detected class)`` of each detection above ``score_thr`` matched to the
    gt it overlaps most (IoU >= 0.5, any class)."""
    keep = detections.scores > score_thr
    if not keep.any() or gt_boxes.size(0) == 0:
        return []
    ious = box_overlaps(detections.bboxes[keep], gt_boxes)  # (D, G)
    best, which = ious.max(dim=1)
    matched = best >= IOU_THR
    return list(zip(gt_labels[which[matched]].tolist(),
                    detections.labels[keep][matched].tolist()))


def size_name(area: float) -> str:
    return next(name for name, low, high in SIZES if low <= area < high)


# ----------------------------------------------------------- running the detector
@dataclass
class ImageRecord:
    """What the detector did with the gts of one image (boxes in the resized image)."""
    gt_boxes: Tensor                 # (G, 4)
    gt_labels: Tensor                # (G,)
    original_areas: Tensor           # (G,) in the original image's pixels
    best_anchor_iou: Tensor          # (G,)
    has_positive_anchor: Tensor      # (G,) bool
    outcomes: List[str]              # (G,) 'detected' or a stage of STAGES
    ranks: Dict[float, Tensor]       # IoU -> (G,) rank of the first covering proposal
    num_proposals: int
    confusion: List[tuple]           # (gt class, detected class) of matched detections
    num_ignored: int
    # For re-assigning with other anchors (anchor suggestions):
    featmap_sizes: list = field(default_factory=list)
    img_meta: dict = field(default_factory=dict)
    ignored: Optional[InstanceData] = None


def boxes_of(instances: InstanceData) -> InstanceData:
    """Plain tensors (the pipeline packs ``HorizontalBoxes``), float32 boxes, long labels."""
    return InstanceData(bboxes=get_box_tensor(instances.bboxes).float().reshape(-1, 4),
                        labels=instances.labels.long())


@torch.no_grad()
def image_record(model, data: dict, allowed_border: float, score_thr: float) -> ImageRecord:
    """Run ``model`` (eval mode) stage by stage on one dataset item (``inputs``,
    ``data_samples`` with gt in the resized image, see ``annotated_pipeline``)."""
    batch = model.data_preprocessor(dict(inputs=[data['inputs']],
                                         data_samples=[data['data_samples']]), False)
    inputs, data_samples = batch['inputs'], batch['data_samples']
    sample = data_samples[0]
    img_meta = sample.metainfo
    gt = boxes_of(sample.gt_instances)
    ignored = boxes_of(sample.ignored_instances) if 'ignored_instances' in sample else None
    rpn_head = model.rpn_head

    feats = model.extract_feat(inputs)
    featmap_sizes = [tuple(f.shape[-2:]) for f in feats]
    per_level, inside = image_anchors(rpn_head.prior_generator, featmap_sizes, img_meta,
                                      allowed_border, inputs.device)
    anchors = torch.cat(per_level)[inside]
    best, _ = best_anchor_ious(rpn_head.assigner.iou_calculator, gt.bboxes, anchors)
    has_positive = gts_with_positive_anchor(rpn_head.assigner, anchors, gt, ignored)

    proposals = rpn_head.predict(feats, data_samples, rescale=False)[0]
    candidates, detections = rcnn_outputs(model.roi_head, feats, proposals.bboxes, img_meta,
                                          model.roi_head.test_cfg)
    rcnn_thr = max(score_thr, model.test_cfg.rcnn.get('score_thr', 0.0))

    outcomes = lost_stages(gt.labels, detected(detections, gt.bboxes, gt.labels, score_thr),
                           has_positive, in_proposals(proposals.bboxes, gt.bboxes),
                           class_boxes_above(candidates, gt.bboxes, rcnn_thr))
    sx, sy = img_meta['scale_factor']
    return ImageRecord(
        gt_boxes=gt.bboxes, gt_labels=gt.labels, original_areas=box_area(gt.bboxes) / (sx * sy),
        best_anchor_iou=best, has_positive_anchor=has_positive, outcomes=outcomes,
        ranks={t: proposal_ranks(proposals.bboxes, gt.bboxes, t) for t in RECALL_IOUS},
        num_proposals=len(proposals),
        confusion=confusion_pairs(detections, gt.bboxes, gt.labels, score_thr),
        num_ignored=0 if ignored is None else len(ignored),
        featmap_sizes=featmap_sizes,
        img_meta=dict(img_shape=img_meta['img_shape'], pad_shape=img_meta['pad_shape']),
        ignored=ignored)


# -------------------------------------------------------------- the whole split
def outcome_counts(records: Sequence[ImageRecord], class_names: Sequence[str]) -> dict:
    """``num_gt``, ``detected``, ``lost_at`` and the same ``per_class``."""
    def counts(outcomes):
        tally = Counter(outcomes)
        return dict(num_gt=len(outcomes), detected=tally['detected'],
                    lost_at={stage: tally[stage] for stage in STAGES})
    everything = [o for r in records for o in r.outcomes]
    per_class = {name: counts([o for r in records for o, label in zip(r.outcomes,
                                                                       r.gt_labels.tolist())
                               if label == k])
                 for k, name in enumerate(class_names)}
    return dict(counts(everything), per_class=per_class)


def anchor_coverage(records: Sequence[ImageRecord]) -> dict:
    """Best anchor IoU and the share of gts without a positive anchor, by gt size."""
    best = torch.cat([r.best_anchor_iou for r in records]) if records else torch.zeros(0)
    positive = torch.cat([r.has_positive_anchor for r in records]) if records else \
        torch.zeros(0, dtype=torch.bool)
    areas = torch.cat([r.original_areas for r in records]) if records else torch.zeros(0)
    names = [size_name(a) for a in areas.tolist()]
    by_size = {}
    for name, _, _ in SIZES:
        mask = torch.tensor([n == name for n in names], dtype=torch.bool)
        by_size[name] = dict(
            num_gt=int(mask.sum()),
            mean_best_iou=round(float(best[mask].mean()), 4) if mask.any() else None,
            no_positive_anchor=int((~positive[mask]).sum()))
    return dict(num_gt=len(best), no_positive_anchor=int((~positive).sum()),
                no_positive_anchor_share=round(float((~positive).float().mean()), 4)
                if len(best) else 0.0,
                mean_best_iou=round(float(best.mean()), 4) if len(best) else None,
                by_size=by_size, best_ious=[round(v, 4) for v in best.tolist()],
                sizes=names)


def recall_curve(records: Sequence[ImageRecord]) -> dict:
    """RPN recall at IoU 0.5 and 0.7 against the number of proposals kept per image."""
    most = max((r.num_proposals for r in records), default=0)
    steps = [k for k in (1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 1000, 2000) if k < most]
    steps.append(most)
    curve = dict(num_proposals=steps)
    for t in RECALL_IOUS:
        ranks = torch.cat([r.ranks[t] for r in records]) if records else torch.zeros(0)
        curve[f'iou_{t}'] = [round(float((ranks < k).float().mean()), 4) if len(ranks) else 0.0
                             for k in steps]
    return curve


def confusion_matrix(records: Sequence[ImageRecord], num_classes: int) -> List[List[int]]:
    """Rows: the gt's class; columns: the matched detection's class (diagonal correct)."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for record in records:
        for gt_class, det_class in record.confusion:
            matrix[gt_class][det_class] += 1
    return matrix


# ----------------------------------------------------------- anchor suggestions
def uncovered_count(anchor_generator, assigner, records: Sequence[ImageRecord],
                    allowed_border: float) -> int:
    """Gts of ``records`` without a positive anchor under ``anchor_generator``."""
    missing = 0
    for record in records:
        per_level, inside = image_anchors(anchor_generator, record.featmap_sizes,
                                          record.img_meta, allowed_border)
        gt = InstanceData(bboxes=record.gt_boxes, labels=record.gt_labels)
        missing += int((~gts_with_positive_anchor(assigner, torch.cat(per_level)[inside], gt,
                                                  record.ignored)).sum())
    return missing


def suggest_anchors(anchor_cfg: dict, assigner, records: Sequence[ImageRecord],
                    allowed_border: float, max_steps: int = 2) -> Optional[dict]:
    """Anchor scales / ratios that would give more gts a positive anchor: greedily, up
    to ``max_steps`` times, the one added scale (x 1/2, 1/sqrt2, sqrt2, 2 of a present
    one) or ratio (x 1/2, 2) that leaves the fewest gts uncovered, with that share.

    Evaluated on the images that have uncovered gts (adding anchors does not take a
    positive anchor from a covered gt elsewhere). ``None`` if every gt is covered.
    ``records``: :class:`ImageRecord` or any record with their ``gt_boxes``,
    ``gt_labels``, ``ignored``, ``featmap_sizes``, ``img_meta`` and
    ``has_positive_anchor`` (``tools/check_dataset.py``'s
    :class:`.anchor_fit.ResizedImage`).
    """
    total = sum(len(r.gt_labels) for r in records)
    hard = [r for r in records if not r.has_positive_anchor.all()]
    if not hard:
        return None
    base = TASK_UTILS.build(anchor_cfg)
    scales = [round(float(s), 4) for s in base.scales]
    ratios = [round(float(r), 4) for r in base.ratios]
    cfg = {k: v for k, v in anchor_cfg.items() if k not in ('octave_base_scale',
                                                             'scales_per_octave')}
    others = sum(int((~r.has_positive_anchor).sum()) for r in records) - sum(
        int((~r.has_positive_anchor).sum()) for r in hard)
    missing = uncovered_count(base, assigner, hard, allowed_border)
    steps = []
    for _ in range(max_steps):
        options = [('scale', round(s * f, 4)) for s in scales
                   for f in (0.5, 2 ** -0.5, 2 ** 0.5, 2)]
        options += [('ratio', round(r * f, 4)) for r in ratios for f in (0.5, 2)]
        options = sorted({o for o in options if o[1] not in (scales if o[0] == 'scale'
                                                               else ratios)})
        best = None
        for kind, value in options:
            trial_scales = sorted(scales + [value]) if kind == 'scale' else scales
            trial_ratios = sorted(ratios + [value]) if kind == 'ratio' else ratios
            generator = TASK_UTILS.build(dict(cfg, scales=trial_scales, ratios=trial_ratios))
            count = uncovered_count(generator, assigner, hard, allowed_border)
            if best is None or count < best[0]:
                best = (count, kind, value, trial_scales, trial_ratios)
        if best is None or best[0] >= missing:
            break
        missing, kind, value, scales, ratios = best
        steps.append(dict(add=f'{kind} {value}', scales=scales, ratios=ratios,
                          no_positive_anchor=missing + others,
                          no_positive_anchor_share=round((missing + others) / total, 4)))
    return dict(steps=steps, evaluated_images=len(hard)) if steps else None


# ------------------------------------------------------------------ the whole run
def split_dataset_cfg(cfg, split: str):
    """The ``{split}_dataloader`` dataset of ``cfg``, each image once, through the test
    pipeline with its annotations loaded before ``Resize`` (``annotated_pipeline``).

    Each image once: the wrappers that repeat or resample (``RepeatDataset``,
    ``ClassBalancedDataset``) are left out; several datasets become one
    ``ConcatDataset`` of them (the config's own, when it is the outermost wrapper)."""
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        raise ValueError(f'the config has no {split}_dataloader')
    pipeline = annotated_pipeline(cfg)
    dataset = copy.deepcopy(loader.dataset)
    datasets = leaves(dataset)
    for leaf in datasets:
        leaf.pipeline = pipeline
        leaf.test_mode = True  # no filtering of images without gt
    if len(datasets) == 1:
        return datasets[0]
    if dataset.get('datasets') is None:
        dataset = ConfigDict(type='ConcatDataset')
    dataset.datasets = datasets
    return dataset


def diagnose(model, dataset, score_thr: float, progress=None) -> tuple:
    """Every gt of ``dataset`` through ``model``: ``(diagnosis dict, records)``.

    ``diagnosis`` has the keys of ``diagnosis.json`` (see ``tools/diagnose.py``);
    ``progress.update()`` is called after each image.
    """
    rpn_train_cfg = model.rpn_head.train_cfg
    if not rpn_train_cfg or 'assigner' not in rpn_train_cfg:
        raise ValueError('the model has no train_cfg.rpn.assigner: the anchor stage needs it')
    allowed_border = rpn_train_cfg.get('allowed_border', -1)
    class_names = dataset.metainfo['classes']
    records = []
    for index in range(len(dataset)):
        records.append(image_record(model, dataset[index], allowed_border, score_thr))
        if progress is not None:
            progress.update()
    diagnosis = dict(
        outcome_counts(records, class_names),
        num_images=len(records),
        ignored_gt_excluded=sum(r.num_ignored for r in records),
        score_thr=score_thr,
        iou_thr=IOU_THR,
        stage_order=['detected'] + [STAGES[i] for i in (0, 1, 3, 2, 4)],
        anchor_coverage=anchor_coverage(records),
        rpn_recall=recall_curve(records),
        confusion=dict(classes=list(class_names),
                       matrix=confusion_matrix(records, len(class_names))))
    if diagnosis['detected'] + sum(diagnosis['lost_at'].values()) != diagnosis['num_gt']:
        raise RuntimeError(f'outcomes do not add up to num_gt: {diagnosis}')
    return diagnosis, records
