"""nms / batched_nms against mmcv.ops (the oracle) and torchvision.ops.nms."""
import importlib

import mmcv.ops
import pytest
import torch
import torchvision

from frcnn_plugin.ops import batched_nms, device, nms
from frcnn_plugin.ops.nms import (
    DEVICE_ROUNDS,
    greedy_nms,
    greedy_nms_without_waits,
    score_ordered_columns,
)

IMAGE_W, IMAGE_H = 1333, 800


def rpn_like(n, seed, objects=30):
    """Proposals as an RPN makes them: many jittered boxes around a few objects."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(objects, 2, generator=g) * torch.tensor([IMAGE_W, IMAGE_H])
    size = torch.rand(objects, 2, generator=g) * 300 + 20
    obj = torch.randint(0, objects, (n,), generator=g)
    ctr = centre[obj] + torch.randn(n, 2, generator=g) * size[obj] * 0.15
    wh = size[obj] * torch.exp(torch.randn(n, 2, generator=g) * 0.2)
    boxes = torch.cat((ctr - wh / 2, ctr + wh / 2), 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, IMAGE_W)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, IMAGE_H)
    return boxes, torch.rand(n, generator=g)


def sparse(n, seed):
    """Small boxes spread over the image: most survive, so most pairs are compared."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([IMAGE_W, IMAGE_H])
    boxes = torch.cat((xy, xy + torch.rand(n, 2, generator=g) * 60 + 4), 1)
    return boxes, torch.rand(n, generator=g)


def mmcv_keep(boxes, scores, iou_threshold, **kwargs):
    return mmcv.ops.nms(boxes, scores, iou_threshold, **kwargs)[1]


def walk_keep(walk, boxes, scores, iou_threshold, offset=0):
    """``walk`` (the plain greedy loop, or the walk nms() takes on a GPU) on the boxes
    in score order."""
    order = scores.sort(descending=True)[1]
    return order[walk(score_ordered_columns(boxes[order], offset),
                      boxes.new_tensor(iou_threshold), offset)]


def assert_same_keep(boxes, scores, iou_threshold, **kwargs):
    keep = nms(boxes, scores, iou_threshold, **kwargs)
    expected = mmcv_keep(boxes, scores, iou_threshold, **kwargs)
    assert keep.dtype == torch.long
    assert torch.equal(keep, expected), (keep.shape, expected.shape)
    if set(kwargs) <= {'offset'}:
        assert torch.equal(walk_keep(greedy_nms_without_waits, boxes, scores, iou_threshold,
                                     **kwargs), expected)
        if boxes.size(0) <= 1000:  # one step per kept box
            assert torch.equal(walk_keep(greedy_nms, boxes, scores, iou_threshold, **kwargs),
                               expected)
    return keep


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('iou_threshold', [0.7, 0.5, 0.3])
def test_nms_equals_mmcv_on_rpn_like_boxes(seed, iou_threshold):
    boxes, scores = rpn_like(2000, seed)
    keep = assert_same_keep(boxes, scores, iou_threshold)
    assert 0 < keep.numel() < 2000  # the case exercises suppression


def test_nms_equals_mmcv_on_12000_boxes():
    boxes, scores = rpn_like(12000, 100, objects=80)
    assert_same_keep(boxes, scores, 0.7)


@pytest.mark.parametrize('n', [1, 2, 127, 128, 129, 1000, 3000])
def test_nms_equals_mmcv_when_most_boxes_survive(n):
    # Sizes around the block size; many blocks with most boxes kept.
    assert_same_keep(*sparse(n, n), 0.5)


@pytest.mark.parametrize('iou_threshold', [0.0, 1.0])
def test_nms_threshold_limits(iou_threshold):
    boxes, scores = rpn_like(2000, 7)
    keep = assert_same_keep(boxes, scores, iou_threshold)
    if iou_threshold == 1.0:  # IoU never exceeds 1: nothing is suppressed
        assert torch.equal(keep, scores.sort(descending=True)[1])
    else:  # kept boxes do not overlap at all
        kept = boxes[keep]
        lt = torch.max(kept[:, None, :2], kept[None, :, :2])
        rb = torch.min(kept[:, None, 2:], kept[None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)
        assert (inter.triu(diagonal=1) == 0).all()


@pytest.mark.parametrize('levels', [2, 5])
def test_nms_score_ties_fall_as_in_mmcv(levels):
    boxes, scores = rpn_like(2000, levels)
    tied = torch.randint(0, levels, (2000,), generator=torch.Generator().manual_seed(0)) / levels
    for iou_threshold in (0.0, 0.5, 0.7):
        assert_same_keep(boxes, tied, iou_threshold)
    assert_same_keep(boxes, torch.ones(2000), 0.7)


@pytest.mark.parametrize('iou_threshold', [0.0, 0.5, 1.0])
def test_nms_identical_boxes(iou_threshold):
    boxes, scores = rpn_like(40, 3)
    boxes, scores = boxes.repeat(50, 1), scores.repeat(50)  # 50 copies, tied scores
    keep = assert_same_keep(boxes, scores, iou_threshold)
    if iou_threshold == 1.0:  # IoU of a box with its copy is exactly 1: not > 1
        assert keep.numel() == 2000
    else:  # one copy of each distinct box at most
        assert keep.numel() <= 40
        assert len(set(map(tuple, boxes[keep].tolist()))) == keep.numel()


def test_nms_zero_area_and_inverted_boxes():
    boxes, scores = rpn_like(600, 11)
    points = boxes[:100].clone()
    points[:, 2:] = points[:, :2]  # x1 == x2, y1 == y2
    lines = boxes[100:200].clone()
    lines[:, 2] = lines[:, 0]  # zero width, positive height
    inverted = boxes[200:300][:, [2, 3, 0, 1]]  # x2 < x1, y2 < y1: negative areas
    degenerate = torch.cat((points, lines, inverted, points[:50], boxes[300:]))
    g = torch.Generator().manual_seed(1)
    degenerate_scores = torch.rand(degenerate.size(0), generator=g)
    for iou_threshold in (0.0, 0.5, 1.0):
        keep = assert_same_keep(degenerate, degenerate_scores, iou_threshold)
        # 0 / 0 is NaN, which never suppresses: every point and line survives
        assert set(range(200)) <= set(keep.tolist())


def test_nms_tiny_boxes_use_the_exact_union():
    # Areas ~1e-8: an eps-clamped union (as in bbox_overlaps) would see IoU ~0.01.
    boxes, scores = rpn_like(500, 12)
    tiny = boxes * 1e-6
    keep = assert_same_keep(tiny, scores, 0.5)
    assert keep.numel() < 500


def test_nms_empty_input():
    keep = nms(torch.zeros((0, 4)), torch.zeros((0,)), 0.7)
    expected = mmcv_keep(torch.zeros((0, 4)), torch.zeros((0,)), 0.7)
    assert keep.shape == expected.shape == (0,)
    assert keep.dtype == torch.long


def greedy_chain(n):
    # Each box overlaps only its two neighbours (IoU 0.6 > 0.5): greedy keeps every
    # other box, each decision depending on the one before.
    x1 = torch.arange(n, dtype=torch.float32) * 10
    boxes = torch.stack((x1, torch.zeros(n), x1 + 40, torch.full((n,), 10.0)), 1)
    return boxes, torch.linspace(1, 0, n)


def test_nms_greedy_chain():
    n = 389
    keep = assert_same_keep(*greedy_chain(n), 0.5)
    assert torch.equal(keep, torch.arange(0, n, 2))


def test_nms_without_waits_is_what_other_devices_run(monkeypatch):
    """nms() walks without host reads where they wait (a GPU): forced here on the CPU.
    A chain longer than its rounds settle is noticed and redone by the block walk."""
    monkeypatch.setattr(device, 'host_reads_are_cheap', lambda tensor: False)
    walks = []
    nms_module = importlib.import_module('frcnn_plugin.ops.nms')  # the name nms is the op
    for name in ('greedy_nms_in_blocks', 'greedy_nms_without_waits'):
        walk = getattr(nms_module, name)
        monkeypatch.setattr(nms_module, name,
                            lambda *args, walk=walk, name=name: walks.append(name) or walk(*args))
    assert_same_keep(*rpn_like(2000, 0), 0.7)
    assert walks == ['greedy_nms_without_waits']
    walks.clear()
    boxes, scores = greedy_chain(4 * DEVICE_ROUNDS)  # each round settles one more box
    assert torch.equal(nms(boxes, scores, 0.5), mmcv_keep(boxes, scores, 0.5))
    assert walks == ['greedy_nms_without_waits', 'greedy_nms_in_blocks']


def test_nms_keyword_arguments_equal_mmcv():
    boxes, scores = rpn_like(2000, 21)
    assert_same_keep(boxes, scores, 0.7, score_threshold=0.6)
    assert_same_keep(boxes, scores, 0.7, max_num=100)
    assert_same_keep(boxes, scores, 0.7, score_threshold=0.3, max_num=50)
    assert_same_keep(boxes.round(), scores, 0.5, offset=1)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_nms_equals_torchvision_with_distinct_scores(dtype):
    # torchvision sorts stably, mmcv not: they agree whenever no two scores tie.
    boxes, _ = rpn_like(3000, 5)
    scores = torch.randperm(3000, generator=torch.Generator().manual_seed(5)) / 3000
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    for iou_threshold in (0.3, 0.7):
        keep = nms(boxes, scores, iou_threshold)
        assert torch.equal(keep, torchvision.ops.nms(boxes, scores, iou_threshold))


def test_nms_rejects_bad_shapes():
    with pytest.raises(ValueError, match='boxes'):
        nms(torch.zeros((3, 5)), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match='scores'):
        nms(torch.zeros((3, 4)), torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match='offset'):
        nms(torch.zeros((3, 4)), torch.zeros(3), 0.5, offset=2)


def grouped(n, seed, groups):
    boxes, scores = rpn_like(n, seed)
    idxs = torch.randint(0, groups, (n,), generator=torch.Generator().manual_seed(seed))
    return boxes, scores, idxs


def assert_same_batched(boxes, scores, idxs, nms_cfg, class_agnostic=False):
    dets, keep = batched_nms(boxes, scores, idxs, nms_cfg, class_agnostic)
    dets_ref, keep_ref = mmcv.ops.batched_nms(boxes, scores, idxs, nms_cfg, class_agnostic)
    assert torch.equal(keep, keep_ref)
    assert torch.equal(dets, dets_ref)
    return dets, keep


@pytest.mark.parametrize('seed', range(2))
@pytest.mark.parametrize('split_thr', [10000, 100])  # default (one NMS) / per group
@pytest.mark.parametrize('class_agnostic', [False, True])
def test_batched_nms_equals_mmcv(seed, split_thr, class_agnostic):
    boxes, scores, idxs = grouped(2000, seed, groups=5)
    cfg = dict(type='nms', iou_threshold=0.7, split_thr=split_thr)
    dets, keep = assert_same_batched(boxes, scores, idxs, cfg, class_agnostic)
    assert dets.shape == (keep.numel(), 5)
    assert (dets[1:, 4] <= dets[:-1, 4]).all()


def test_batched_nms_never_suppresses_across_groups():
    boxes, scores = rpn_like(1000, 9)
    idxs = torch.arange(1000) % 2
    _, keep = assert_same_batched(boxes, scores, idxs, dict(type='nms', iou_threshold=0.5))
    for group in (0, 1):
        members = (idxs == group).nonzero().view(-1)
        alone = members[nms(boxes[members], scores[members], 0.5)]
        assert set(keep[idxs[keep] == group].tolist()) == set(alone.tolist())


@pytest.mark.parametrize('split_thr', [10000, 100])
def test_batched_nms_decides_on_shifted_coordinates(split_thr):
    # Large group ids shift the boxes to ~3e5, where float32 steps are 1/32 px:
    # the rounded, shifted boxes decide, in both paths, as in mmcv.
    boxes, scores = rpn_like(2000, 13)
    boxes = boxes / 20
    idxs = 5000 + torch.arange(2000) % 2
    _, keep = assert_same_batched(boxes, scores, idxs, dict(iou_threshold=0.5,
                                                          split_thr=split_thr))
    unshifted = torch.cat([members[nms(boxes[members], scores[members], 0.5)]
                           for members in ((idxs == i).nonzero().view(-1) for i in (5000, 5001))])
    assert set(keep.tolist()) != set(unshifted.tolist())


@pytest.mark.parametrize('split_thr', [10000, 100])
def test_batched_nms_cfg_keys(split_thr):
    boxes, scores, idxs = grouped(2000, 4, groups=3)
    for cfg in (dict(type='nms', iou_threshold=0.6, max_num=150),
                dict(type='nms', iou_threshold=0.6, class_agnostic=True),
                dict(type='nms', iou_thr=0.6),  # the deprecated key, renamed as mmcv does
                dict(iou_threshold=0.6, score_threshold=0.5)):
        assert_same_batched(boxes, scores, idxs, dict(cfg, split_thr=split_thr))
    dets, keep = batched_nms(boxes, scores, idxs, dict(iou_threshold=0.6, max_num=150,
                                                       split_thr=split_thr))
    assert keep.numel() == dets.size(0) == 150


def test_batched_nms_score_ties():
    boxes, _, idxs = grouped(2000, 8, groups=4)
    tied = torch.randint(0, 3, (2000,), generator=torch.Generator().manual_seed(8)) / 3
    for split_thr in (10000, 100):
        assert_same_batched(boxes, tied, idxs, dict(type='nms', iou_threshold=0.7,
                                                    split_thr=split_thr))


def test_batched_nms_without_cfg_only_sorts():
    boxes, scores, idxs = grouped(500, 2, groups=3)
    dets, keep = assert_same_batched(boxes, scores, idxs, None)
    assert keep.numel() == 500


@pytest.mark.parametrize('cfg', [dict(type='nms', iou_threshold=0.7),
                                 dict(type='nms', iou_threshold=0.7, split_thr=0),
                                 dict(type='nms', iou_threshold=0.7, class_agnostic=True),
                                 None])
def test_batched_nms_empty_input(cfg):
    dets, keep = batched_nms(torch.zeros((0, 4)), torch.zeros((0,)),
                             torch.zeros((0,), dtype=torch.long), cfg)
    assert dets.shape == (0, 5)
    assert keep.shape == (0,) and keep.dtype == torch.long


def test_batched_nms_rejects_other_nms_types():
    boxes, scores, idxs = grouped(10, 0, groups=2)
    with pytest.raises(NotImplementedError, match='soft_nms'):
        batched_nms(boxes, scores, idxs, dict(type='soft_nms', iou_threshold=0.5))


@pytest.mark.parametrize('classes,n', [(20, 3000), (80, 6000), (3, 60)])
@pytest.mark.parametrize('seed', range(2))
def test_batched_nms_per_class(classes, n, seed):
    # A detection head's per-class NMS: many classes, up to a few hundred boxes each.
    boxes, scores, idxs = grouped(n, seed, groups=classes)
    tied = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(seed)) / 4
    for s in (scores, tied):
        for cfg in (dict(iou_threshold=0.5), dict(iou_threshold=0.3, max_num=100),
                    dict(iou_threshold=0.5, score_threshold=0.3)):
            assert_same_batched(boxes, s, idxs, cfg)


@pytest.mark.parametrize('groups,n', [(2, 2000), (5, 5000), (4, 1500)])
def test_batched_nms_long_uneven_groups(groups, n):
    # RPN-like: a few groups (FPN levels) of up to ~1000 boxes.
    boxes, scores, idxs = grouped(n, groups, groups=groups)
    idxs[: n // 3] = 0  # uneven groups
    for cfg in (dict(iou_threshold=0.7), dict(iou_threshold=0.5, max_num=300)):
        assert_same_batched(boxes, scores, idxs, cfg)


def test_batched_nms_negative_boxes():
    # Negative coordinates: the shift may not keep groups apart (mmcv then suppresses
    # across groups); so does this.
    boxes, scores, idxs = grouped(600, 4, groups=20)
    boxes = boxes / 10 - 60
    assert_same_batched(boxes, scores, idxs, dict(iou_threshold=0.3))


def test_batched_nms_per_group_only_where_the_shift_keeps_groups_apart(monkeypatch):
    """Per-class NMS decides each group on its own only where no box of one group can
    suppress a box of another in mmcv's shifted coordinates; equal to mmcv either way."""
    nms_module = importlib.import_module('frcnn_plugin.ops.nms')
    per_group = nms_module.greedy_nms_per_group
    calls = []
    monkeypatch.setattr(nms_module, 'greedy_nms_per_group',
                        lambda *args: calls.append(1) or per_group(*args))
    boxes, scores, idxs = grouped(3000, 3, groups=20)
    assert_same_batched(boxes, scores, idxs, dict(iou_threshold=0.5))
    assert calls
    calls.clear()
    for b, i, cfg in ((boxes - 10, idxs, dict(iou_threshold=0.5)),  # negative coordinates
                      (boxes, idxs - 1, dict(iou_threshold=0.5)),  # a negative group
                      (boxes.round(), idxs, dict(iou_threshold=0.5, offset=1)),  # +1 pixel
                      (boxes, idxs, dict(iou_threshold=-0.1)),  # IoU 0 > threshold
                      (boxes * 1e4, idxs, dict(iou_threshold=0.5))):  # beyond 2^21: rounding
        assert_same_batched(b, scores, i, cfg)
    assert not calls
