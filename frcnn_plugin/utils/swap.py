"""Swapping components by type name: our component for each mmdet one it replaces, the
way back (the parity tests' and the benchmark's oracles), and the config rewrite that
swaps them (``configs/_base_/models/faster-rcnn_r50_fpn_scratch.py`` spells the same swap
out for readers).
"""
import copy

import torchvision
from torch.nn.modules.utils import _pair

#: mmdet's type -> ours, for every component this plugin replaces (mmcv's RoIPool has
#: no CPU kernel, so ``ScratchRoIPool`` replaces it on the tutorials' VGG16 model only).
SCRATCH_TYPES = {
    'AnchorGenerator': 'ScratchAnchorGenerator',
    'BboxOverlaps2D': 'ScratchBboxOverlaps2D',
    'DeltaXYWHBBoxCoder': 'ScratchDeltaXYWHBBoxCoder',
    'MaxIoUAssigner': 'ScratchMaxIoUAssigner',
    'RandomSampler': 'ScratchRandomSampler',
    'RPNHead': 'ScratchRPNHead',
    'StandardRoIHead': 'ScratchRoIHead',
    'SingleRoIExtractor': 'ScratchRoIExtractor',
    'RoIAlign': 'ScratchRoIAlign',
    'Shared2FCBBoxHead': 'ScratchBBoxHead',
}


class TorchvisionRoIPool(torchvision.ops.RoIPool):
    """mmcv's RoIPool has no CPU kernel: torchvision's stands in for it as the oracle of
    ``ScratchRoIPool``, with ``output_size`` a pair as mmdet's ``SingleRoIExtractor``
    reads it (it accepts a class as ``roi_layer.type``)."""

    def __init__(self, output_size, spatial_scale=1.0):
        super().__init__(_pair(output_size), spatial_scale)


#: ours -> mmdet's (RoIPool: torchvision's), to build a config written with our types as
#: mmdet's own detector: ``retyped(cfg, MMDET_TYPES)``.
MMDET_TYPES = {**{ours: theirs for theirs, ours in SCRATCH_TYPES.items()},
               'ScratchRoIPool': TorchvisionRoIPool}


def retyped(cfg, mapping):
    """A deep copy of config ``cfg`` (nested dicts / ConfigDicts and lists) whose
    ``type`` values found in ``mapping`` are replaced, e.g.
    ``retyped(model_cfg, SCRATCH_TYPES)``. Types left implicit (mmdet's assigners
    default their IoU calculator) are not seen: spell them out to swap them."""
    cfg = copy.deepcopy(cfg)

    def visit(node):
        if isinstance(node, dict):
            if isinstance(node.get('type'), str) and node['type'] in mapping:
                node['type'] = mapping[node['type']]
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)
    visit(cfg)
    return cfg
