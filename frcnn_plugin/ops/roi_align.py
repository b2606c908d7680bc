"""Seed step "RoI pooling" (seeds 000 / 002), the RoIAlign form mmdet's Faster R-CNN uses.

The seeds quantise each proposal to the stride-16 grid and run
``nn.AdaptiveMaxPool2d(7)`` on it, one RoI at a time in a Python loop. RoIAlign
(Mask R-CNN) drops the quantisation: each of the ``7 x 7`` bins averages (or
maxes) bilinear samples taken at exact, fractional positions. Here every sample
of every RoI is turned into interpolation weights at once, and the features of
all RoIs come out of one sparse-times-dense product, equal to ``mmcv.ops.RoIAlign``.
"""
import warnings
from typing import Tuple, Union

import torch
from mmdet.registry import MODELS
from mmengine.utils import deprecated_api_warning
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from .autocast import float32_under_autocast
from .first_max import bins_by, first_max, pick_winners

# mmcv's max mode starts every bin's running maximum here (not at -inf), so a bin
# with no sample, or whose samples are all below it, outputs this value.
MAX_MODE_FLOOR = -10000.0


def axis_samples(start: Tensor, size: Tensor, bins: int, grid: Tensor,
                 length: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Bilinear taps of the samples along one axis (x or y) of every RoI.

    ``start``, ``size`` ``(n,)``: the RoI on this axis, in feature pixels;
    ``grid`` ``(n,)``: samples per bin; ``length``: the feature map's extent.
    Sample ``i`` of bin ``p`` sits at::

        pos = start + p * bin + (i + 0.5) * bin / grid        bin = size / bins

    with mmcv's float operations in mmcv's order (a last-bit difference could move
    a sample across the ``length`` border, where the value jumps to 0). A sample
    outside ``[-1, length]`` reads 0; inside, ``pos`` is clamped to ``[0, length - 1]``
    and split between pixel ``lo = floor(pos)`` (weight ``1 - frac``) and ``hi = lo + 1``
    (weight ``frac``), both ``lo`` at the last pixel.

    Returns ``lo, hi`` (long), ``w_lo, w_hi`` and ``used`` (bool), all
    ``(n, bins, G)`` with ``G = max(grid)``: RoIs with fewer samples are padded,
    ``used`` is False there and the weights are 0 (as they are outside the map).
    """
    dtype = start.dtype
    max_grid = max(int(grid.max()), 1) if grid.numel() else 1
    bin_size = (size / bins)[:, None, None]
    offsets = torch.arange(max_grid, dtype=dtype, device=start.device)
    pos = ((start[:, None, None]
            + torch.arange(bins, dtype=dtype, device=start.device)[:, None] * bin_size)
           + (offsets + 0.5) * bin_size / grid[:, None, None].to(dtype))
    used = offsets < grid[:, None, None]
    inside = used & (pos >= -1) & (pos <= length)
    pos = torch.where(inside, pos.clamp(min=0), 0)
    lo = pos.long()  # pos >= 0, so truncation is floor
    last = lo >= length - 1
    lo = lo.clamp(max=length - 1)
    hi = lo + (~last)
    frac = torch.where(last, 0, pos - lo)
    w_hi = torch.where(inside, frac, 0)
    w_lo = torch.where(inside, 1 - frac, 0)
    return lo, hi, w_lo, w_hi, used.expand_as(pos)


def merge_taps(lo: Tensor, hi: Tensor, w_lo: Tensor, w_hi: Tensor,
               count: Tensor) -> Tuple[Tensor, Tensor]:
    """``(n, bins, G)`` sample taps -> ``(n, bins, 2G)`` distinct pixels and their summed weights.

    What averaging a bin's samples does along one axis: each pixel gets the sum of
    its samples' weights, divided by ``count`` ``(n,)``. Neighbouring samples share
    pixels, so taps are sorted and equal pixels merged; the unused tail gets weight 0.
    Distinct pixels per bin make the 2-D product of two axes a valid CSR row.
    """
    pix, order = torch.stack((lo, hi), -1).flatten(2).sort(-1)
    weight = torch.stack((w_lo, w_hi), -1).flatten(2).gather(-1, order)
    group = torch.ones_like(pix, dtype=torch.bool)
    group[..., 1:] = pix[..., 1:] != pix[..., :-1]
    group = group.cumsum(-1).sub_(1)
    merged_pix = torch.zeros_like(pix).scatter_(-1, group, pix)
    merged_w = torch.zeros_like(weight).scatter_add_(-1, group, weight)
    return merged_pix, merged_w / count.clamp(min=1).to(weight.dtype)[:, None, None]


def csr_matrix(crow: Tensor, col: Tensor, val: Tensor, shape: Tuple[int, int]) -> Tensor:
    """A CSR tensor, without PyTorch's one-off notices ("beta", "checks disabled"):
    rows here are built valid (columns sorted and distinct), so checks are skipped."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Sparse (CSR tensor support|invariant checks)')
        return torch.sparse_csr_tensor(crow, col, val, shape, check_invariants=False)


class SparseRowsTimesDense(torch.autograd.Function):
    """``S @ dense``, ``S`` the CSR matrix ``(crow, col, val)`` with ``dense.size(0)`` columns.

    Only ``dense`` gets a gradient: ``S^T @ grad``. PyTorch's own backward of a
    CSR product transposes ``S`` through a generic, much slower path; here
    ``S^T`` is built directly by a stable sort of the entries by column.
    """

    @staticmethod
    def forward(ctx, crow: Tensor, col: Tensor, val: Tensor, dense: Tensor) -> Tensor:
        ctx.save_for_backward(crow, col, val)
        ctx.num_cols = dense.size(0)
        return csr_matrix(crow, col, val, (crow.numel() - 1, dense.size(0))) @ dense

    @staticmethod
    def backward(ctx, grad: Tensor):
        crow, col, val = ctx.saved_tensors
        num_rows = crow.numel() - 1
        row = torch.repeat_interleave(
            torch.arange(num_rows, device=crow.device), crow.diff())
        order = col.argsort(stable=True)  # keeps each new row's columns sorted
        crow_t = col.new_zeros(ctx.num_cols + 1)
        crow_t[1:] = torch.bincount(col, minlength=ctx.num_cols).cumsum(0)
        transposed = csr_matrix(crow_t, row[order], val[order], (ctx.num_cols, num_rows))
        return None, None, None, transposed @ grad.contiguous()


def csr_from_dense(weights: Tensor, pixels: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """``(rows, k)`` weights / pixel indices -> CSR ``(crow, col, val)`` of the non-zeros."""
    keep = weights != 0
    crow = keep.new_zeros(keep.size(0) + 1, dtype=torch.long)
    crow[1:] = keep.sum(1).cumsum(0)
    return crow, pixels[keep], weights[keep]


@MODELS.register_module()
class ScratchRoIAlign(nn.Module):
    """RoIAlign, a drop-in for ``mmcv.ops.RoIAlign`` (same arguments, same numbers).

    ``forward(input, rois)``: ``input`` ``(N, C, H, W)``, ``rois`` ``(n, 5)`` rows
    ``[batch_idx, x1, y1, x2, y2]`` in image pixels -> ``(n, C, out_h, out_w)``.

    Each RoI, scaled to the map (``x * spatial_scale - 0.5`` with ``aligned``, so
    that pixel centres sit at integer + 0.5), is cut into ``out_h x out_w`` bins;
    each bin takes ``gh x gw`` bilinear samples on a regular grid
    (``g = sampling_ratio``, or ``ceil(bin size)`` when it is 0) and outputs::

        avg:  sum(samples) / max(gh * gw, 1)        max:  max(-10000, samples)

    (see :func:`axis_samples` for the sample positions and border rule). Without
    ``aligned`` a RoI is at least 1 x 1 pixel; with it, a 0-size RoI has no sample
    and gives 0, and a negative size is an error, as in mmcv.

    Bilinear weights factor into a y part and an x part, so the per-axis weights
    of all RoIs are computed at once and their products, the weight of every
    feature pixel in every bin, form a sparse ``(n * out_h * out_w, N * H * W)``
    matrix. One sparse product with the channels-last features gives every bin's
    ``C`` values; autograd's gradient for ``input`` is the transposed product.
    Avg mode merges a bin's samples into distinct pixels first (fewer
    non-zeros); max mode keeps one row per sample and takes the largest per bin
    (the gradient goes to the first sample that reaches it, as in mmcv).

    Args:
        output_size: ``(out_h, out_w)`` or one int for both.
        spatial_scale: feature map size / image size (``1 / stride``).
        sampling_ratio: samples per bin along each axis; 0: ``ceil(bin size)``.
        pool_mode: ``'avg'`` or ``'max'`` within a bin.
        aligned: shift by half a pixel (Detectron2's RoIAlign) instead of the
            legacy, unshifted sampling.
        use_torchvision: mmcv then calls torchvision's ``roi_align``, which only
            averages; here it likewise means avg mode, whatever ``pool_mode`` says.
    """

    @deprecated_api_warning({'out_size': 'output_size', 'sample_num': 'sampling_ratio'},
                            cls_name='ScratchRoIAlign')
    def __init__(self, output_size: Union[int, Tuple[int, int]], spatial_scale: float = 1.0,
                 sampling_ratio: int = 0, pool_mode: str = 'avg', aligned: bool = True,
                 use_torchvision: bool = False):
        super().__init__()
        if pool_mode not in ('avg', 'max'):
            raise ValueError(f"pool_mode must be 'avg' or 'max', got {pool_mode!r}")
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.pool_mode = pool_mode
        self.aligned = aligned
        self.use_torchvision = use_torchvision

    @float32_under_autocast
    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        num_images, channels, height, width = input.shape
        out_h, out_w = self.output_size
        rois = rois.to(input.dtype)
        n = rois.size(0)
        # mmcv receives the scale as a C float.
        scale = torch.tensor(self.spatial_scale, dtype=torch.float32).item()
        box = rois[:, 1:] * scale - (0.5 if self.aligned else 0.0)
        size = box[:, 2:] - box[:, :2]  # (n, 2): w, h
        if self.aligned:
            if bool((size < 0).any()):
                raise ValueError('RoIs in RoIAlign cannot have negative size')
        else:
            size = size.clamp(min=1)  # the legacy mode's 1-pixel minimum
        if self.sampling_ratio > 0:
            grid = torch.full_like(size, self.sampling_ratio, dtype=torch.long)
        else:
            grid = (size / size.new_tensor([out_w, out_h])).ceil().long()
        ys = axis_samples(box[:, 1], size[:, 1], out_h, grid[:, 1], height)
        xs = axis_samples(box[:, 0], size[:, 0], out_w, grid[:, 0], width)
        # Pixel p of image b is row b * H * W + p of the channels-last features
        # (a free view when the input already is channels-last).
        image_base = rois[:, 0].long() * (height * width)
        features = input.permute(0, 2, 3, 1).reshape(num_images * height * width, channels)

        if self.pool_mode == 'avg' or self.use_torchvision:
            rows, wy = merge_taps(*ys[:4], grid[:, 1])  # (n, out_h, Ky)
            cols, wx = merge_taps(*xs[:4], grid[:, 0])  # (n, out_w, Kx)
            # (n, out_h, out_w, Ky, Kx): every pixel weight of every bin.
            weights = wy[:, :, None, :, None] * wx[:, None, :, None, :]
            pixels = ((image_base[:, None, None, None, None]
                       + rows[:, :, None, :, None] * width) + cols[:, None, :, None, :])
            crow, col, val = csr_from_dense(weights.flatten(3).flatten(0, 2),
                                            pixels.flatten(3).flatten(0, 2))
            pooled = SparseRowsTimesDense.apply(crow, col, val, features)
        else:
            pooled = self._max_pool(ys, xs, grid, image_base, width, features)
        return pooled.view(n, out_h, out_w, channels).permute(0, 3, 1, 2).contiguous()

    def _max_pool(self, ys, xs, grid, image_base, width, features):
        """``(n * out_h * out_w, C)``: per bin, the largest sample (at least -10000).

        One sparse row per used sample (its 4 bilinear corners; a clamped corner
        has weight 0 and drops out, so columns stay distinct), in bin order, then
        the first maximum of each bin's ``gh * gw`` consecutive samples.
        """
        y_lo, y_hi, wy_lo, wy_hi, y_used = ys
        x_lo, x_hi, wx_lo, wx_hi, x_used = xs
        # (n, out_h, Gh, 2) rows / weights, (n, out_w, Gw, 2) columns / weights
        rows = torch.stack((y_lo, y_hi), -1)
        wy = torch.stack((wy_lo, wy_hi), -1)
        cols = torch.stack((x_lo, x_hi), -1)
        wx = torch.stack((wx_lo, wx_hi), -1)
        # -> (n, out_h, out_w, Gh, Gw, 2, 2): sample (iy, ix) of bin (p, q), corner (a, b)
        weights = wy[:, :, None, :, None, :, None] * wx[:, None, :, None, :, None, :]
        pixels = ((image_base[:, None, None, None, None, None, None]
                   + rows[:, :, None, :, None, :, None] * width)
                  + cols[:, None, :, None, :, None, :])
        used = y_used[:, :, None, :, None] & x_used[:, None, :, None, :]
        crow, col, val = csr_from_dense(weights[used].flatten(1), pixels[used].flatten(1))
        samples = SparseRowsTimesDense.apply(crow, col, val, features)
        out_h, out_w = self.output_size
        per_bin = (grid[:, 0] * grid[:, 1]).repeat_interleave(out_h * out_w)
        best, winner = first_max(samples.detach(), self._bin_groups(per_bin), per_bin.numel(),
                                 MAX_MODE_FLOOR, samples.requires_grad)
        return pick_winners(samples, best, winner)

    @staticmethod
    def _bin_groups(per_bin: Tensor):
        """``(bins, samples)`` per sample count ``k``: the bins with ``k`` samples and
        their rows ``(B, k)`` of the samples, which come bin after bin."""
        first = per_bin.cumsum(0) - per_bin
        for k, bins in bins_by(per_bin):
            yield bins, first[bins][:, None] + torch.arange(k, device=per_bin.device)

    def __repr__(self):
        return (f'{self.__class__.__name__}(output_size={self.output_size}, '
                f'spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, '
                f'pool_mode={self.pool_mode}, aligned={self.aligned}, '
                f'use_torchvision={self.use_torchvision})')
