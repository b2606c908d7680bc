"""frcnn_plugin.utils.swap: the type map and the config rewrite the parity tests and the
benchmark use."""
import mmcv.ops
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.config import ConfigDict

import frcnn_plugin  # noqa: F401  registers the Scratch* types
from frcnn_plugin.utils.swap import SCRATCH_TYPES, retyped


def test_every_name_is_registered_on_both_sides():
    for theirs, ours in SCRATCH_TYPES.items():
        if theirs == 'RoIAlign':  # mmdet's extractor takes its RoI layers from mmcv.ops
            assert hasattr(mmcv.ops, theirs) and MODELS.get(ours) is not None
            continue
        registry = MODELS if MODELS.get(theirs) is not None else TASK_UTILS
        assert registry.get(theirs) is not None and registry.get(ours) is not None, theirs


def test_retyped_rewrites_nested_types_and_leaves_the_input():
    cfg = ConfigDict(type='FasterRCNN', rpn_head=dict(
        type='RPNHead', anchor_generator=dict(type='AnchorGenerator', strides=[4])),
        train_cfg=dict(rpn=dict(assigner=dict(type='MaxIoUAssigner')),
                       stages=[dict(type='RandomSampler'), dict(type='Other')]))
    out = retyped(cfg, SCRATCH_TYPES)
    assert isinstance(out, ConfigDict) and out.type == 'FasterRCNN'
    assert out.rpn_head.type == 'ScratchRPNHead'
    assert out.rpn_head.anchor_generator == dict(type='ScratchAnchorGenerator', strides=[4])
    assert out.train_cfg.rpn.assigner.type == 'ScratchMaxIoUAssigner'
    assert [s['type'] for s in out.train_cfg.stages] == ['ScratchRandomSampler', 'Other']
    assert cfg.rpn_head.type == 'RPNHead'  # a copy, the input untouched
    back = retyped(out, {ours: theirs for theirs, ours in SCRATCH_TYPES.items()})
    assert back == cfg
