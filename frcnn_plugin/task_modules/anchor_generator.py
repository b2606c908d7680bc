"""Anchors: the boxes of every size and shape at every feature-map cell (the
step-by-step PyTorch tutorial, 'Anchor boxes'; docs/references.md).

The tutorial fills a ``(50 * 50 * 9, 4)`` array with three nested Python loops (cells,
ratios, scales). Here the ``A`` base anchors of a level are one outer product of
ratios and scales, and the grid adds the cell offsets to them by broadcasting:
the x coordinates once per column, the y coordinates once per row.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes
from torch import Tensor
from torch.nn.modules.utils import _pair

DeviceType = Union[str, torch.device]


@TASK_UTILS.register_module()
class ScratchAnchorGenerator:
    """Anchors ``[x1, y1, x2, y2]`` for each level of a feature pyramid.

    Drop-in for mmdet's ``AnchorGenerator``: same arguments, attributes, methods,
    anchor order and values.

    Base anchors of level ``l`` (one cell, ``A = len(ratios) * len(scales)`` boxes),
    with ``b = base_sizes[l]`` (default: the shorter stride) and ``r = h / w``::

        w = b * (1 / sqrt(r)) * scale        h = b * sqrt(r) * scale
        (cx, cy) = centers[l] or (center_offset * b, center_offset * b)
        base = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]      (A, 4)

    ordered, with mmdet's naming, ``scale_major=True``: the scales of the first
    ratio, then of the next ratio (the tutorials' order); ``False``: the ratios of the
    first scale, then of the next scale.

    The anchors of cell ``(i, j)`` (row ``i``, column ``j``) are the base anchors
    shifted by ``(j * stride_w, i * stride_h)``; a level's grid is
    ``(H * W * A, 4)`` in row-major cell order, the ``A`` anchors of a cell together
    (index ``(i * W + j) * A + a``), which is the order of the RPN head's outputs.

    Args:
        strides: one per level, an int or ``(stride_w, stride_h)``.
        ratios: height / width ratios.
        scales: anchor sizes in units of ``base_size``; or give
            ``octave_base_scale`` and ``scales_per_octave`` instead (RetinaNet),
            ``scales = octave_base_scale * 2 ** (k / scales_per_octave)``.
        base_sizes: per level, defaults to ``min(stride)``.
        scale_major: order of the base anchors, see above.
        centers: per level ``(cx, cy)`` of the base anchors inside a cell;
            only with ``center_offset == 0``.
        center_offset: centre at ``center_offset * base_size`` (0.5 is the pixel
            centre the tutorials use, mmdet's default 0 is the cell corner).
        use_box_type: return ``HorizontalBoxes`` instead of tensors.
    """

    def __init__(self,
                 strides: Union[List[int], List[Tuple[int, int]]],
                 ratios: List[float],
                 scales: Optional[List[int]] = None,
                 base_sizes: Optional[List[int]] = None,
                 scale_major: bool = True,
                 octave_base_scale: Optional[int] = None,
                 scales_per_octave: Optional[int] = None,
                 centers: Optional[List[Tuple[float, float]]] = None,
                 center_offset: float = 0.,
                 use_box_type: bool = False) -> None:
        # Same checks, and same exception types, as mmdet, so configs that fail
        # there fail here too.
        if center_offset != 0:
            assert centers is None, \
                f'centers cannot be set when center_offset != 0, {centers} is given.'
        if not 0 <= center_offset <= 1:
            raise ValueError(f'center_offset should be in range [0, 1], {center_offset} is given.')
        if centers is not None:
            assert len(centers) == len(strides), \
                f'one center per stride needed, got {strides} and {centers}'
        self.strides = [_pair(stride) for stride in strides]
        self.base_sizes = ([min(stride) for stride in self.strides]
                           if base_sizes is None else base_sizes)
        assert len(self.base_sizes) == len(self.strides), \
            f'one base size per stride needed, got {self.strides} and {self.base_sizes}'
        octave = octave_base_scale is not None and scales_per_octave is not None
        assert octave ^ (scales is not None), \
            'give either scales or octave_base_scale with scales_per_octave'
        if scales is None:
            # float64 powers then float32, as mmdet's numpy computation: equal scales.
            exponents = torch.arange(scales_per_octave, dtype=torch.float64) / scales_per_octave
            scales = (2 ** exponents) * octave_base_scale
        self.scales = torch.as_tensor(scales, dtype=torch.float32)
        self.octave_base_scale = octave_base_scale
        self.scales_per_octave = scales_per_octave
        self.ratios = torch.as_tensor(ratios, dtype=torch.float32)
        self.scale_major = scale_major
        self.centers = centers
        self.center_offset = center_offset
        self.base_anchors = self.gen_base_anchors()
        self.use_box_type = use_box_type

    @property
    def num_base_anchors(self) -> List[int]:
        """Anchors per feature-map cell, per level (alias of ``num_base_priors``)."""
        return self.num_base_priors

    @property
    def num_base_priors(self) -> List[int]:
        """Anchors per feature-map cell, per level."""
        return [anchors.size(0) for anchors in self.base_anchors]

    @property
    def num_levels(self) -> int:
        """Number of feature levels."""
        return len(self.strides)

    def gen_base_anchors(self) -> List[Tensor]:
        """The ``(A, 4)`` anchors of the cell at the origin, per level."""
        # w = b / sqrt(r), h = b * sqrt(r): the area stays (b * scale)^2 for every
        # ratio.
        h_ratios = self.ratios.sqrt()
        w_ratios = 1 / h_ratios
        base_anchors = []
        for level, base_size in enumerate(self.base_sizes):
            if self.centers is None:
                cx = cy = self.center_offset * base_size
            else:
                cx, cy = self.centers[level]
            half_w = 0.5 * self._sizes(base_size, w_ratios)
            half_h = 0.5 * self._sizes(base_size, h_ratios)
            base_anchors.append(
                torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1))
        return base_anchors

    def _sizes(self, base_size: float, ratio_term: Tensor) -> Tensor:
        """``(A,)`` widths (or heights): ``base_size * ratio_term * scale``, ratio by scale.

        Multiplied in mmdet's order, base size first, then the outer (slow) factor,
        then the inner one, so the float32 results are bit-identical to mmdet's.
        """
        if self.scale_major:  # all scales of the first ratio, then the next ratio
            return ((base_size * ratio_term)[:, None] * self.scales[None, :]).flatten()
        return ((base_size * self.scales)[:, None] * ratio_term[None, :]).flatten()

    def grid_priors(self, featmap_sizes: Sequence[Tuple[int, int]],
                    dtype: torch.dtype = torch.float32,
                    device: DeviceType = 'cuda') -> List[Tensor]:
        """Per level ``(H_l * W_l * A_l, 4)`` anchors for ``featmap_sizes`` ``[(H_l, W_l)]``."""
        assert len(featmap_sizes) == self.num_levels, \
            f'{self.num_levels} feature map sizes needed, got {len(featmap_sizes)}'
        return [self.single_level_grid_priors(size, level, dtype=dtype, device=device)
                for level, size in enumerate(featmap_sizes)]

    def single_level_grid_priors(self, featmap_size: Tuple[int, int], level_idx: int,
                                 dtype: torch.dtype = torch.float32,
                                 device: DeviceType = 'cuda') -> Tensor:
        """``(H * W * A, 4)`` anchors of level ``level_idx`` for a ``(H, W)`` map."""
        feat_h, feat_w = featmap_size
        stride_w, stride_h = self.strides[level_idx]
        base = self.base_anchors[level_idx].to(device=device, dtype=dtype)
        num_base = base.size(0)
        # The offsets are computed in `dtype` (as mmdet does: arange, cast, scale).
        shift_x = torch.arange(feat_w, device=device).to(dtype) * stride_w
        shift_y = torch.arange(feat_h, device=device).to(dtype) * stride_h
        # x1, x2 depend only on the column and y1, y2 only on the row: add the
        # offsets to the (A, 2 corners) coordinates once per column, (W, A, 2), and
        # once per row, (H, A, 2), then broadcast-copy both into the grid seen as
        # (H, W, A, corner, xy). Each value is still the one float addition
        # base + offset, but there are (H + W) * A * 2 additions instead of
        # H * W * A * 4, several times faster on large maps.
        corners = base.view(num_base, 2, 2)
        anchors = base.new_empty(feat_h, feat_w, num_base, 2, 2)
        anchors[..., 0] = shift_x[:, None, None] + corners[..., 0]
        anchors[..., 1] = (shift_y[:, None, None] + corners[..., 1])[:, None]
        anchors = anchors.view(-1, 4)
        return HorizontalBoxes(anchors) if self.use_box_type else anchors

    def sparse_priors(self, prior_idxs: Tensor, featmap_size: Tuple[int, int],
                      level_idx: int, dtype: torch.dtype = torch.float32,
                      device: DeviceType = 'cuda') -> Tensor:
        """Anchors ``(N, 4)`` at flat indices ``prior_idxs`` ``(N,)`` of the level's grid.

        Inverts ``index = (i * W + j) * A + a`` (indices past the grid wrap around
        to its first row, as in mmdet). As in mmdet, the offsets are cast
        to ``dtype`` and the float32 base anchors added, so the result has the
        promoted dtype.
        """
        feat_h, feat_w = featmap_size
        num_base = self.num_base_anchors[level_idx]
        stride_w, stride_h = self.strides[level_idx]
        cell = prior_idxs // num_base
        x = cell % feat_w * stride_w
        y = cell // feat_w % feat_h * stride_h
        shifts = torch.stack([x, y, x, y], dim=1).to(dtype).to(device)
        return shifts + self.base_anchors[level_idx][prior_idxs % num_base].to(device)

    def valid_flags(self, featmap_sizes: Sequence[Tuple[int, int]], pad_shape: Tuple,
                    device: DeviceType = 'cuda') -> List[Tensor]:
        """Per level ``(H_l * W_l * A_l,)`` bool: is the anchor's cell inside ``pad_shape``.

        A cell counts when it starts inside the padded image: the first
        ``ceil(pad_h / stride_h)`` rows and ``ceil(pad_w / stride_w)`` columns
        (capped at the map size). Batches pad images to a common size, so a small
        image's map has cells that only see padding; their anchors are ignored.
        """
        assert len(featmap_sizes) == self.num_levels, \
            f'{self.num_levels} feature map sizes needed, got {len(featmap_sizes)}'
        pad_h, pad_w = pad_shape[:2]
        flags = []
        for level, (feat_h, feat_w) in enumerate(featmap_sizes):
            stride_w, stride_h = self.strides[level]
            valid_size = (min(math.ceil(pad_h / stride_h), feat_h),
                          min(math.ceil(pad_w / stride_w), feat_w))
            flags.append(self.single_level_valid_flags(
                (feat_h, feat_w), valid_size, self.num_base_anchors[level], device=device))
        return flags

    def single_level_valid_flags(self, featmap_size: Tuple[int, int],
                                 valid_size: Tuple[int, int], num_base_anchors: int,
                                 device: DeviceType = 'cuda') -> Tensor:
        """``(H * W * A,)`` bool, true for the anchors of the top-left ``valid_size`` cells."""
        feat_h, feat_w = featmap_size
        valid_h, valid_w = valid_size
        assert valid_h <= feat_h and valid_w <= feat_w, \
            f'valid size {valid_size} exceeds the feature map {featmap_size}'
        rows = torch.arange(feat_h, device=device) < valid_h
        cols = torch.arange(feat_w, device=device) < valid_w
        cells = rows[:, None, None] & cols[None, :, None]  # (H, W, 1)
        return cells.expand(feat_h, feat_w, num_base_anchors).reshape(-1)

    def __repr__(self) -> str:
        fields = [('strides', self.strides), ('ratios', self.ratios),
                  ('scales', self.scales), ('base_sizes', self.base_sizes),
                  ('scale_major', self.scale_major),
                  ('octave_base_scale', self.octave_base_scale),
                  ('scales_per_octave', self.scales_per_octave),
                  ('num_levels', self.num_levels), ('centers', self.centers),
                  ('center_offset', self.center_offset)]
        body = ',\n'.join(f'    {name}={value}' for name, value in fields)
        return f'{type(self).__name__}(\n{body})'
