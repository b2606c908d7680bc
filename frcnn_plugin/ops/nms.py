"""Seed step "proposal layer: apply non-maximum suppression (threshold 0.7)".

The seed (002) walks a numpy ``order`` array in a ``while`` loop: take the best
box, drop every box overlapping it by more than the threshold, repeat. Here the
same greedy rule runs in pure torch, a block of score-sorted boxes at a time, and
returns exactly what ``mmcv.ops.nms`` / ``mmcv.ops.batched_nms`` return on CPU.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from .autocast import float32_under_autocast

# Boxes decided per step. A step compares the block with itself and its kept
# boxes with every box still alive: at most BLOCK x N values per temporary
# (128 x 12000 floats = 6 MB), never the N x N matrix (576 MB at 12000). 128
# measured fastest on 2000-12000 RPN-like boxes (64 and 256 within ~20 %).
BLOCK = 128
# Per-group NMS decides all groups in one padded step while groups x longest^2 pair
# comparisons stay below this (4 M: a few 16 MB temporaries).
GROUPED_PAIRS = 1 << 22


def _suppresses(rows: Tensor, cols: Tensor, iou_threshold: Tensor, offset: int) -> Tensor:
    """``(..., 5, m), (..., 5, n) -> (..., m, n)`` bool: IoU of row box with column box
    ``> iou_threshold`` (leading dimensions: independent batches of boxes).

    Boxes come as columns ``x1, y1, x2, y2, area`` (area precomputed once per box).
    The arithmetic is mmcv's CPU kernel's, operation for operation, so every
    comparison falls the same way:

        inter = max(0, min(x2, x2') - max(x1, x1') + offset) * (same in y)
        iou   = inter / (area + area' - inter)

    Not :func:`frcnn_plugin.boxes.box_overlaps`: that clamps the union to ``eps``,
    which changes the verdict for tiny or inverted boxes (mmcv's kernel does not,
    so a zero-area pair gives 0/0 = NaN, which never suppresses).
    """
    x1, y1, x2, y2, area = (c[..., :, None] for c in rows.unbind(-2))
    x1_, y1_, x2_, y2_, area_ = (c[..., None, :] for c in cols.unbind(-2))
    w = torch.minimum(x2, x2_).sub_(torch.maximum(x1, x1_))
    h = torch.minimum(y2, y2_).sub_(torch.maximum(y1, y1_))
    if offset:
        w.add_(offset)
        h.add_(offset)
    inter = w.clamp_(min=0).mul_(h.clamp_(min=0))
    union = (area + area_).sub_(inter)
    return torch.gt(inter.div_(union), iou_threshold)


def _greedy_in_block(suppress: Tensor) -> Tensor:
    """Greedy NMS inside one block, without a loop over its boxes.

    ``suppress[..., i, j]``: boxes ``i`` and ``j`` overlap enough for the earlier
    (better) one to knock out the other; symmetric, as IoU is. Leading dimensions
    are independent blocks. The greedy answer is the unique ``keep`` with
    ``keep[j] = no i < j has keep[i] and suppress[i, j]``; iterating that equation
    from ``keep = all`` fixes at least one more leading box per round, and any
    fixed point is the answer, so stop as soon as nothing changes (in practice
    after 1-4 rounds).
    """
    # Row j, column i < j: what may knock out j. Symmetry lets each round reduce
    # over the last, contiguous dimension (twice as fast as over columns).
    knocked_by = suppress.tril_(diagonal=-1)
    keep = torch.ones_like(knocked_by[..., 0])
    while True:
        new_keep = ~(knocked_by & keep[..., None, :]).any(-1)
        if torch.equal(new_keep, keep):
            return keep
        keep = new_keep


@float32_under_autocast
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0,
        score_threshold: float = 0, max_num: int = -1) -> Tensor:
    """Greedy non-maximum suppression; returns ``keep``, the kept indices.

    Shapes: ``boxes (N, 4)`` as ``[x1, y1, x2, y2]``, ``scores (N,)`` ->
    ``keep (K,)`` int64, best score first. Equal to ``mmcv.ops.nms(...)[1]``
    (same keyword arguments; ``offset`` 0 or 1 is added to widths and heights):

        order = scores sorted descending (torch.sort, so ties fall as in mmcv)
        walk order; keep a box unless a kept box has IoU > iou_threshold with it

    Boxes with ``scores <= score_threshold`` are dropped first when it is > 0;
    ``max_num > 0`` truncates ``keep``.
    """
    return _nms(boxes, scores, None, iou_threshold, offset, score_threshold, max_num)


def _nms(boxes: Tensor, scores: Tensor, groups: Optional[Tensor], iou_threshold: float,
         offset: int = 0, score_threshold: float = 0, max_num: int = -1) -> Tensor:
    """:func:`nms`, told by ``groups (N,)`` (or None) that boxes of different groups
    never suppress each other, so that only pairs within a group are compared."""
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
    x1, y1, x2, y2 = boxes[order].t()
    area = (x2 - x1 + offset) * (y2 - y1 + offset)
    # (5, N) so a block of boxes, or the kept ones, is one index away.
    columns = torch.stack((x1, y1, x2, y2, area))
    # The kernel compares in the boxes' float type; so does this.
    threshold = columns.new_tensor(float(iou_threshold))

    keep = None
    if groups is not None:
        keep = _grouped_keep(columns, groups[order], threshold, offset)
    if keep is None:
        keep = _block_keep(columns, threshold, offset, None if groups is None else groups[order])
    keep = order[keep]
    if max_num > 0:
        keep = keep[:max_num]
    return keep if candidates is None else candidates[keep]


def _block_keep(columns: Tensor, threshold: Tensor, offset: int,
                groups: Optional[Tensor] = None) -> Tensor:
    """Positions (ascending) of the boxes greedy NMS keeps, ``columns`` ``(5, N)`` in score order.

    Invariant: ``rest`` holds, in score order, the boxes no kept box suppresses.
    Its leading block is therefore decided by the block alone; the block's kept
    boxes then knock out what they overlap in the rest. So each step costs
    (kept in block) x (still alive) comparisons, like the kernel's inner loop.

    With ``groups`` ``(N,)`` (boxes of different groups never suppress each other)
    the boxes are walked group by group, so a block is compared with the rest of
    its own groups only, not with every box still alive.
    """
    position = torch.arange(columns.size(1), device=columns.device)
    if groups is not None:
        groups, position = groups.sort(stable=True)  # score order kept within a group
        columns = columns[:, position]
    rest, rest_groups = columns, groups
    kept = []
    while rest.size(1):
        # A short tail is decided in one block: one step less (small inputs are
        # then a single step).
        size = rest.size(1) if rest.size(1) <= 2 * BLOCK else BLOCK
        block, rest = rest[:, :size], rest[:, size:]
        suppress = _suppresses(block, block, threshold, offset)
        if groups is not None:
            block_groups, rest_groups = rest_groups[:size], rest_groups[size:]
            suppress &= block_groups[:, None] == block_groups
        keep = _greedy_in_block(suppress)
        kept.append(position[:size][keep])
        position = position[size:]
        if not rest.size(1):
            break
        if groups is None:
            alive = ~_suppresses(block[:, keep], rest, threshold, offset).any(0)
        else:
            # The rest is sorted by group: the block's groups are a prefix of it.
            reach = int(torch.searchsorted(rest_groups, block_groups[-1:], right=True))
            hit = _suppresses(block[:, keep], rest[:, :reach], threshold, offset)
            hit &= block_groups[keep][:, None] == rest_groups[:reach]
            alive = torch.ones_like(rest_groups, dtype=torch.bool)
            alive[:reach] = ~hit.any(0)
            rest_groups = rest_groups[alive]
        rest, position = rest[:, alive], position[alive]
    keep = torch.cat(kept) if kept else position
    return keep if groups is None else keep.sort()[0]


def _grouped_keep(columns: Tensor, groups: Tensor, threshold: Tensor,
                  offset: int) -> Optional[Tensor]:
    """:func:`_block_keep` when only boxes of the same group can suppress each other
    (``groups`` ``(N,)`` in score order): every group is one block of a padded
    ``(G, 5, L)`` batch, all decided in a single step, which is what per-class NMS
    of a detection head needs (many classes of a few hundred boxes). None (use the
    grouped block path) when a group is longer than a block of that path (``2 * BLOCK``: the
    in-block iteration's rounds grow with its length) or the ``G x L x L``
    comparisons would exceed ``GROUPED_PAIRS``.
    """
    _, by_group = groups.sort(stable=True)  # score order kept within each group
    ids, sizes = groups[by_group].unique_consecutive(return_counts=True)
    num_groups, longest = ids.numel(), int(sizes.max()) if ids.numel() else 0
    if longest > 2 * BLOCK or num_groups * longest * longest > GROUPED_PAIRS:
        return None
    starts = sizes.cumsum(0) - sizes
    slot = torch.arange(groups.numel(), device=groups.device) - starts.repeat_interleave(sizes)
    group = torch.arange(num_groups, device=groups.device).repeat_interleave(sizes)
    # Padding is NaN: its IoU with anything is NaN, which never suppresses.
    padded = columns.new_full((num_groups, longest, 5), float('nan'))
    padded[group, slot] = columns[:, by_group].t()
    keep = _greedy_in_block(_suppresses(padded.transpose(1, 2), padded.transpose(1, 2),
                                        threshold, offset))
    return by_group[keep[group, slot]].sort()[0]


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
        # The shift keeps groups apart only when no coordinate is negative; then
        # only pairs within a group need comparing.
        apart = not class_agnostic and bool(boxes.min() >= 0)
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
