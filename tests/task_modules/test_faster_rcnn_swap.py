"""Our task modules swapped, by type name, into mmdet's own Faster R-CNN R50-FPN config:
the detector trains and, with the same weights and seeds, its losses and detections are
mmdet's own."""
import pytest
import torch
from detector_parity import assert_same_training, detector_batch, retyped, train_and_predict
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.hub import get_config

import frcnn_plugin  # noqa: F401  registers the Scratch* types
from frcnn_plugin.utils.swap import SCRATCH_TYPES

# The task modules among the swaps (the rest are MODELS).
SWAPS = {theirs: ours for theirs, ours in SCRATCH_TYPES.items() if TASK_UTILS.get(theirs)}


@pytest.fixture(scope='module')
def mmdet_model_cfg():
    cfg = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    cfg.backbone.init_cfg = None
    # mmdet's MaxIoUAssigner default, spelled out so it can be swapped too.
    for stage in ('rpn', 'rcnn'):
        cfg.train_cfg[stage].assigner.iou_calculator = dict(type='BboxOverlaps2D')
    return cfg


@pytest.fixture(scope='module')
def reference(mmdet_model_cfg):
    torch.manual_seed(0)
    state_dict = MODELS.build(mmdet_model_cfg).state_dict()
    return state_dict, train_and_predict(mmdet_model_cfg, state_dict, detector_batch())


@pytest.mark.parametrize('names', [[name] for name in SWAPS] + [list(SWAPS)],
                         ids=[*SWAPS, 'all'])
def test_swapped_detector_trains_as_mmdets(mmdet_model_cfg, reference, names):
    state_dict, expected = reference
    cfg = retyped(mmdet_model_cfg, {name: SWAPS[name] for name in names})
    assert sum(str(cfg).count(f"'{SWAPS[n]}'") for n in names) >= 1
    assert_same_training(train_and_predict(cfg, state_dict, detector_batch()), expected)
