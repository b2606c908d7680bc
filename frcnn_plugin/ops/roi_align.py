"""RoI pooling (the Korean walkthrough, '7. RoI Pooling'; the step-by-step PyTorch
tutorial, 'Fast R-CNN'; docs/references.md) in the RoIAlign form mmdet's Faster R-CNN uses.

The tutorials quantise each proposal to the stride-16 grid and run
``nn.AdaptiveMaxPool2d(7)`` on it, one RoI at a time in a Python loop. RoIAlign
(Mask R-CNN) drops the quantisation: each of the ``7 x 7`` bins averages (or maxes)
bilinear samples taken at exact, fractional positions. :func:`roi_align` is that
algorithm for all RoIs at once, equal to ``mmcv.ops.RoIAlign``; ``ScratchRoIAlign``
runs it, with a faster, leaner path for the average mode mmdet's configs use
(:func:`roi_align_avg_sparse`).
"""
from typing import Tuple, Union

import numpy as np
import torch
from mmdet.registry import MODELS
from mmengine.utils import deprecated_api_warning
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from . import device
from .autocast import float32_under_autocast

# mmcv's max mode starts every bin's running maximum here (not at -inf), so a bin
# with no sample, or whose samples are all below it, outputs this value.
MAX_MODE_FLOOR = -10000.0
# RoIs per call of the plain algorithm in max mode (see ScratchRoIAlign.forward).
MAX_MODE_CHUNK = 16


def axis_samples(start: Tensor, size: Tensor, bins: int, grid: Tensor, max_grid: int,
                 length: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Bilinear taps of the samples along one axis (x or y) of every RoI.

    ``start``, ``size`` ``(n,)``: the RoI on this axis, in feature pixels;
    ``grid`` ``(n,)``: samples per bin, ``max_grid`` (at least 1) their largest;
    ``length``: the feature map's extent.
    Sample ``i`` of bin ``p`` sits at::

        pos = start + p * bin + (i + 0.5) * bin / grid        bin = size / bins

    with mmcv's float operations in mmcv's order (a last-bit difference could move
    a sample across the ``length`` border, where the value jumps to 0). A sample
    outside ``[-1, length]`` reads 0; inside, ``pos`` is clamped to ``[0, length - 1]``
    and split between pixel ``lo = floor(pos)`` (weight ``1 - frac``) and ``hi = lo + 1``
    (weight ``frac``), both ``lo`` at the last pixel.

    Returns ``lo, hi`` (long), ``w_lo, w_hi`` and ``used`` (bool), all
    ``(n, bins, max_grid)``: RoIs with fewer samples are padded, ``used`` is False
    there and the weights are 0 (as they are outside the map).
    """
    dtype = start.dtype
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


def sample_taps(rois: Tensor, spatial_scale: float, output_size: Tuple[int, int],
                sampling_ratio: int, aligned: bool, height: int, width: int):
    """Every RoI's samples: ``rois (K, 5)`` -> the :func:`axis_samples` taps along y
    ``(K, PH, IY)`` and along x ``(K, PW, IX)``, and ``grid (K, 2)``, the samples per bin
    along x and y (``sampling_ratio``, or ``ceil(bin size)`` when it is 0)."""
    out_h, out_w = output_size
    # mmcv receives the scale as a C float.
    scale = float(np.float32(spatial_scale))
    box = rois[:, 1:] * scale - (0.5 if aligned else 0.0)      # [K, 4]
    size = box[:, 2:] - box[:, :2]                              # [K, 2]: w, h
    if aligned:
        # mmcv's CPU kernel rejects a negative size. Its CUDA kernel does not check
        # (such a RoI has no sample: it pools 0, here too), and on a GPU the check
        # would wait for the device (see .device).
        if device.host_reads_are_cheap(size) and bool((size < 0).any()):
            raise ValueError('RoIs in RoIAlign cannot have negative size')
    else:
        size = size.clamp(min=1)  # the legacy mode's 1-pixel minimum
    if sampling_ratio > 0:
        grid = torch.full_like(size, sampling_ratio, dtype=torch.long)
        max_w, max_h = sampling_ratio, sampling_ratio
    else:
        grid = (size / size.new_tensor([out_w, out_h])).ceil().long()
        # The samples are padded to the most of any RoI, read once for both axes.
        max_w, max_h = grid.amax(0).clamp(min=1).tolist() if grid.numel() else (1, 1)
    ys = axis_samples(box[:, 1], size[:, 1], out_h, grid[:, 1], max_h, height)
    xs = axis_samples(box[:, 0], size[:, 0], out_w, grid[:, 0], max_w, width)
    return ys, xs, grid


def roi_align(input: Tensor, rois: Tensor, output_size: Tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = 0, pool_mode: str = 'avg',
              aligned: bool = True) -> Tensor:
    """RoIAlign, the plain algorithm: ``input (N, C, H, W)``, ``rois (K, 5)`` rows
    ``[batch_idx, x1, y1, x2, y2]`` in image pixels -> ``(K, C, PH, PW)``.

    Every bilinear sample of every bin of every RoI is read at once (its 4 corner
    pixels, weighted), then each bin averages its ``gh x gw`` samples or takes their
    maximum (at least ``MAX_MODE_FLOOR``; the first maximal sample gets the gradient,
    as in mmcv). Memory: ``K x PH x PW x IY x IX x C`` values, ``IY x IX`` the largest
    grid of any RoI.
    """
    height, width = input.shape[-2:]
    rois = rois.to(input.dtype)
    (y_lo, y_hi, wy_lo, wy_hi, y_used), (x_lo, x_hi, wx_lo, wx_hi, x_used), grid = \
        sample_taps(rois, spatial_scale, output_size, sampling_ratio, aligned, height, width)
    features = input.permute(0, 2, 3, 1)                        # [N, H, W, C]
    image = rois[:, 0].long()[:, None, None, None, None]        # [K, 1, 1, 1, 1]

    def corner(y: Tensor, wy: Tensor, x: Tensor, wx: Tensor) -> Tensor:
        """One bilinear corner of every sample, weighted: [K, PH, IY, PW, IX, C]."""
        y, wy = y[:, :, :, None, None], wy[:, :, :, None, None]  # [K, PH, IY, 1, 1]
        x, wx = x[:, None, None], wx[:, None, None]             # [K, 1, 1, PW, IX]
        return (wy * wx)[..., None] * features[image, y, x]

    # mmcv's sum, in its order: w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4.
    samples = (corner(y_lo, wy_lo, x_lo, wx_lo) + corner(y_lo, wy_lo, x_hi, wx_hi)
               + corner(y_hi, wy_hi, x_lo, wx_lo) + corner(y_hi, wy_hi, x_hi, wx_hi))
    samples = samples.permute(0, 1, 3, 5, 2, 4).flatten(4)      # [K, PH, PW, C, IY * IX]
    used = y_used[:, :, None, :, None] & x_used[:, None, :, None, :]  # [K, PH, PW, IY, IX]
    used = used.flatten(3)[:, :, :, None, :]                    # [K, PH, PW, 1, IY * IX]
    if pool_mode == 'avg':
        count = (grid[:, 0] * grid[:, 1]).clamp(min=1).to(input.dtype)  # [K]
        pooled = samples.masked_fill(~used, 0).sum(-1) / count[:, None, None, None]
    else:
        # mmcv's running maximum starts at the floor and moves only to a strictly
        # larger sample: the floor first, then max(), whose ties go to the first.
        floor = samples.new_full(samples.shape[:-1] + (1,), MAX_MODE_FLOOR)
        pooled = torch.cat((floor, samples.masked_fill(~used, float('-inf'))), -1).max(-1)[0]
    return pooled.permute(0, 3, 1, 2).contiguous()              # [K, C, PH, PW]


# The fast path of the average mode: the plain algorithm pads every RoI to the largest
# sampling grid, gigabytes per temporary on an FPN batch (docs/benchmark.md, 'Fast
# paths'); this path reads only the pixels the samples touch. Bilinear weights factor
# into a y part and an x part, so the weights of every feature pixel in every bin form a
# sparse (K * PH * PW, N * H * W) matrix; one sparse product with the channels-last
# features gives every bin's C values, and autograd's gradient is the transposed product.

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


def roi_align_avg_sparse(input: Tensor, rois: Tensor, output_size: Tuple[int, int],
                         spatial_scale: float = 1.0, sampling_ratio: int = 0,
                         aligned: bool = True) -> Tensor:
    """:func:`roi_align` in avg mode as one sparse-times-dense product: each bin's row
    holds the summed bilinear weight of every feature pixel its samples touch
    (:func:`merge_taps`), divided by its sample count. Work and memory: the non-zero
    weights times ``C`` (what the C kernel reads), whatever the RoIs' sizes."""
    num_images, channels, height, width = input.shape
    out_h, out_w = output_size
    rois = rois.to(input.dtype)
    ys, xs, grid = sample_taps(rois, spatial_scale, output_size, sampling_ratio, aligned,
                               height, width)
    rows, wy = merge_taps(*ys[:4], grid[:, 1])                  # [K, PH, TY]
    cols, wx = merge_taps(*xs[:4], grid[:, 0])                  # [K, PW, TX]
    weights = wy[:, :, None, :, None] * wx[:, None, :, None, :]  # [K, PH, PW, TY, TX]
    # Pixel p of image b is row b * H * W + p of the channels-last features
    # (a free view when the input already is channels-last).
    image_base = rois[:, 0].long() * (height * width)
    pixels = ((image_base[:, None, None, None, None] + rows[:, :, None, :, None] * width)
              + cols[:, None, :, None, :])                      # [K, PH, PW, TY, TX]
    features = input.permute(0, 2, 3, 1).reshape(num_images * height * width, channels)
    weights, pixels = weights.flatten(3).flatten(0, 2), pixels.flatten(3).flatten(0, 2)
    bin_, tap = (weights != 0).nonzero().t()                    # the non-zeros, row-major
    # Rows in order, each row's pixels sorted and distinct: coalesced as built. The
    # invariant checks are declined explicitly (they would cost a pass over the entries).
    with torch.sparse.check_sparse_tensor_invariants(enable=False):
        matrix = torch.sparse_coo_tensor(
            torch.stack((bin_, pixels[bin_, tap])), weights[bin_, tap],
            (weights.size(0), features.size(0)), is_coalesced=True)
        pooled = matrix @ features                              # [K * PH * PW, C]
    return pooled.view(-1, out_h, out_w, channels).permute(0, 3, 1, 2).contiguous()


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
    and gives 0, and a negative size is an error, as in mmcv. The max mode runs
    :func:`roi_align` (``MAX_MODE_CHUNK`` RoIs at a time), the avg mode
    :func:`roi_align_avg_sparse`.

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
        if self.pool_mode == 'avg' or self.use_torchvision:
            return roi_align_avg_sparse(input, rois, self.output_size, self.spatial_scale,
                                        self.sampling_ratio, self.aligned)
        # No detector config pools by max, so no fast path: the plain algorithm, a chunk
        # of RoIs at a time to bound its memory (about 20 MB per large FPN RoI).
        chunks = rois.split(MAX_MODE_CHUNK) if rois.size(0) else (rois,)
        return torch.cat([roi_align(input, chunk, self.output_size, self.spatial_scale,
                                    self.sampling_ratio, 'max', self.aligned)
                          for chunk in chunks])

    def __repr__(self):
        return (f'{self.__class__.__name__}(output_size={self.output_size}, '
                f'spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, '
                f'pool_mode={self.pool_mode}, aligned={self.aligned}, '
                f'use_torchvision={self.use_torchvision})')
