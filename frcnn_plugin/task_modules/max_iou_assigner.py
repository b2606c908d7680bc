"""The anchor target and proposal target layers' labelling of every prior by IoU (the
Korean walkthrough, '3. Anchor Target Layer' and '6. Proposal Target Layer';
docs/references.md).

The step-by-step PyTorch tutorial labels anchors for the RPN with ``pos 0.7 / neg 0.3`` plus "the
anchor(s) with the highest IoU for each gt box", and proposals for the R-CNN head
with ``pos 0.5 / neg [0.1 or 0, 0.5)``. Both are this one assigner with different
thresholds (mmdet's ``rpn.assigner`` / ``rcnn.assigner``).
"""
from numbers import Real
from typing import Optional, Tuple, Union

import torch
from mmdet.models.task_modules import AssignResult, BaseAssigner
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData
from torch import Tensor

# Registers the default IoU calculator, so building this assigner needs no other import.
from .iou_calculator import ScratchBboxOverlaps2D  # noqa: F401


@TASK_UTILS.register_module()
class ScratchMaxIoUAssigner(BaseAssigner):
    """Give each prior (anchor or proposal) a gt index by IoU; drop-in for mmdet's
    ``MaxIoUAssigner``.

    Shapes: priors ``(n, 4)`` (or ``(n, 5)`` with a score, which the IoU calculator
    drops), gt boxes ``(k, 4)``, gt labels ``(k,)``; ``overlaps = iou(gt, priors)`` is
    ``(k, n)``. The result holds, per prior, ``gt_inds (n,)`` long (``-1`` ignored,
    ``0`` background, ``i + 1`` matched to gt ``i``), ``max_overlaps (n,)`` (best IoU
    over the gts) and ``labels (n,)`` long (the matched gt's label, else ``-1``)::

        best_iou[j], best_gt[j] = max_i overlaps[i, j]
        gt_inds[j] = -1
        gt_inds[j] = 0               if lo <= best_iou[j] < hi      (lo = 0 for a float neg_iou_thr)
        gt_inds[j] = best_gt[j] + 1  if best_iou[j] >= pos_iou_thr
        # low-quality matches (the tutorials' "best anchor for each gt"), if match_low_quality:
        gt_inds[j] = i + 1           if overlaps[i, j] == max_j' overlaps[i, j'] >= min_pos_iou
                                     (only the first such j when not gt_max_assign_all;
                                      the largest such i when several gts pick the same j)

    Priors whose IoF with an ignore box exceeds ``ignore_iof_thr`` get IoU ``-1`` with
    every gt first, which keeps them out of the negatives (they stay ``-1``).

    Args:
        pos_iou_thr (float): IoU at or above which a prior is positive.
        neg_iou_thr (float | tuple[float, float]): ``thr`` means negatives in
            ``[0, thr)``, ``(lo, hi)`` means ``[lo, hi)``.
        min_pos_iou (float): smallest IoU a low-quality match may have.
        gt_max_assign_all (bool): give a gt every prior tied at its best IoU, not
            only the first one.
        ignore_iof_thr (float): IoF above which a prior is ignored; ``<= 0`` never.
        ignore_wrt_candidates (bool): IoF over the prior's area (``True``) or over
            the ignore box's area (``False``).
        match_low_quality (bool): add the low-quality matches (RPN: yes, R-CNN: no).
        gpu_assign_thr (float): assign on the CPU when there are more gts than
            this (to spare GPU memory); ``<= 0`` never. Results go back to the
            priors' device.
        iou_calculator (dict): config of a registered IoU calculator.
        perm_repeat_gt_cfg (dict, optional): accepted for mmdet's signature; only
            ``None`` is supported (see ``__init__``).
    """

    def __init__(self,
                 pos_iou_thr: float,
                 neg_iou_thr: Union[float, Tuple[float, float]],
                 min_pos_iou: float = .0,
                 gt_max_assign_all: bool = True,
                 ignore_iof_thr: float = -1,
                 ignore_wrt_candidates: bool = True,
                 match_low_quality: bool = True,
                 gpu_assign_thr: float = -1,
                 iou_calculator: dict = dict(type='ScratchBboxOverlaps2D'),
                 perm_repeat_gt_cfg: Optional[dict] = None):
        if isinstance(neg_iou_thr, Real):
            neg_range = (0., float(neg_iou_thr))
        elif isinstance(neg_iou_thr, (tuple, list)) and len(neg_iou_thr) == 2:
            neg_range = (float(neg_iou_thr[0]), float(neg_iou_thr[1]))
        else:
            raise ValueError(f'neg_iou_thr must be a float or a (lo, hi) pair, got {neg_iou_thr!r}')
        if perm_repeat_gt_cfg is not None:
            # mmdet jitters duplicated gt boxes with random noise (for DETR-like
            # heads); no Faster R-CNN config uses it, and random jitter has no
            # exact parity to keep, so it is refused rather than half-supported.
            raise NotImplementedError(
                'perm_repeat_gt_cfg is not supported by ScratchMaxIoUAssigner')
        self.pos_iou_thr = pos_iou_thr
        self.neg_iou_thr = neg_iou_thr
        self.min_pos_iou = min_pos_iou
        self.gt_max_assign_all = gt_max_assign_all
        self.ignore_iof_thr = ignore_iof_thr
        self.ignore_wrt_candidates = ignore_wrt_candidates
        self.match_low_quality = match_low_quality
        self.gpu_assign_thr = gpu_assign_thr
        self.iou_calculator = TASK_UTILS.build(iou_calculator)
        self.perm_repeat_gt_cfg = perm_repeat_gt_cfg
        self._neg_range = neg_range

    def assign(self,
               pred_instances: InstanceData,
               gt_instances: InstanceData,
               gt_instances_ignore: Optional[InstanceData] = None,
               **kwargs) -> AssignResult:
        """Assign ``pred_instances.priors`` to ``gt_instances.bboxes`` / ``.labels``.

        ``gt_instances_ignore.bboxes`` (optional) are regions whose priors are
        ignored (see ``ignore_iof_thr``). Labels may be absent only without gts.
        """
        priors = pred_instances.priors
        gt_bboxes = gt_instances.bboxes
        gt_labels = gt_instances.get('labels')
        ignore_bboxes = None if gt_instances_ignore is None else gt_instances_ignore.bboxes

        # Many gts make the (k, n) overlaps big: do that work on the CPU instead.
        device = priors.device
        on_cpu = 0 < self.gpu_assign_thr < gt_bboxes.shape[0]
        if on_cpu:
            priors, gt_bboxes = priors.cpu(), gt_bboxes.cpu()
            gt_labels = None if gt_labels is None else gt_labels.cpu()
            ignore_bboxes = None if ignore_bboxes is None else ignore_bboxes.cpu()

        overlaps = self.iou_calculator(gt_bboxes, priors)
        if (self.ignore_iof_thr > 0 and ignore_bboxes is not None
                and ignore_bboxes.numel() > 0 and priors.numel() > 0):
            if self.ignore_wrt_candidates:  # intersection over the prior's area
                iof = self.iou_calculator(priors, ignore_bboxes, mode='iof').amax(dim=1)
            else:  # intersection over the ignore box's area
                iof = self.iou_calculator(ignore_bboxes, priors, mode='iof').amax(dim=0)
            # IoU -1 with every gt: below any negative range, never positive.
            overlaps.masked_fill_(iof > self.ignore_iof_thr, -1)

        result = self.assign_wrt_overlaps(overlaps, gt_labels)
        if on_cpu:
            result.gt_inds = result.gt_inds.to(device)
            result.max_overlaps = result.max_overlaps.to(device)
            result.labels = result.labels.to(device)
        return result

    def assign_wrt_overlaps(self, overlaps: Tensor, gt_labels: Optional[Tensor]) -> AssignResult:
        """Assign from precomputed ``overlaps (k, n)`` (gts x priors) and ``gt_labels (k,)``.

        ``overlaps`` is not modified.
        """
        num_gts, num_priors = overlaps.shape
        if num_gts == 0 or num_priors == 0:
            # Without gts every prior is background; without priors there is nothing.
            background = 0 if num_gts == 0 else -1
            return AssignResult(
                num_gts=num_gts,
                gt_inds=overlaps.new_full((num_priors,), background, dtype=torch.long),
                max_overlaps=overlaps.new_zeros((num_priors,)),
                labels=overlaps.new_full((num_priors,), -1, dtype=torch.long))
        if gt_labels is None:
            raise ValueError('gt labels are needed to assign priors to gts')

        # Only the values over the whole (k, n) matrix: the argmax is needed just for
        # the few positive columns (a values-only reduction is several times faster).
        max_overlaps = overlaps.amax(dim=0)
        lo, hi = self._neg_range
        negative = (max_overlaps >= lo) & (max_overlaps < hi)
        gt_inds = negative.long() - 1  # 0 negative, -1 neither (yet)
        pos_idx = (max_overlaps >= self.pos_iou_thr).nonzero(as_tuple=True)[0]
        # argmax keeps the first (lowest-index) gt on ties, as the oracle's max does.
        gt_inds[pos_idx] = overlaps[:, pos_idx].argmax(dim=0) + 1
        if self.match_low_quality:
            self._add_low_quality_matches(overlaps, max_overlaps, gt_inds)

        positive = gt_inds > 0
        labels = torch.where(positive, gt_labels.long()[(gt_inds - 1).clamp_(min=0)], -1)
        return AssignResult(num_gts=num_gts, gt_inds=gt_inds, max_overlaps=max_overlaps,
                            labels=labels)

    def _add_low_quality_matches(self, overlaps: Tensor, max_overlaps: Tensor,
                                 gt_inds: Tensor) -> None:
        """Give each gt its best prior(s), overwriting ``gt_inds`` in place.

        This can demote a prior's best gt (found in the positive step) in favour of a
        gt for which that prior is the best available: every gt gets at least one
        prior, which is what the RPN needs for small or oddly shaped objects. When
        several gts claim one prior, the gt with the largest index wins, as in
        mmdet (its loop over gts overwrites in index order); one ``amax`` scatter
        gives the same answer without the loop.
        """
        if not self.gt_max_assign_all:  # only the first prior at the gt's best IoU
            gt_best_iou, gt_best_prior = overlaps.max(dim=1)  # max keeps the first
            gt_idx = (gt_best_iou >= self.min_pos_iou).nonzero(as_tuple=True)[0]
            prior_idx = gt_best_prior[gt_idx]
        else:  # every prior tied at the gt's best IoU
            gt_best_iou = overlaps.amax(dim=1)
            eligible = gt_best_iou >= self.min_pos_iou
            # A prior tied at some eligible gt's best IoU has its own best IoU at least
            # that high: compare only those columns, usually a small fraction of n
            # (none when no gt is eligible: the floor is then +inf). Tensor expressions
            # throughout, so the device is waited for only by the nonzero()s.
            floor = torch.where(eligible, gt_best_iou, float('inf')).amin()
            candidates = (max_overlaps >= floor).nonzero(as_tuple=True)[0]
            claims = overlaps[:, candidates] == gt_best_iou[:, None]
            claims &= eligible[:, None]
            gt_idx, column = claims.nonzero(as_tuple=True)
            prior_idx = candidates[column]
        gt_inds.scatter_reduce_(0, prior_idx, gt_idx + 1, reduce='amax', include_self=False)
