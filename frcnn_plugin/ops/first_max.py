"""The max reduction inside RoI max pooling, shared by ``ScratchRoIPool`` and the max mode
of ``ScratchRoIAlign``: each output bin is the largest of its candidates (cells, or
bilinear samples), and its gradient goes to the first candidate reaching it.
"""
from typing import Iterable, Iterator, Optional, Tuple

import torch
from torch import Tensor


def bins_by(key: Tensor) -> Iterator[Tuple[int, Tensor]]:
    """``(value, bins)`` for each distinct value of ``key`` ``(num_bins,)`` (ints),
    ``bins`` the bin numbers having it: how the callers build :func:`first_max`'s
    groups (bins of one candidate count, or of one ``r x c`` shape)."""
    values, order = key.sort(stable=True)
    values, sizes = values.unique_consecutive(return_counts=True)
    return zip(values.tolist(), order.split(sizes.tolist()))


def first_max(source: Tensor, groups: Iterable[Tuple[Tensor, Tensor]], num_bins: int,
              floor: float, need_winner: bool = True,
              empty: Optional[float] = None) -> Tuple[Tensor, Optional[Tensor]]:
    """Per bin, the maximum of its candidate rows of ``source`` ``(S, C)``.

    ``groups``: pairs ``(bins, rows)``, ``bins`` ``(B,)`` bin numbers and ``rows``
    ``(B, K)`` the rows of ``source`` each of them reduces, in scan order. Each
    group has one candidate count ``K`` (:func:`bins_by`), so that it is one dense
    ``(B, K, C)`` read and one ``amax`` over ``K``, with no padding; bins in no
    group (or with ``K = 0``) have no candidate and output ``empty`` (default:
    ``floor``).

    What a C kernel's running maximum does (torchvision's RoIPool, mmcv's RoIAlign
    max mode): start at ``floor``, replace only by a strictly larger value. Returns
    ``best`` ``(num_bins, C)`` ``= max(floor, candidates)`` (no autograd) and, if
    ``need_winner``, ``winner`` ``(num_bins, C)``: the row of the *first* candidate
    equal to the maximum, the one that gets the gradient, or ``S`` (no row) where
    the floor won. (Giving every tied candidate the gradient, as ``amax``'s backward
    does, would double-count samples clamped onto the same border pixel;
    ``max(dim)``'s indices would be right but are several times slower to compute.)
    """
    channels = source.size(1)
    nowhere = source.size(0)
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
            if need_winner:
                # First candidate reaching the top: give candidate j the rank k - j,
                # keep the ranks of those equal to the top, take the largest.
                rank = torch.arange(k, 0, -1, device=rows.device,
                                    dtype=torch.uint8 if k < 256 else torch.int32)
                first = k - ((values == top[:, None]) * rank[:, None]).amax(1).long()
                # first == k only for NaN tops; any candidate will do there.
                row = rows.gather(1, first.clamp_(max=k - 1))
                winner.index_copy_(0, bins, row.masked_fill_(top <= floor, nowhere))
            best.index_copy_(0, bins, top.clamp_(min=floor))
    uncovered = ~covered[:, None]
    best.masked_fill_(uncovered, floor if empty is None else empty)
    if need_winner:
        winner.masked_fill_(uncovered, nowhere)
    return best, winner


class _MaxOfWinners(torch.autograd.Function):
    """``best`` (computed by :func:`first_max`) as a function of ``source``: its gradient
    goes to the winning rows (``winner == S``: none), summed where several bins share a
    winner."""

    @staticmethod
    def forward(ctx, source: Tensor, winner: Tensor, best: Tensor) -> Tensor:
        ctx.save_for_backward(winner)
        ctx.rows = source.size(0)
        return best  # autograd returns a view of it, with this function's backward

    @staticmethod
    def backward(ctx, grad: Tensor):
        winner, = ctx.saved_tensors
        # One spare row collects the gradient of bins the floor won, then is dropped.
        grad_source = grad.new_zeros((ctx.rows + 1, grad.size(1)))
        grad_source.scatter_add_(0, winner, grad.contiguous())
        return grad_source[:-1], None, None


def pick_winners(source: Tensor, best: Tensor, winner: Optional[Tensor]) -> Tensor:
    """``best`` ``(num_bins, C)``, with autograd to ``source`` through the winners
    when :func:`first_max` found them (the values are ``best``'s already: nothing is
    gathered again)."""
    if winner is None:
        return best
    return _MaxOfWinners.apply(source, winner, best)
