"""ScratchRoIHead (the proposal target layer and the detection pass) against
mmdet's StandardRoIHead, each built from its own components (ours: our extractor,
RoIAlign, bbox head, coder, assigner, sampler): with the same weights and seed, the same
losses, gradients and detections, also with no proposals, no gt and empty images."""
import copy

import pytest
import torch
from detector_parity import load_random_weights, random_boxes
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import frcnn_plugin  # noqa: F401  registers the Scratch* types
from frcnn_plugin.models.roi_head import ScratchRoIHead
from frcnn_plugin.utils.swap import SCRATCH_TYPES, retyped

NUM_CLASSES = 5
IMG_SHAPES = ((96, 128), (120, 100), (64, 80))
MMDET_HEAD = ConfigDict(
    type='StandardRoIHead',
    bbox_roi_extractor=dict(type='SingleRoIExtractor',
                            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                            out_channels=8, featmap_strides=[4, 8]),
    bbox_head=dict(type='Shared2FCBBoxHead', in_channels=8, fc_out_channels=64,
                   roi_feat_size=7, num_classes=NUM_CLASSES,
                   bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                   target_stds=[0.1, 0.1, 0.2, 0.2])),
    train_cfg=dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                      min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1,
                      iou_calculator=dict(type='BboxOverlaps2D')),
        sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1,
                     add_gt_as_proposals=True),
        pos_weight=-1, debug=False),
    test_cfg=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))


def head_pair():
    """mmdet's head and ours (every component retyped), ours with mmdet's random weights."""
    theirs = MODELS.build(MMDET_HEAD)
    ours = MODELS.build(retyped(MMDET_HEAD, SCRATCH_TYPES))
    assert type(ours) is ScratchRoIHead
    assert 'Scratch' not in ''.join(type(m).__name__ for m in theirs.modules())
    assert {type(m).__name__ for m in ours.modules()} >= {
        'ScratchRoIExtractor', 'ScratchRoIAlign', 'ScratchBBoxHead'}
    assert type(ours.bbox_assigner).__name__ == 'ScratchMaxIoUAssigner'
    assert type(ours.bbox_sampler).__name__ == 'ScratchRandomSampler'
    load_random_weights(theirs, ours, seed=5)
    return ours, theirs


def batch(num_gts, g):
    samples = []
    for i, ((h, w), k) in enumerate(zip(IMG_SHAPES, num_gts)):
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1., 1. + i / 4)))
        sample.gt_instances = InstanceData(bboxes=random_boxes(k, h, w, g),
                                           labels=torch.randint(0, NUM_CLASSES, (k,), generator=g))
        samples.append(sample)
    return samples


def proposals(samples, counts, g):
    """Gts jittered into proposals (so some are positive), then random ones."""
    out = []
    for s, n in zip(samples, counts):
        gts = s.gt_instances.bboxes
        near = gts.repeat(3, 1) + torch.randn(3 * len(gts), 4, generator=g) * 2
        boxes = torch.cat([near, random_boxes(n, *s.img_shape, g)])[:n]
        out.append(InstanceData(bboxes=boxes, scores=torch.rand(n, generator=g)))
    return out


def run(head, feats, train_proposals, test_proposals, samples, rescale=True, test_cfg=True):
    torch.manual_seed(7)  # the samplers draw from it
    x = [f.clone().requires_grad_() for f in feats]
    # (mmdet's loss() renames the proposals' fields in place: each head gets a copy)
    losses = head.loss(x, copy.deepcopy(train_proposals), samples)
    total = sum(v.sum() for k, v in losses.items() if k.startswith('loss'))
    total.backward()
    params = [p.grad for p in head.parameters()]
    with torch.no_grad():
        metas = [s.metainfo for s in samples]
        dets = (head.predict(x, copy.deepcopy(test_proposals), samples, rescale=rescale)
                if test_cfg else
                head.predict_bbox(x, metas, copy.deepcopy(test_proposals), None, rescale))
    return losses, [t.grad for t in x] + params, dets


def assert_same(a, b, atol=1e-5):
    torch.testing.assert_close(a, b, rtol=0, atol=atol)


@pytest.mark.parametrize('num_gts, train_counts, test_counts', [
    ((2, 3, 4), (50, 40, 30), (80, 20, 60)),   # every image with gts and proposals
    ((2, 0, 4), (50, 40, 0), (80, 0, 60)),     # an image without gt, one without proposals
    ((0, 0, 0), (30, 0, 10), (0, 0, 0)),       # no gt at all; no proposal at test time
    ((0, 0, 0), (0, 0, 0), (0, 0, 5)),         # no RoI at all in training
])
@pytest.mark.parametrize('rescale, test_cfg', [(True, True), (False, True), (False, False)])
def test_losses_gradients_and_detections_are_mmdets(num_gts, train_counts, test_counts,
                                                    rescale, test_cfg):
    ours, theirs = head_pair()
    g = torch.Generator().manual_seed(sum(train_counts))
    feats = [torch.randn(3, 8, 32, 32, generator=g), torch.randn(3, 8, 16, 16, generator=g)]
    samples = batch(num_gts, g)
    train, test = proposals(samples, train_counts, g), proposals(samples, test_counts, g)
    (la, ga, da), (lb, gb, db) = (run(head, feats, train, test, samples, rescale, test_cfg)
                                  for head in (ours, theirs))
    assert list(la) == list(lb)
    for key in lb:
        assert la[key].shape == lb[key].shape
        assert_same(la[key], lb[key])
    for a, b in zip(ga, gb):
        assert (a is None) == (b is None)
        if b is not None:
            assert_same(a, b)
    assert len(da) == len(db) == 3
    for a, b in zip(da, db):
        assert set(a.keys()) == set(b.keys())
        for key in b.keys():
            assert a[key].shape == b[key].shape and a[key].dtype == b[key].dtype, key
        if test_cfg:
            assert torch.equal(a.labels, b.labels)
        assert_same(a.bboxes, b.bboxes, atol=1e-3)
        assert_same(a.scores, b.scores)
    if sum(train_counts) + sum(num_gts):
        assert la['loss_cls'] > 0
    if test_cfg and test_counts[0]:
        assert len(da[0]) > 0


def test_raw_forward_and_rois():
    ours, theirs = head_pair()
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(3, 8, 32, 32, generator=g), torch.randn(3, 8, 16, 16, generator=g)]
    props = proposals(batch((1, 2, 0), g), (10, 0, 7), g)
    for a, b in zip(ours.forward(feats, props), theirs.forward(feats, props)):
        assert_same(a, b)
    # Proposals as box structures (what mmdet's pipelines pack) give the same RoIs.
    boxed = [InstanceData(bboxes=HorizontalBoxes(p.bboxes)) for p in props]
    for a, b in zip(ours.forward(feats, boxed), theirs.forward(feats, props)):
        assert a.size(0) == sum(len(p) for p in props)
        assert_same(a, b)


def test_mask_head_is_a_clear_error():
    cfg = retyped(MMDET_HEAD, SCRATCH_TYPES)
    cfg.mask_head = dict(type='FCNMaskHead', num_convs=1, in_channels=8, conv_out_channels=8,
                         num_classes=NUM_CLASSES)
    with pytest.raises(NotImplementedError, match='box branch only.*StandardRoIHead'):
        MODELS.build(cfg)


def test_mmdets_components_work_inside_ours():
    """The swap examples: mmdet's extractor and bbox head inside ScratchRoIHead."""
    theirs = MODELS.build(MMDET_HEAD)
    mixed = MODELS.build(dict(MMDET_HEAD, type='ScratchRoIHead'))
    mixed.load_state_dict(theirs.state_dict(), strict=True)
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(3, 8, 32, 32, generator=g), torch.randn(3, 8, 16, 16, generator=g)]
    samples = batch((2, 1, 3), g)
    train, test = proposals(samples, (20, 20, 20), g), proposals(samples, (30, 30, 30), g)
    (la, ga, da), (lb, gb, db) = (run(head, feats, train, test, samples)
                                  for head in (mixed, theirs))
    for key in lb:
        assert_same(la[key], lb[key])
    for a, b in zip(da, db):
        assert torch.equal(a.labels, b.labels)
        assert_same(a.bboxes, b.bboxes, atol=1e-3)
