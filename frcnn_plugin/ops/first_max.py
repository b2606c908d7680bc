"""The max reduction inside RoI max pooling, shared by ``ScratchRoIPool`` and the max mode
of ``ScratchRoIAlign``: each output bin is the largest of its candidates (cells, or
bilinear samples), and its gradient goes to the first candidate reaching it.
"""
from typing import Iterable, Optional, Tuple

import torch
from torch import Tensor


def first_max(source: Tensor, groups: Iterable[Tuple[Tensor, Tensor]], num_bins: int,
              floor: float, need_winner: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
    """Per bin, the maximum of its candidate rows of ``source`` ``(S, C)``.

    ``groups``: pairs ``(bins, rows)``, ``bins`` ``(B,)`` bin numbers and ``rows``
    ``(B, K)`` the rows of ``source`` each of them reduces, in scan order. Bins are
    grouped by their candidate count ``K`` so that every group is one dense
    ``(B, K, C)`` read and one ``amax`` over ``K``, with no padding; bins in no
    group (or with ``K = 0``) have no candidate.

    What a C kernel's running maximum does (torchvision's RoIPool, mmcv's RoIAlign
    max mode): start at ``floor``, replace only by a strictly larger value. Returns
    ``best`` ``(num_bins, C)`` ``= max(floor, candidates)`` (no autograd) and, if
    ``need_winner``, ``winner`` ``(num_bins, C)``: the row of the *first* candidate
    equal to the maximum, the one that gets the gradient (any valid row where the
    floor won: :func:`pick_winners` replaces those). (Giving every tied candidate the
    gradient, as ``amax``'s backward does, would double-count samples clamped onto
    the same border pixel; ``max(dim)``'s indices would be right but are several
    times slower to compute.)
    """
    channels = source.size(1)
    best = source.new_empty((num_bins, channels))
    winner = source.new_empty((num_bins, channels), dtype=torch.long) if need_winner else None
    covered = torch.zeros(num_bins, dtype=torch.bool, device=source.device)
    with torch.no_grad():
        for bins, rows in groups:
            k = rows.size(1)
            if k == 0 or bins.numel() == 0:
                continue
            covered[bins] = True
            values = source.index_select(0, rows.flatten()).view(-1, k, channels)
            top = values.amax(1)
            best.index_copy_(0, bins, top.clamp(min=floor))
            if need_winner:
                # First candidate reaching the top: give candidate j the rank k - j,
                # keep the ranks of those equal to the top, take the largest.
                rank = torch.arange(k, 0, -1, device=rows.device,
                                    dtype=torch.uint8 if k < 256 else torch.int32)
                first = k - ((values == top[:, None]) * rank[:, None]).amax(1).long()
                # first == k only for NaN tops; any candidate will do there.
                winner.index_copy_(0, bins, rows.gather(1, first.clamp_(max=k - 1)))
    uncovered = (~covered).nonzero().flatten()
    best.index_fill_(0, uncovered, floor)
    if need_winner:
        winner.index_fill_(0, uncovered, 0)
    return best, winner


def pick_winners(source: Tensor, best: Tensor, winner: Optional[Tensor],
                 floor: float) -> Tensor:
    """``(num_bins, C)`` pooled values with autograd: each bin's winning row of
    ``source`` (gathered, so only it gets the gradient), or ``best`` (no gradient)
    where the floor won."""
    if winner is None:
        return best
    if source.size(0) == 0:  # nothing to gather; adding the empty sum (0) keeps autograd's link
        return best + source.sum()
    pooled = source.gather(0, winner)
    # Rare (no candidate, or none above the floor): fix just those rows.
    low = (best <= floor).any(1).nonzero().flatten()
    if low.numel():
        pooled = pooled.index_put(
            (low,), torch.where(best[low] > floor, pooled[low], best[low]))
    return pooled
