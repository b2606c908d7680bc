"""RoI pooling (the Korean walkthrough, '7. RoI Pooling'; the step-by-step PyTorch
tutorial, 'Fast R-CNN'; docs/references.md): cut every RoI's features out of the map.

The tutorials pool the ``(128, 5)`` ``[batch_idx, x1, y1, x2, y2]`` RoIs from the one
stride-16 VGG map. With a feature pyramid (FPN) each RoI is first sent to the
level whose stride suits its size, then pooled there. This is mmdet's
``SingleRoIExtractor`` with the plugin's own RoI layers.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmcv import ops as mmcv_ops
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..ops import roi_align, roi_pool  # noqa: F401  register ScratchRoIAlign, ScratchRoIPool


@MODELS.register_module()
class ScratchRoIExtractor(BaseModule):
    """Pools each RoI from one level of a feature pyramid, a drop-in for mmdet's
    ``SingleRoIExtractor`` (same arguments, attributes and outputs).

    ``forward(feats, rois, roi_scale_factor=None)``: ``feats`` a tuple of
    ``(N, C, H_l, W_l)`` maps with strides ``featmap_strides``; ``rois`` ``(n, 5)``
    ``[batch_idx, x1, y1, x2, y2]`` in image pixels -> ``(n, out_channels, h, w)``.

    A RoI of scale ``s = sqrt(w * h)`` goes to level (FPN, eq. 1, with
    ``finest_scale`` = 56 for ``k0 = 4`` at 224 pixels)::

        level = clamp(floor(log2(s / finest_scale + 1e-6)), 0, num_levels - 1)

    i.e. ``s < 112`` -> 0, ``[112, 224)`` -> 1, ``[224, 448)`` -> 2, else 3. With
    ``roi_scale_factor`` the RoIs are then grown about their centres
    (:meth:`roi_rescale`) before pooling, the level staying that of the
    original box. A single level pools every RoI as given (mmdet ignores
    ``roi_scale_factor`` there too).

    Args:
        roi_layer: ``dict(type=..., **kwargs)``; ``type`` a name registered in
            ``MODELS`` (ours: ``'ScratchRoIAlign'``, ``'ScratchRoIPool'``), else the
            name of an ``mmcv.ops`` layer (``'RoIAlign'`` is mmcv's, as in mmdet's
            extractor), or a class. One layer per level is built with
            ``spatial_scale = 1 / stride``.
        out_channels: channels of the features (and the output).
        featmap_strides: stride of each level, finest first.
        finest_scale: RoI scale up to which (``< 2 * finest_scale``) level 0 is used.
        init_cfg: passed to ``BaseModule``; there is nothing to initialise.
    """

    def __init__(self, roi_layer: ConfigType, out_channels: int, featmap_strides: List[int],
                 finest_scale: int = 56, init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.roi_layers = self.build_roi_layers(roi_layer, featmap_strides)
        self.out_channels = out_channels
        self.featmap_strides = featmap_strides
        self.finest_scale = finest_scale

    @property
    def num_inputs(self) -> int:
        """Number of feature levels the extractor reads."""
        return len(self.featmap_strides)

    def build_roi_layers(self, layer_cfg: ConfigType,
                         featmap_strides: Sequence[int]) -> nn.ModuleList:
        """One RoI layer per level, ``spatial_scale = 1 / stride``."""
        cfg = dict(layer_cfg)
        layer_type = cfg.pop('type')
        if isinstance(layer_type, str):
            layer_cls = MODELS.get(layer_type) or getattr(mmcv_ops, layer_type, None)
            if layer_cls is None:
                raise KeyError(f'unknown RoI layer type {layer_type!r}: neither registered '
                               "in MODELS (ours: 'ScratchRoIAlign', 'ScratchRoIPool') nor "
                               'in mmcv.ops')
        else:
            layer_cls = layer_type
        return nn.ModuleList(layer_cls(spatial_scale=1 / stride, **cfg)
                             for stride in featmap_strides)

    def map_roi_levels(self, rois: Tensor, num_levels: int) -> Tensor:
        """``(n, 5)`` RoIs -> ``(n,)`` long pyramid level of each (see the class doc)."""
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        level = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return level.clamp(min=0, max=num_levels - 1).long()

    def roi_rescale(self, rois: Tensor, scale_factor: float) -> Tensor:
        """``(n, 5)`` RoIs scaled by ``scale_factor`` about their centres (batch index kept)."""
        centre = (rois[:, 1:3] + rois[:, 3:5]) * 0.5
        half = (rois[:, 3:5] - rois[:, 1:3]) * scale_factor * 0.5
        return torch.cat((rois[:, :1], centre - half, centre + half), dim=1)

    def forward(self, feats: Tuple[Tensor], rois: Tensor,
                roi_scale_factor: Optional[float] = None) -> Tensor:
        rois = rois.type_as(feats[0])  # e.g. half features under AMP
        num_levels = len(feats)
        if num_levels == 1:
            return self.roi_layers[0](feats[0], rois)

        levels = self.map_roi_levels(rois, num_levels)
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)
        out_h, out_w = self.roi_layers[0].output_size
        roi_feats = feats[0].new_zeros(rois.size(0), self.out_channels, out_h, out_w)
        # A loop over the (4-5) levels, each pooling all its RoIs at once. A RoI
        # whose scale is not finite (a degenerate box) maps to no level and stays 0.
        for layer, feat, inds in zip(self.roi_layers, feats, self._by_level(levels, num_levels)):
            # Also run without RoIs: the empty output still links this level into
            # the autograd graph, so every level gets a (zero) gradient, which
            # distributed training needs to stay in step.
            roi_feats[inds] = layer(feat, rois[inds])
        return roi_feats

    @staticmethod
    def _by_level(levels: Tensor, num_levels: int) -> Tuple[Tensor, ...]:
        """``(n,)`` levels -> per level, the indices of its RoIs, ascending (what
        ``nonzero(levels == level)`` gives). One stable sort and one read of the counts
        instead of a nonzero, and its wait for the device, per level; a level outside
        ``[0, num_levels)`` (no level) is sorted last and dropped."""
        key = levels.masked_fill((levels < 0) | (levels >= num_levels), num_levels)
        counts = torch.bincount(key, minlength=num_levels + 1).tolist()
        return key.argsort(stable=True).split(counts)[:num_levels]
