"""The proposal layer's non-maximum suppression at 0.7 (the step-by-step PyTorch
tutorial, 'Generating proposals to feed Fast R-CNN network'; docs/references.md).

The tutorial walks a numpy ``order`` array in a ``while`` loop: take the best
box, drop every box overlapping it by more than the threshold, repeat.
:func:`greedy_nms` is that loop in torch, each step comparing the best remaining
box with all the others at once; :func:`nms` decides the same boxes a block of them
at a time (:func:`greedy_nms_in_blocks`; on a GPU :func:`greedy_nms_without_waits`,
which does not wait for the device per block). All return exactly what ``mmcv.ops.nms`` /
``mmcv.ops.batched_nms`` return on CPU (mmcv's kernel is the same greedy walk, one
box pair at a time).
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from . import device
from .autocast import float32_under_autocast


def iou_above(rows: Tensor, cols: Tensor, iou_threshold: Tensor, offset: int) -> Tensor:
    """``(..., 5, m), (..., 5, n) -> (..., m, n)`` bool: IoU of row box with column box
    ``> iou_threshold`` (leading dimensions: independent sets of boxes).

    Boxes come as columns ``x1, y1, x2, y2, area`` (area precomputed once per box).
    The arithmetic is mmcv's CPU kernel's, operation for operation, so every
    comparison falls the same way::

        inter = max(0, min(x2, x2') - max(x1, x1') + offset) * (same in y)
        iou   = inter / (area + area' - inter)

    Not :func:`frcnn_plugin.boxes.box_overlaps`: that clamps the union to ``eps``,
    which changes the verdict for tiny or inverted boxes (mmcv's kernel does not,
    so a zero-area pair gives 0/0 = NaN, which never suppresses).
    """
    x1, y1, x2, y2, area = (c[..., :, None] for c in rows.unbind(-2))       # [m, 1] each
    x1_, y1_, x2_, y2_, area_ = (c[..., None, :] for c in cols.unbind(-2))  # [1, n] each
    w = torch.minimum(x2, x2_).sub_(torch.maximum(x1, x1_))    # [m, n]
    h = torch.minimum(y2, y2_).sub_(torch.maximum(y1, y1_))
    if offset:
        w.add_(offset)
        h.add_(offset)
    inter = w.clamp_(min=0).mul_(h.clamp_(min=0))
    union = (area + area_).sub_(inter)
    return torch.gt(inter.div_(union), iou_threshold)


def greedy_nms(columns: Tensor, iou_threshold: Tensor, offset: int) -> Tensor:
    """The plain algorithm, the tutorial's loop: ``columns (5, N)`` boxes in score order
    (best first, rows ``x1, y1, x2, y2, area``) -> the positions greedy NMS keeps,
    ascending. Keep the best box still in, drop every box it suppresses, repeat:
    one step per kept box."""
    alive = columns                                             # [5, M]: still in
    position = torch.arange(columns.size(1), device=columns.device)  # [M]
    keep = []
    while position.numel():
        keep.append(position[:1])
        survives = ~iou_above(alive[:, :1], alive[:, 1:], iou_threshold, offset)[0]  # [M - 1]
        alive, position = alive[:, 1:][:, survives], position[1:][survives]
    return torch.cat(keep) if keep else position


# The fast path: the plain loop takes one step of torch calls per kept box, 10-40x the
# time of deciding a block of boxes per step (docs/benchmark.md, 'Fast paths').

# Boxes decided per step. A step compares the block with itself and its kept
# boxes with every box still alive: at most BLOCK x N values per temporary
# (128 x 12000 floats = 6 MB), never the N x N matrix (576 MB at 12000). 128 was
# fastest on RPN-like boxes (docs/benchmark.md, 'Fast paths').
BLOCK = 128


def greedy_in_block(suppress: Tensor) -> Tensor:
    """Greedy NMS inside one block, without a loop over its boxes.

    ``suppress[..., i, j]``: boxes ``i`` and ``j`` overlap enough for the earlier
    (better) one to knock out the other; symmetric, as IoU is (leading dimensions:
    independent blocks, decided together). The greedy answer is the unique
    ``keep`` with ``keep[j] = no i < j has keep[i] and suppress[i, j]``; iterating that equation
    from ``keep = all`` fixes at least one more leading box per round, and any
    fixed point is the answer, so stop as soon as nothing changes (in practice
    after 1-4 rounds).
    """
    # Row j, column i < j: what may knock out j. Symmetry lets each round reduce
    # over the last, contiguous dimension (twice as fast as over columns).
    knocked_by = suppress.tril_(diagonal=-1)
    keep = torch.ones_like(knocked_by[..., 0])
    while True:
        new_keep = ~knocked_out(knocked_by, keep)
        if torch.equal(new_keep, keep):
            return keep
        keep = new_keep


def knocked_out(knocked_by: Tensor, keep: Tensor) -> Tensor:
    """One round of :func:`greedy_in_block`: ``(..., M, M), (..., M) -> (..., M)`` bool,
    whether a kept box may knock out each box: ``(knocked_by & keep[..., None, :]).any(-1)``.
    Computed on the bytes as uint8 product and maximum, which on a CPU are faster than
    bool's and / any (docs/benchmark.md, 'Fast paths')."""
    return (knocked_by.view(torch.uint8) * keep[..., None, :]).amax(-1).bool()


def greedy_nms_in_blocks(columns: Tensor, iou_threshold: Tensor, offset: int) -> Tensor:
    """:func:`greedy_nms`, a block of ``BLOCK`` boxes per step.

    Invariant: ``rest`` holds, in score order, the boxes no kept box suppresses.
    Its leading block is therefore decided by the block alone
    (:func:`greedy_in_block`); the block's kept boxes then knock out what they overlap
    in the rest. So each step costs (kept in block) x (still alive) comparisons, like
    the kernel's inner loop.
    """
    position = torch.arange(columns.size(1), device=columns.device)
    rest, kept = columns, []
    while rest.size(1):
        # A short tail is decided in one block: one step less (small inputs are
        # then a single step).
        size = rest.size(1) if rest.size(1) <= 2 * BLOCK else BLOCK
        block, rest = rest[:, :size], rest[:, size:]
        # Indices, not boolean masks: one read of the count serves both indexings.
        keep = greedy_in_block(iou_above(block, block, iou_threshold, offset)).nonzero()[:, 0]
        kept.append(position[keep])
        position = position[size:]
        if rest.size(1):
            hit = iou_above(block[:, keep], rest, iou_threshold, offset).any(0)
            alive = (~hit).nonzero()[:, 0]
            rest, position = rest[:, alive], position[alive]
    return torch.cat(kept) if kept else position


# On a GPU the walk above waits for the device twice per block and once per in-block
# round (the numbers of kept and of surviving boxes, torch.equal): each wait empties
# the GPU's queue. The walk below has no wait until its result: nothing is compacted,
# so every shape follows from N; a block compares with all later boxes, dead or alive
# (N^2 / 2 comparisons in all, which a GPU does in bulk; on a CPU the block walk is
# faster), and runs a fixed number of in-block rounds. Rounds grow with the block; a
# block that needs more than DEVICE_ROUNDS makes the whole NMS rerun as the block walk.
# How the two sizes were chosen: docs/benchmark.md, 'Fast paths'.
DEVICE_BLOCK = 256
DEVICE_ROUNDS = 8


def greedy_nms_without_waits(columns: Tensor, iou_threshold: Tensor, offset: int) -> Tensor:
    """:func:`greedy_nms` with one host read at the end, for devices where reads wait
    (see :mod:`.device`).

    ``alive`` marks, over all ``N`` boxes, those no kept box suppresses; blocks of
    ``DEVICE_BLOCK`` boxes go in score order. A block keeps what
    :func:`greedy_in_block`'s iteration, its dead boxes masked out, gives after
    ``DEVICE_ROUNDS`` rounds, and its kept boxes knock out what they overlap among all
    later boxes. If the last round still changed a block, its answer may be wrong: a
    flag on the device records it, and the result is then that of
    :func:`greedy_nms_in_blocks` (rare: docs/benchmark.md, 'Fast paths').
    """
    n = columns.size(1)
    alive = torch.ones(n, dtype=torch.bool, device=columns.device)
    settled = torch.ones((), dtype=torch.bool, device=columns.device)
    for start in range(0, n, DEVICE_BLOCK):
        end = min(start + DEVICE_BLOCK, n)
        suppress = iou_above(columns[:, start:end], columns[:, start:], iou_threshold, offset)
        knocked_by = suppress[:, :end - start].tril(diagonal=-1)  # as in greedy_in_block
        candidates = alive[start:end]
        keep = candidates
        for _ in range(DEVICE_ROUNDS):
            previous, keep = keep, candidates & ~knocked_out(knocked_by, keep)
        settled &= torch.eq(keep, previous).all()
        alive[start:end] = keep
        alive[end:] &= ~(suppress[:, end - start:] & keep[:, None]).any(0)
    kept = alive.nonzero()[:, 0]  # the one wait for the device
    if not bool(settled):  # computed already: read without waiting
        return greedy_nms_in_blocks(columns, iou_threshold, offset)
    return kept


# Per-class NMS of a detection head (batched_nms with the class as group): dozens of
# classes of a few dozen boxes each. The block walk compares each block with every box
# still alive, whatever its class; deciding each class on its own compares only pairs
# of one class, several times faster (docs/benchmark.md, 'Fast paths'). Groups are
# decided in one padded step while the groups x longest^2 comparisons stay below
# GROUPED_PAIRS (a few 16 MB temporaries).
GROUPED_PAIRS = 1 << 22


def greedy_nms_per_group(columns: Tensor, groups: Tensor, iou_threshold: Tensor,
                         offset: int) -> Optional[Tensor]:
    """:func:`greedy_nms` when boxes of different ``groups`` ``(N,)`` never suppress each
    other: then the greedy walk keeps, in each group, what the walk of that group alone
    keeps. Each group, in score order, is one row of a padded ``(G, 5, L)`` batch (NaN
    boxes pad: their IoU is NaN, which never suppresses), and :func:`greedy_in_block`
    decides all rows at once. Returns the kept positions, ascending; None when a group
    is longer than the block walk's blocks (``2 * BLOCK``: the in-block rounds grow with
    it) or the comparisons exceed ``GROUPED_PAIRS``.
    """
    by_group = groups.sort(stable=True)[1]  # score order kept within each group
    sizes = groups[by_group].unique_consecutive(return_counts=True)[1]
    num_groups, longest = sizes.numel(), int(sizes.max())
    if longest > 2 * BLOCK or num_groups * longest * longest > GROUPED_PAIRS:
        return None
    starts = sizes.cumsum(0) - sizes
    slot = torch.arange(groups.numel(), device=groups.device) - starts.repeat_interleave(sizes)
    group = torch.arange(num_groups, device=groups.device).repeat_interleave(sizes)
    # Each coordinate contiguous, (G, L): iou_above is slower on strided ones.
    padded = columns.new_full((5, num_groups, longest), float('nan'))
    padded[:, group, slot] = columns[:, by_group]
    padded = padded.transpose(0, 1)                             # [G, 5, L]
    keep = greedy_in_block(iou_above(padded, padded, iou_threshold, offset))  # [G, L]
    return by_group[keep[group, slot]].sort()[0]


def groups_kept_apart(boxes: Tensor, groups: Tensor, shifted: Tensor, iou_threshold: float,
                      offset: int) -> bool:
    """Whether, in :func:`batched_nms`'s ``shifted`` boxes (group ``g`` moved by
    ``g * (max + 1)``), no box can suppress one of another group.

    With boxes ``>= 0`` and groups integers ``>= 0``, group ``g`` spans
    ``[g * s, g * s + max]``, ``s = max + 1``: a gap of 1 to the next group. Rounding
    ``s`` and the shifted values moves them by at most 5 units of roundoff
    (``eps / 2``) of the largest shifted value ``M``, so the gap stays >= 0 while
    ``M <= 0.25 / eps`` (2^21 in float32). A gap >= 0 is no overlap when ``offset`` is
    0 (1 adds a pixel), and an IoU of 0 (or NaN) exceeds no ``iou_threshold >= 0``.
    """
    if offset != 0 or not iou_threshold >= 0 or groups.is_floating_point():
        return False
    # One read for the three.
    low_box, low_group, high = torch.stack(
        (boxes.min(), groups.min().to(boxes.dtype), shifted.max())).tolist()
    return low_box >= 0 and low_group >= 0 and high <= 0.25 / torch.finfo(boxes.dtype).eps


@float32_under_autocast
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0,
        score_threshold: float = 0, max_num: int = -1) -> Tensor:
    """Greedy non-maximum suppression; returns ``keep``, the kept indices.

    Shapes: ``boxes (N, 4)`` as ``[x1, y1, x2, y2]``, ``scores (N,)`` ->
    ``keep (K,)`` int64, best score first. Equal to ``mmcv.ops.nms(...)[1]``
    (same keyword arguments; ``offset`` 0 or 1 is added to widths and heights)::

        order = scores sorted descending (torch.sort, so ties fall as in mmcv)
        walk order; keep a box unless a kept box has IoU > iou_threshold with it

    (:func:`greedy_nms`, run as :func:`greedy_nms_in_blocks`, or off the CPU as
    :func:`greedy_nms_without_waits`). Boxes with
    ``scores <= score_threshold`` are dropped first when it is > 0; ``max_num > 0``
    truncates ``keep``.
    """
    return _nms(boxes, scores, None, iou_threshold, offset, score_threshold, max_num)


def _nms(boxes: Tensor, scores: Tensor, groups: Optional[Tensor], iou_threshold: float,
         offset: int = 0, score_threshold: float = 0, max_num: int = -1) -> Tensor:
    """:func:`nms`, told by ``groups`` ``(N,)`` (or None) that boxes of different groups
    never suppress each other (:func:`greedy_nms_per_group`)."""
    if boxes.dim() != 2 or boxes.size(1) != 4:
        raise ValueError(f'boxes must be (N, 4), got {tuple(boxes.shape)}')
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f'scores must be ({boxes.size(0)},), got {tuple(scores.shape)}')
    if offset not in (0, 1):
        raise ValueError(f'offset must be 0 or 1, got {offset}')
    candidates = None
    if score_threshold > 0:
        candidates = (scores > score_threshold).nonzero().view(-1)
        boxes, scores = boxes[candidates], scores[candidates]
        groups = None if groups is None else groups[candidates]
    order = scores.sort(descending=True)[1]
    columns = score_ordered_columns(boxes[order], offset)
    threshold = boxes.new_tensor(float(iou_threshold))
    kept = None if groups is None else greedy_nms_per_group(columns, groups[order],
                                                            threshold, offset)
    if kept is None:
        walk = (greedy_nms_in_blocks if device.host_reads_are_cheap(boxes)
                else greedy_nms_without_waits)
        kept = walk(columns, threshold, offset)
    keep = order[kept]
    if max_num > 0:
        keep = keep[:max_num]
    return keep if candidates is None else candidates[keep]


def score_ordered_columns(boxes: Tensor, offset: int) -> Tensor:
    """``(N, 4)`` boxes -> ``(5, N)`` columns ``x1, y1, x2, y2, area`` (a block of boxes,
    or the kept ones, is then one index away)."""
    x1, y1, x2, y2 = boxes.t()
    return torch.stack((x1, y1, x2, y2, (x2 - x1 + offset) * (y2 - y1 + offset)))


@float32_under_autocast
def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: Optional[Dict],
                class_agnostic: bool = False) -> Tuple[Tensor, Tensor]:
    """NMS inside each group of ``idxs`` (class or FPN level), never across groups.

    Shapes: ``boxes (N, 4)``, ``scores (N,)``, ``idxs (N,)`` ->
    ``dets (K, 5)`` (boxes with their score, best first), ``keep (K,)``.
    Same contract and results as ``mmcv.ops.batched_nms``:

    * ``nms_cfg=None``: no suppression, everything sorted by score.
    * ``nms_cfg``: ``type='nms'`` (the only type here), ``iou_threshold`` (or the
      old ``iou_thr``), optional ``class_agnostic`` (overrides the argument),
      ``split_thr`` (default 10000), ``max_num``, ``offset``, ``score_threshold``.
    * groups are kept apart by shifting each group's boxes by
      ``idx * (boxes.max() + 1)``, so boxes of different groups cannot overlap and
      one NMS does all groups; at ``split_thr`` boxes or more, NMS runs group by
      group instead (mmcv does so to bound memory; here the shifted coordinates
      are kept in that path too, since they round differently from the originals).
      Below it, on the CPU, groups that the shift provably keeps apart
      (:func:`groups_kept_apart`) are decided each on its own
      (:func:`greedy_nms_per_group`): the same boxes, fewer comparisons.

    Unlike mmcv, empty input gives ``dets (0, 5)`` and ``keep (0,)`` on every path.
    """
    if nms_cfg is None:
        scores, order = scores.sort(descending=True)
        return torch.cat((boxes[order], scores[:, None]), -1), order

    cfg = dict(nms_cfg)
    class_agnostic = cfg.pop('class_agnostic', class_agnostic)
    nms_type = cfg.pop('type', 'nms')
    if nms_type != 'nms':
        raise NotImplementedError(
            f"batched_nms implements nms_cfg type 'nms' only, got {nms_type!r}")
    if 'iou_thr' in cfg:  # mmcv's nms renames the deprecated key the same way
        cfg['iou_threshold'] = cfg.pop('iou_thr')
    split_thr = cfg.pop('split_thr', 10000)

    if boxes.numel() == 0:
        return boxes.new_zeros((0, 5)), idxs.new_zeros((0,), dtype=torch.long)

    if class_agnostic:
        boxes_for_nms = boxes
    else:
        # Written as mmcv writes it: the shifted values, rounding included, decide.
        shift = boxes.max() + boxes.new_tensor(1)
        boxes_for_nms = boxes + (idxs.to(boxes) * shift)[:, None]

    if boxes_for_nms.size(0) < split_thr:
        # Per group when the shift provably keeps the groups apart and the block walk
        # would take several steps; not off the CPU, where the checks would wait and
        # greedy_nms_without_waits compares all boxes in bulk.
        apart = (not class_agnostic and boxes.size(0) > 2 * BLOCK
                 and device.host_reads_are_cheap(boxes)
                 and groups_kept_apart(boxes, idxs, boxes_for_nms,
                                       cfg.get('iou_threshold', -1), cfg.get('offset', 0)))
        keep = _nms(boxes_for_nms, scores, idxs if apart else None, **cfg)
        scores = scores[keep]
    else:
        max_num = cfg.pop('max_num', -1)
        kept = torch.zeros_like(scores, dtype=torch.bool)
        # A loop over groups (classes), each one vectorised NMS.
        for group in torch.unique(idxs):
            members = (idxs == group).nonzero().view(-1)
            kept[members[nms(boxes_for_nms[members], scores[members], **cfg)]] = True
        keep = kept.nonzero().view(-1)
        scores, order = scores[keep].sort(descending=True)
        keep = keep[order]
        if max_num > 0:
            keep, scores = keep[:max_num], scores[:max_num]
    return torch.cat((boxes[keep], scores[:, None]), -1), keep
