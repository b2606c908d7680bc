"""Our task modules swapped, by type name, into mmdet's own Faster R-CNN R50-FPN config:
the detector trains and, with the same weights and seeds, its losses and detections are
mmdet's own."""
import copy

import pytest
import torch
from mmengine.hub import get_config
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

import frcnn_plugin  # noqa: F401  registers the Scratch* types
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample

SWAPS = {
    'AnchorGenerator': 'ScratchAnchorGenerator',
    'DeltaXYWHBBoxCoder': 'ScratchDeltaXYWHBBoxCoder',
    'MaxIoUAssigner': 'ScratchMaxIoUAssigner',
    'RandomSampler': 'ScratchRandomSampler',
    'BboxOverlaps2D': 'ScratchBboxOverlaps2D',
}


@pytest.fixture(scope='module')
def mmdet_model_cfg():
    cfg = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    cfg.backbone.init_cfg = None
    # mmdet's MaxIoUAssigner default, spelled out so it can be swapped too.
    for stage in ('rpn', 'rcnn'):
        cfg.train_cfg[stage].assigner.iou_calculator = dict(type='BboxOverlaps2D')
    return cfg


def swapped(cfg, names):
    """A copy of ``cfg`` with every ``type`` in ``names`` replaced by ours."""
    cfg = copy.deepcopy(cfg)

    def visit(node):
        if isinstance(node, dict):
            if node.get('type') in names:
                node['type'] = SWAPS[node['type']]
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)
    visit(cfg)
    return cfg


def batch():
    """Two small images with 1-4 gt boxes each (one image's boxes include a tiny one)."""
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for h, w, n in ((96, 128, 4), (112, 96, 1)):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.4, h * 0.4]) + 2
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], dim=1),
                                           labels=torch.randint(0, 80, (n,), generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def run(cfg, state_dict):
    """Two SGD steps (seeded identically), then predictions: losses and detections."""
    model = MODELS.build(cfg)
    model.load_state_dict(state_dict)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    losses = []
    for step in range(2):
        torch.manual_seed(step)  # the samplers draw from it
        losses.append(model.train_step(batch(), optim))
    model.eval()
    with torch.no_grad():
        predictions = model.test_step(batch())
    return losses, [p.pred_instances for p in predictions]


@pytest.fixture(scope='module')
def reference(mmdet_model_cfg):
    torch.manual_seed(0)
    state_dict = MODELS.build(mmdet_model_cfg).state_dict()
    return state_dict, run(mmdet_model_cfg, state_dict)


@pytest.mark.parametrize('names', [[name] for name in SWAPS] + [list(SWAPS)],
                         ids=[*SWAPS, 'all'])
def test_swapped_detector_trains_as_mmdets(mmdet_model_cfg, reference, names):
    state_dict, (ref_losses, ref_preds) = reference
    cfg = swapped(mmdet_model_cfg, names)
    assert sum(str(cfg).count(f"'{SWAPS[n]}'") for n in names) >= 1
    losses, preds = run(cfg, state_dict)
    for step, (ours, theirs) in enumerate(zip(losses, ref_losses)):
        assert ours.keys() == theirs.keys()
        for key in theirs:
            assert ours[key].item() == pytest.approx(theirs[key].item(), rel=1e-6, abs=1e-7), \
                f'step {step} {key}'
    assert all(torch.isfinite(v) for v in losses[-1].values())
    for ours, theirs in zip(preds, ref_preds):
        assert torch.equal(ours.labels, theirs.labels)
        torch.testing.assert_close(ours.bboxes, theirs.bboxes, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(ours.scores, theirs.scores, rtol=1e-5, atol=1e-6)
