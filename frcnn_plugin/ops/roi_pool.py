"""RoI pooling (the Korean walkthrough, '7. RoI Pooling'; the step-by-step PyTorch
tutorial, 'Fast R-CNN'; docs/references.md): quantised RoI max pooling to 7 x 7.

The tutorials scale each proposal by 1/16, truncate it to whole feature cells and run
``nn.AdaptiveMaxPool2d(7)`` on the crop, one RoI at a time in a Python loop.
:func:`roi_pool` is the Fast R-CNN RoI pooling layer for all RoIs at once, with the
quantisation of Caffe's / torchvision's kernel (``round``, bins by ``floor`` /
``ceil``), so it equals ``torchvision.ops.roi_pool``; ``ScratchRoIPool`` runs the same
numbers through a leaner path (:func:`roi_pool_by_bin_shape`).
"""
from typing import Tuple, Union

import numpy as np
import torch
from mmdet.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from .autocast import float32_under_autocast
from .first_max import bins_by, first_max, pick_winners


def round_half_away(values: Tensor) -> Tensor:
    """C's ``round``: halves go away from zero (``torch.round`` rounds them to even).

    ``trunc`` plus a step when the dropped fraction is at least 0.5; the fraction
    ``v - trunc(v)`` is exact in floating point, unlike ``floor(|v| + 0.5)``.
    """
    whole = values.trunc()
    return whole + ((values - whole).abs() >= 0.5) * values.sign()


def axis_bins(start: Tensor, size: Tensor, bins: int, length: int,
              dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """``(n,)`` whole-cell RoI start / size on one axis -> bin bounds ``lo, hi`` ``(n, bins)``.

    Bin ``p`` covers cells ``[floor(p * b), ceil((p + 1) * b))`` after ``start``,
    ``b = size / bins`` computed in ``dtype`` as the kernel does (so neighbouring
    bins may share a cell), clipped to the map.
    """
    bin_size = (size.to(dtype) / bins)[:, None]
    edges = torch.arange(bins + 1, dtype=dtype, device=size.device)
    lo = (edges[:-1] * bin_size).floor().long() + start[:, None]
    hi = (edges[1:] * bin_size).ceil().long() + start[:, None]
    return lo.clamp(0, length), hi.clamp(0, length)


def bin_bounds(rois: Tensor, spatial_scale: float, output_size: Tuple[int, int],
               dtype: torch.dtype, height: int, width: int) -> Tuple[Tensor, ...]:
    """``rois (K, 5)`` -> each bin's cells ``[y_lo, y_hi) (K, PH)``, ``[x_lo, x_hi) (K, PW)``:
    the RoI snapped to whole cells, ``x1' = round(x1 * spatial_scale)`` (likewise the
    others), ``max(x2' - x1' + 1, 1)`` cells per axis, cut by :func:`axis_bins`."""
    out_h, out_w = output_size
    # The kernels receive the scale as a C float.
    scale = float(np.float32(spatial_scale))
    cells = round_half_away(rois[:, 1:].to(dtype) * scale).long()  # [K, 4]
    size = (cells[:, 2:] - cells[:, :2] + 1).clamp(min=1)       # [K, 2]: w, h
    y_lo, y_hi = axis_bins(cells[:, 1], size[:, 1], out_h, height, dtype)
    x_lo, x_hi = axis_bins(cells[:, 0], size[:, 0], out_w, width, dtype)
    return y_lo, y_hi, x_lo, x_hi


def cells_from(lo: Tensor, hi: Tensor) -> Tensor:
    """``[lo, hi) (K, P)`` -> ``(K, P, L)`` cells ``lo, lo + 1, ...``, ``L`` the longest bin."""
    longest = int((hi - lo).max()) if lo.numel() else 0
    return lo[:, :, None] + torch.arange(max(longest, 1), device=lo.device)


def roi_pool(input: Tensor, rois: Tensor, output_size: Tuple[int, int],
             spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling, the plain algorithm: ``input (N, C, H, W)``, ``rois (K, 5)`` rows
    ``[batch_idx, x1, y1, x2, y2]`` in image pixels -> ``(K, C, PH, PW)``.

    Every bin's cells are read on a grid of the largest bin's ``R x S`` cells (the
    rest masked out), and each bin takes their maximum; ``max()`` gives the gradient
    to the first maximal cell in row-major order, as the kernel does. Memory:
    ``K x PH x PW x R x S x C`` values.
    """
    height, width = input.shape[-2:]
    y_lo, y_hi, x_lo, x_hi = bin_bounds(rois, spatial_scale, output_size, input.dtype,
                                        height, width)          # [K, PH] / [K, PW] each
    rows, cols = cells_from(y_lo, y_hi), cells_from(x_lo, x_hi)  # [K, PH, R], [K, PW, S]
    inside = ((rows < y_hi[:, :, None])[:, :, None, :, None]
              & (cols < x_hi[:, :, None])[:, None, :, None, :])  # [K, PH, PW, R, S]
    features = input.permute(0, 2, 3, 1)                        # [N, H, W, C]
    image = rois[:, 0].long()[:, None, None, None, None]        # [K, 1, 1, 1, 1]
    cells = features[image, rows.clamp(max=height - 1)[:, :, None, :, None],
                     cols.clamp(max=width - 1)[:, None, :, None, :]]  # [K, PH, PW, R, S, C]
    cells = cells.masked_fill(~inside[..., None], float('-inf'))
    pooled = cells.flatten(3, 4).max(3)[0]                      # [K, PH, PW, C]
    # A bin with no cell inside the map outputs 0.
    pooled = pooled.masked_fill(~inside.flatten(3).any(3)[..., None], 0)
    return pooled.permute(0, 3, 1, 2).contiguous()              # [K, C, PH, PW]


# The fast path: the plain algorithm pads every bin to the largest one, over 20x slower
# and gigabytes of memory on the VGG16 map (docs/benchmark.md, 'Fast paths').
def roi_pool_by_bin_shape(input: Tensor, rois: Tensor, output_size: Tuple[int, int],
                          spatial_scale: float = 1.0) -> Tensor:
    """:func:`roi_pool` without the padding to the largest bin: all bins of ``r x c``
    cells (a few dozen shapes) are read at once as a dense ``(bins, r * c, C)`` block
    of the channels-last features and reduced by :func:`~.first_max.first_max`, which
    also finds each bin's winning cell; the backward sends the gradient to those cells
    (:func:`~.first_max.pick_winners`). Work and memory are the cells read times
    ``C``, i.e. what the C kernel reads."""
    num_images, channels, height, width = input.shape
    out_h, out_w = output_size
    n = rois.size(0)
    y_lo, y_hi, x_lo, x_hi = bin_bounds(rois, spatial_scale, output_size, input.dtype,
                                        height, width)
    # Per bin (n * out_h * out_w,): its first cell and its rows x cols of cells.
    shape = (n, out_h, out_w)
    rows = (y_hi - y_lo)[:, :, None].expand(shape).flatten()
    cols = (x_hi - x_lo)[:, None, :].expand(shape).flatten()
    first_cell = ((rois[:, 0].long() * (height * width))[:, None, None]
                  + (y_lo * width)[:, :, None] + x_lo[:, None, :]).flatten()
    features = input.permute(0, 2, 3, 1).reshape(num_images * height * width, channels)
    # torchvision's kernel: maxima start at -FLT_MAX; a bin with no cell inside
    # the map outputs 0.
    best, winner = first_max(features.detach(), _bin_groups(first_cell, rows, cols, width),
                             n * out_h * out_w, torch.finfo(torch.float32).min,
                             features.requires_grad and torch.is_grad_enabled(), empty=0.)
    pooled = pick_winners(features, best, winner)
    return pooled.view(n, out_h, out_w, channels).permute(0, 3, 1, 2).contiguous()


def _bin_groups(first_cell: Tensor, rows: Tensor, cols: Tensor, width: int):
    """``(bins, cells)`` per bin shape ``r x c``: the bins of that shape and their
    cells ``(B, r * c)``, row-major (the kernel's scan order)."""
    if rows.numel() == 0:
        return
    stride = width + 1  # a bin spans at most the map's width: ``c < stride``
    for shape, bins in bins_by(rows * stride + cols):
        r, c = divmod(shape, stride)
        offsets = (torch.arange(r, device=rows.device)[:, None] * width
                   + torch.arange(c, device=rows.device)).flatten()
        yield bins, first_cell[bins][:, None] + offsets


@MODELS.register_module()
class ScratchRoIPool(nn.Module):
    """RoI max pooling, a drop-in for ``mmcv.ops.RoIPool`` (same arguments).

    ``forward(input, rois)``: ``input`` ``(N, C, H, W)``, ``rois`` ``(n, 5)`` rows
    ``[batch_idx, x1, y1, x2, y2]`` in image pixels -> ``(n, C, out_h, out_w)``.

    Each RoI is snapped to whole feature cells (:func:`bin_bounds`) and cut into
    ``out_h x out_w`` bins (:func:`axis_bins`). Each bin outputs the maximum of its
    cells (the first one in row-major order gets the gradient); a bin with no cell
    inside the map outputs 0. Runs :func:`roi_pool_by_bin_shape`.

    The numbers are ``torchvision.ops.roi_pool``'s. mmcv's own RoIPool is CUDA
    only and quantises differently (no ``round``; ``x2 + 1`` scaled, then bins by
    ``floor`` / ``ceil`` of the fractional edges), so on GPU it can differ by a
    cell at bin edges.

    Args:
        output_size: ``(out_h, out_w)`` or one int for both.
        spatial_scale: feature map size / image size (``1 / stride``).
    """

    def __init__(self, output_size: Union[int, Tuple[int, int]], spatial_scale: float = 1.0):
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)

    @float32_under_autocast
    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        return roi_pool_by_bin_shape(input, rois, self.output_size, self.spatial_scale)

    def __repr__(self):
        return (f'{self.__class__.__name__}(output_size={self.output_size}, '
                f'spatial_scale={self.spatial_scale})')
