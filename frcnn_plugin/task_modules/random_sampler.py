"""Sampling positive and negative anchors (the RPN mini-batch: 256 anchors, up to half
positive; also the R-CNN's 128 RoIs, up to a quarter positive), as in the step-by-step
PyTorch tutorial, 'Anchor boxes' and 'Proposal targets' (docs/references.md).

The tutorials draw with ``np.random.choice`` the surplus positives (then negatives) to
*disable*, relabelling them -1 in place. Here the indices to *keep* are drawn, as
mmdet does, with the same torch random calls in the same order, so that a model
built with this sampler trains step for step like one built with mmdet's.
"""
import torch
from mmdet.models.task_modules import AssignResult, SamplingResult
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import BaseBoxes, cat_boxes
from mmengine.structures import InstanceData
from torch import Tensor


@TASK_UTILS.register_module()
class ScratchRandomSampler:
    """Random fixed-size mini-batch of positive and negative priors.

    Drop-in for mmdet's ``RandomSampler``. From an assignment over ``n`` priors
    (``gt_inds`` ``(n,)``: ``> 0`` positive, ``0`` negative, ``-1`` ignored)::

        pos = up to int(num * pos_fraction) positives, drawn uniformly without replacement
        n_neg = num - |pos|,   capped at int(neg_pos_ub * max(1, |pos|)) when neg_pos_ub >= 0
        neg = up to n_neg negatives, likewise

    A group with no more candidates than wanted is taken whole (no random draw);
    a larger one draws ``torch.randperm(candidates)`` on the CPU default generator
    and keeps the first ``wanted`` -- mmdet's exact calls, so equal RNG states give
    equal indices and leave equal states. ``pos_inds`` / ``neg_inds`` are returned
    sorted ascending (mmdet sorts them with ``unique()``).

    With ``add_gt_as_proposals`` (and at least one gt), the ``k`` gt boxes are put
    in front of the priors as extra, always positive, candidates (the R-CNN then
    always sees well-placed boxes early in training): priors become ``(k + n, 4)``,
    ``assign_result.add_gt_`` prepends them to the assignment (in place, as mmdet
    does) and ``gt_flags`` ``(k + n,)`` uint8 marks them.

    Args:
        num: mini-batch size.
        pos_fraction: largest fraction of positives.
        neg_pos_ub: at most this many negatives per positive; ``-1``: no bound.
        add_gt_as_proposals: add the gt boxes to the candidates (see above).
        **kwargs: accepted and ignored, as mmdet's ``rng``, which its sampling
            never uses either.
    """

    def __init__(self, num: int, pos_fraction: float, neg_pos_ub: int = -1,
                 add_gt_as_proposals: bool = True, **kwargs) -> None:
        self.num = num
        self.pos_fraction = pos_fraction
        self.neg_pos_ub = neg_pos_ub
        self.add_gt_as_proposals = add_gt_as_proposals

    def sample(self, assign_result: AssignResult, pred_instances: InstanceData,
               gt_instances: InstanceData, **kwargs) -> SamplingResult:
        """Draw the mini-batch; ``pred_instances.priors`` ``(n, 4)``,
        ``gt_instances.bboxes`` ``(k, 4)`` and ``.labels`` ``(k,)``."""
        gt_bboxes = gt_instances.bboxes
        priors = pred_instances.priors
        if len(priors.shape) < 2:  # a single prior given as (4,)
            priors = priors[None, :]
        gt_flags = priors.new_zeros((priors.shape[0],), dtype=torch.uint8)
        if self.add_gt_as_proposals and len(gt_bboxes) > 0:
            if isinstance(gt_bboxes, BaseBoxes) and isinstance(priors, BaseBoxes):
                gt_bboxes = gt_bboxes.convert_to(type(priors))
            priors = cat_boxes([gt_bboxes, priors], dim=0)
            assign_result.add_gt_(gt_instances.labels)
            gt_flags = torch.cat([gt_flags.new_ones(len(gt_bboxes)), gt_flags])

        pos_inds = self._sample_pos(assign_result, int(self.num * self.pos_fraction))
        # The rest of the batch is negatives (the Korean walkthrough and the PyTorch
        # practice notebook write `n_sample * np.sum(label == 1)` here, a typo for the
        # difference).
        num_neg = self.num - pos_inds.numel()
        if self.neg_pos_ub >= 0:
            num_neg = min(num_neg, int(self.neg_pos_ub * max(1, pos_inds.numel())))
        neg_inds = self._sample_neg(assign_result, num_neg)
        return SamplingResult(pos_inds=pos_inds, neg_inds=neg_inds, priors=priors,
                              gt_bboxes=gt_instances.bboxes, assign_result=assign_result,
                              gt_flags=gt_flags)

    def _sample_pos(self, assign_result: AssignResult, num_expected: int,
                    **kwargs) -> Tensor:
        """Up to ``num_expected`` indices of positives (``gt_inds > 0``), sorted.

        Named and called like mmdet's, so mmdet's ``CombinedSampler`` can use this
        class as its ``pos_sampler``.
        """
        return self._choose(assign_result.gt_inds > 0, num_expected)

    def _sample_neg(self, assign_result: AssignResult, num_expected: int,
                    **kwargs) -> Tensor:
        """Up to ``num_expected`` indices of negatives (``gt_inds == 0``), sorted."""
        return self._choose(assign_result.gt_inds == 0, num_expected)

    @staticmethod
    def _choose(candidates: Tensor, num: int) -> Tensor:
        """Indices ``(min(c, num),)`` long of ``num`` of the ``c`` true entries of
        the bool mask ``candidates`` ``(n,)``, uniformly without replacement, sorted."""
        inds = candidates.nonzero().view(-1)
        if inds.numel() <= num:
            return inds
        # randperm on the CPU default generator even for CUDA tensors: mmdet's
        # call (a workaround for a CUDA randperm bug), hence mmdet's random stream.
        chosen = torch.randperm(inds.numel())[:num]
        # `inds` is ascending, so sorting the chosen positions (only `num` of them)
        # returns the indices sorted, as mmdet's `unique()` does with the whole
        # gathered set.
        return inds[chosen.sort().values.to(inds.device)]
