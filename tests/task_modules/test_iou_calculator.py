"""ScratchBboxOverlaps2D against mmdet's BboxOverlaps2D (the oracle)."""
import mmdet.models  # noqa: F401  registers the oracles
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes

from frcnn_plugin.task_modules.iou_calculator import ScratchBboxOverlaps2D

MODES = ['iou', 'iof', 'giou']
IMG_H, IMG_W = 800, 1333


def random_boxes(num, *batch, seed=0, scores=False):
    """``(*batch, num, 4|5)`` boxes of every awkward kind, seeded.

    Every 8 boxes: a point, a zero-width line, an inverted box, one larger than
    the image, one exactly duplicating its neighbour (ties), three ordinary
    ones; corners range 100 px beyond the 800 x 1333 image on every side.
    """
    gen = torch.Generator().manual_seed(seed)
    extent = torch.tensor([IMG_W + 200., IMG_H + 200.])
    corner = torch.rand(*batch, num, 2, generator=gen) * extent - 100
    size = torch.rand(*batch, num, 2, generator=gen) * 300
    size[..., 0::8, :] = 0
    size[..., 1::8, 0] = 0
    size[..., 2::8, :] *= -1
    size[..., 3::8, :] *= 10
    out = torch.cat([corner, corner + size], -1)
    out[..., 5::8, :] = out[..., 4::8, :][..., :out[..., 5::8, :].size(-2), :]
    if scores:
        out = torch.cat([out, torch.rand(*batch, num, 1, generator=gen)], -1)
    return out


@pytest.fixture(scope='module')
def oracle():
    return TASK_UTILS.build(dict(type='BboxOverlaps2D'))


def assert_parity(ours, theirs):
    assert ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0, equal_nan=True)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('batch', [(), (3,), (2, 3)])
def test_pairwise_parity(oracle, mode, batch):
    bboxes1, bboxes2 = random_boxes(300, *batch, seed=1), random_boxes(37, *batch, seed=2)
    ours = ScratchBboxOverlaps2D()(bboxes1, bboxes2, mode)
    assert ours.shape == batch + (300, 37)
    assert_parity(ours, oracle(bboxes1, bboxes2, mode))


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('batch', [(), (4,)])
def test_aligned_parity(oracle, mode, batch):
    bboxes1, bboxes2 = random_boxes(500, *batch, seed=3), random_boxes(500, *batch, seed=4)
    # Half of the pairs overlap a lot: each box against a jittered copy of itself.
    bboxes2[..., ::2, :] = bboxes1[..., ::2, :] + torch.randn(bboxes1[..., ::2, :].shape) * 10
    ours = ScratchBboxOverlaps2D()(bboxes1, bboxes2, mode, is_aligned=True)
    assert ours.shape == batch + (500,)
    assert_parity(ours, oracle(bboxes1, bboxes2, mode, is_aligned=True))


@pytest.mark.parametrize('mode', MODES)
def test_scores_column_is_ignored(oracle, mode):
    bboxes1, bboxes2 = random_boxes(64, seed=5, scores=True), random_boxes(16, seed=6, scores=True)
    calc = ScratchBboxOverlaps2D()
    ours = calc(bboxes1, bboxes2, mode)
    assert_parity(ours, oracle(bboxes1, bboxes2, mode))
    assert torch.equal(ours, calc(bboxes1[:, :4], bboxes2[:, :4], mode))
    assert torch.equal(calc(bboxes1, bboxes2[:, :4], mode), ours)


@pytest.mark.parametrize('mode', MODES)
def test_horizontal_boxes(oracle, mode):
    bboxes1, bboxes2 = random_boxes(40, seed=7), random_boxes(9, seed=8)
    ours = ScratchBboxOverlaps2D()(HorizontalBoxes(bboxes1), HorizontalBoxes(bboxes2), mode)
    assert_parity(ours, oracle(bboxes1, bboxes2, mode))


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('shapes, is_aligned', [
    (((0, 4), (5, 4)), False),
    (((5, 4), (0, 4)), False),
    (((0, 4), (0, 4)), False),
    (((0, 4), (0, 4)), True),
    (((0, 5), (3, 5)), False),
    (((4, 4), (0, 0)), False),   # mmdet accepts a (0, 0) "no boxes" tensor
    (((2, 0, 4), (2, 6, 4)), False),
])
def test_empty_inputs(oracle, mode, shapes, is_aligned):
    bboxes1, bboxes2 = torch.rand(shapes[0]), torch.rand(shapes[1])
    ours = ScratchBboxOverlaps2D()(bboxes1, bboxes2, mode, is_aligned)
    theirs = oracle(bboxes1, bboxes2, mode, is_aligned)
    assert ours.shape == theirs.shape and ours.numel() == 0
    assert ours.dtype == theirs.dtype


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('scale', [1., 512.])
@pytest.mark.parametrize('is_aligned', [False, True])
def test_fp16_parity(mode, scale, is_aligned):
    """Half precision, including scale=1 where large areas overflow to inf in both."""
    bboxes1, bboxes2 = random_boxes(120, seed=9), random_boxes(120, seed=10)
    cfg = dict(scale=scale, dtype='fp16')
    scratch = TASK_UTILS.build(dict(type='ScratchBboxOverlaps2D', **cfg))
    mmdet_calc = TASK_UTILS.build(dict(type='BboxOverlaps2D', **cfg))
    ours = scratch(bboxes1, bboxes2, mode, is_aligned)
    theirs = mmdet_calc(bboxes1, bboxes2, mode, is_aligned)
    assert ours.dtype == torch.float32  # back to float32 on CPU, as mmdet
    assert_parity(ours, theirs)


def test_realistic_anchor_size(oracle):
    """RPN scale: thousands of anchors against a few dozen gts."""
    anchors, gts = random_boxes(20000, seed=11), random_boxes(30, seed=12)
    assert_parity(ScratchBboxOverlaps2D()(anchors, gts), oracle(anchors, gts))
    assert_parity(ScratchBboxOverlaps2D()(gts, anchors), oracle(gts, anchors))


def test_build_and_repr():
    calc = TASK_UTILS.build(dict(type='ScratchBboxOverlaps2D', scale=8., dtype='fp16'))
    assert isinstance(calc, ScratchBboxOverlaps2D)
    assert (calc.scale, calc.dtype) == (8., 'fp16')
    assert repr(calc) == 'ScratchBboxOverlaps2D(scale=8.0, dtype=fp16)'
    default = ScratchBboxOverlaps2D()
    oracle = TASK_UTILS.build(dict(type='BboxOverlaps2D'))
    assert repr(default).replace('Scratch', '') == repr(oracle)


def test_bad_inputs():
    calc = ScratchBboxOverlaps2D()
    with pytest.raises(ValueError, match='4 or 5 columns'):
        calc(torch.rand(3, 6), torch.rand(2, 4))
    with pytest.raises(ValueError, match='mode'):
        calc(torch.rand(3, 4), torch.rand(2, 4), mode='dice')
    with pytest.raises(ValueError, match='is_aligned'):
        calc(torch.rand(3, 4), torch.rand(2, 4), is_aligned=True)


def test_drop_in_for_max_iou_assigner():
    """mmdet's own MaxIoUAssigner assigns the same with our calculator plugged in."""
    from mmengine.structures import InstanceData
    priors = InstanceData(priors=random_boxes(2000, seed=13))
    gts = InstanceData(bboxes=random_boxes(12, seed=14), labels=torch.arange(12))
    cfg = dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3)
    theirs = TASK_UTILS.build(cfg).assign(priors, gts)
    plugged = dict(cfg, iou_calculator=dict(type='ScratchBboxOverlaps2D'))
    ours = TASK_UTILS.build(plugged).assign(priors, gts)
    assert torch.equal(ours.gt_inds, theirs.gt_inds)
    assert torch.equal(ours.labels, theirs.labels)
    assert_parity(ours.max_overlaps, theirs.max_overlaps)
