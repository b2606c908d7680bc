"""Seed step "RoI pooling" (seeds 000 / 002): quantised RoI max pooling to 7 x 7.

The seeds scale each proposal by 1/16, truncate it to whole feature cells and run
``nn.AdaptiveMaxPool2d(7)`` on the crop, one RoI at a time in a Python loop. This
is the Fast R-CNN RoI pooling layer for all RoIs at once, with the quantisation
of Caffe's / torchvision's kernel (``round``, bins by ``floor`` / ``ceil``), so it
equals ``torchvision.ops.roi_pool``.
"""
from typing import Tuple, Union

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


@MODELS.register_module()
class ScratchRoIPool(nn.Module):
    """RoI max pooling, a drop-in for ``mmcv.ops.RoIPool`` (same arguments).

    ``forward(input, rois)``: ``input`` ``(N, C, H, W)``, ``rois`` ``(n, 5)`` rows
    ``[batch_idx, x1, y1, x2, y2]`` in image pixels -> ``(n, C, out_h, out_w)``.

    Each RoI is snapped to whole feature cells, ``x1' = round(x1 * spatial_scale)``
    (likewise the others), spans ``max(x2' - x1' + 1, 1)`` cells per axis, and is
    cut into ``out_h x out_w`` bins (:func:`axis_bins`). Each bin outputs the
    maximum of its cells (the first one in row-major order gets the gradient);
    a bin with no cell inside the map outputs 0.

    The numbers are ``torchvision.ops.roi_pool``'s. mmcv's own RoIPool is CUDA
    only and quantises differently (no ``round``; ``x2 + 1`` scaled, then bins by
    ``floor`` / ``ceil`` of the fractional edges), so on GPU it can differ by a
    cell at bin edges.

    Vectorised by bin shape: all bins of ``r x c`` cells (a few dozen shapes)
    are read at once as a dense ``(bins, r * c, C)`` block of the channels-last
    features and reduced by :func:`~.first_max.first_max`, which also finds each
    bin's winning cell; the backward sends the gradient to those cells
    (:func:`~.first_max.pick_winners`). Work and memory are the cells read times
    ``C``, i.e. what the C kernel reads.

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
        num_images, channels, height, width = input.shape
        out_h, out_w = self.output_size
        n = rois.size(0)
        # The kernels receive the scale as a C float.
        scale = torch.tensor(self.spatial_scale, dtype=torch.float32).item()
        cells = round_half_away(rois[:, 1:].to(input.dtype) * scale).long()  # (n, 4)
        size = (cells[:, 2:] - cells[:, :2] + 1).clamp(min=1)  # (n, 2): w, h
        y_lo, y_hi = axis_bins(cells[:, 1], size[:, 1], out_h, height, input.dtype)
        x_lo, x_hi = axis_bins(cells[:, 0], size[:, 0], out_w, width, input.dtype)
        # Per bin (n * out_h * out_w,): its first cell and its rows x cols of cells.
        shape = (n, out_h, out_w)
        rows = (y_hi - y_lo)[:, :, None].expand(shape).flatten()
        cols = (x_hi - x_lo)[:, None, :].expand(shape).flatten()
        first_cell = ((rois[:, 0].long() * (height * width))[:, None, None]
                      + (y_lo * width)[:, :, None] + x_lo[:, None, :]).flatten()
        features = input.permute(0, 2, 3, 1).reshape(num_images * height * width, channels)
        # torchvision's kernel: maxima start at -FLT_MAX; a bin with no cell inside
        # the map outputs 0.
        best, winner = first_max(features.detach(),
                                 self._bin_groups(first_cell, rows, cols, width),
                                 n * out_h * out_w, torch.finfo(torch.float32).min,
                                 features.requires_grad and torch.is_grad_enabled(), empty=0.)
        pooled = pick_winners(features, best, winner)
        return pooled.view(n, out_h, out_w, channels).permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def _bin_groups(first_cell: Tensor, rows: Tensor, cols: Tensor, width: int):
        """``(bins, cells)`` per bin shape ``r x c``: the bins of that shape and their
        cells ``(B, r * c)``, row-major (the kernel's scan order)."""
        if rows.numel() == 0:
            return
        stride = int(cols.max()) + 1
        for shape, bins in bins_by(rows * stride + cols):
            r, c = divmod(shape, stride)
            offsets = (torch.arange(r, device=rows.device)[:, None] * width
                       + torch.arange(c, device=rows.device)).flatten()
            yield bins, first_cell[bins][:, None] + offsets

    def __repr__(self):
        return (f'{self.__class__.__name__}(output_size={self.output_size}, '
                f'spatial_scale={self.spatial_scale})')
