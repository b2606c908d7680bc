"""Whole-detector parity: Faster R-CNN built from our components trains and predicts as
the same detector built from mmdet's, given the same weights and seeds."""
import torch
from detector_parity import assert_same_training, detector_batch, retyped, train_and_predict
from mmengine.config import Config
from mmengine.hub import get_config

import frcnn_plugin  # noqa: F401  registers the Scratch* types
from frcnn_plugin.swap import MMDET_TYPES, SCRATCH_TYPES
from mmdet.registry import MODELS


def spell_out_iou_calculators(model_cfg):
    """Name the assigners' default IoU calculator, so it is retyped with the rest."""
    for stage in ('rpn', 'rcnn'):
        model_cfg.train_cfg[stage].assigner.iou_calculator = dict(type='BboxOverlaps2D')


def test_r50_fpn_with_all_our_components_is_mmdets_detector(repo):
    ours = Config.fromfile(repo / 'configs/_base_/models/faster-rcnn_r50_fpn_scratch.py').model
    theirs = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    spell_out_iou_calculators(theirs)
    # Our config is mmdet's model with every component retyped, nothing else changed
    # (but the scope mmengine notes on what a config inherits with `mmdet::`).
    mapped_back = retyped(ours, MMDET_TYPES)
    assert mapped_back.pop('_scope_') == 'mmdet'
    assert mapped_back == theirs
    assert not any(f"'{name}'" in str(ours) for name in SCRATCH_TYPES)
    ours.backbone.init_cfg = theirs.backbone.init_cfg = None

    torch.manual_seed(0)
    state_dict = MODELS.build(theirs).state_dict()  # loads strictly into ours too
    batch = detector_batch()
    assert_same_training(train_and_predict(ours, state_dict, batch),
                         train_and_predict(theirs, state_dict, batch), rel=1e-4)


def test_seed_vgg16_model_is_its_mmdet_counterpart(repo):
    ours = Config.fromfile(repo / 'configs/_base_/models/faster-rcnn_vgg16.py').model
    ours.backbone.init_cfg = None
    theirs = retyped(ours, MMDET_TYPES)
    assert 'Scratch' not in str(theirs).replace('ScratchVGG16', '')  # mmdet has no VGG

    torch.manual_seed(0)
    state_dict = MODELS.build(theirs).state_dict()
    # Anchors of 128-512 pixels and allowed_border 0: images large enough to hold some.
    batch = detector_batch(sizes=((208, 256, 3), (192, 224, 2)), num_classes=20)
    assert_same_training(train_and_predict(ours, state_dict, batch),
                         train_and_predict(theirs, state_dict, batch), rel=1e-4)
