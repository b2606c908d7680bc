"""ScratchBBoxHead (the tutorials' Fast R-CNN head) against mmdet's Shared2FCBBoxHead:
with the same weights, the same scores, deltas, targets, losses, gradients and
detections, alone and inside mmdet's StandardRoIHead."""
import copy

import pytest
import torch
from detector_parity import load_random_weights, random_boxes
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox2roi
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from frcnn_plugin.models.bbox_head import ScratchBBoxHead

TRAIN_CFG = ConfigDict(
    assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                  match_low_quality=False, ignore_iof_thr=-1),
    sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1,
                 add_gt_as_proposals=True),
    pos_weight=-1, debug=False)
TEST_CFG = ConfigDict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
IMG_SHAPES = ((96, 128), (120, 100), (64, 80))


def head_pair(**kwargs):
    """mmdet's head and ours, ours loaded (strictly) with mmdet's randomised weights."""
    cfg = dict(in_channels=8, fc_out_channels=64, roi_feat_size=7, num_classes=5)
    cfg.update(kwargs)
    theirs = MODELS.build(dict(type='Shared2FCBBoxHead', **cfg))
    ours = MODELS.build(dict(type='ScratchBBoxHead', **cfg))
    assert type(ours) is ScratchBBoxHead
    load_random_weights(theirs, ours, seed=1)
    return ours, theirs


def sampling_results(seed, num_gts=(3, 0, 2), num_proposals=(40, 30, 0)):
    """Real mmdet assignments and samples: gts jittered into proposals (positives),
    plus random proposals; gts added as proposals (pos_is_gt)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    assigner = TASK_UTILS.build(TRAIN_CFG.assigner)
    sampler = TASK_UTILS.build(TRAIN_CFG.sampler)
    results = []
    for (h, w), k, n in zip(IMG_SHAPES, num_gts, num_proposals):
        gts = random_boxes(k, h, w, g)
        near = gts.repeat(4, 1) + torch.randn(4 * k, 4, generator=g) * 2
        priors = torch.cat([near, random_boxes(n, h, w, g)])[:max(n, 0)] if n else gts[:0]
        proposals = InstanceData(priors=priors)
        gt = InstanceData(bboxes=gts, labels=torch.randint(0, 5, (k,), generator=g))
        assign = assigner.assign(proposals, gt)
        results.append(sampler.sample(assign, proposals, gt))
    return results


def assert_same(ours, theirs, atol=1e-5):
    torch.testing.assert_close(ours, theirs, rtol=0, atol=atol)


def test_state_dicts_interchange_and_init_matches():
    """Parameter names, order and default initialisation are mmdet's; the tutorials' sizes."""
    for cfg in (dict(), dict(in_channels=16, fc_out_channels=4096, num_classes=20)):
        ours, theirs = head_pair(**cfg)
        assert list(ours.state_dict()) == list(theirs.state_dict()) == [
            'fc_cls.weight', 'fc_cls.bias', 'fc_reg.weight', 'fc_reg.bias',
            'shared_fcs.0.weight', 'shared_fcs.0.bias', 'shared_fcs.1.weight',
            'shared_fcs.1.bias']
        assert all(a.shape == b.shape for a, b in zip(ours.parameters(), theirs.parameters()))
        theirs.load_state_dict(ours.state_dict(), strict=True)
        torch.manual_seed(0)
        ours.init_weights()
        torch.manual_seed(0)
        theirs.init_weights()
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(a, b), name
        assert ours.fc_reg.weight.std() < 0.002 and ours.fc_reg.bias.abs().max() == 0
        assert type(ours.bbox_coder).__name__ == 'ScratchDeltaXYWHBBoxCoder'
        assert ours.bbox_coder.stds == theirs.bbox_coder.stds == [0.1, 0.1, 0.2, 0.2]


def test_takes_shared2fc_arguments_only():
    """Shared2FCBBoxHead fixes ConvFCBBoxHead's branch layout (no convs, two shared FCs):
    a config naming it is an error on both sides; its ignored conv options are accepted."""
    for bad in (dict(num_shared_convs=2), dict(num_shared_fcs=1), dict(num_reg_convs=1)):
        for head_type in ('Shared2FCBBoxHead', 'ScratchBBoxHead'):
            with pytest.raises(TypeError):
                MODELS.build(dict(type=head_type, **bad))
    ours, theirs = head_pair(conv_out_channels=64, norm_cfg=dict(type='BN'))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with pytest.raises(ValueError):
        ScratchBBoxHead(with_cls=False, with_reg=False)


@pytest.mark.parametrize('cfg', [dict(), dict(fc_out_channels=1024), dict(fc_out_channels=4096),
                                 dict(reg_class_agnostic=True), dict(with_avg_pool=True),
                                 dict(with_reg=False)])
def test_forward(cfg):
    ours, theirs = head_pair(**cfg)
    for n in (17, 0):
        x = torch.randn(n, 8, 7, 7, generator=torch.Generator().manual_seed(n))
        for a, b in zip(ours(x), theirs(x)):
            if b is None:
                assert a is None
            else:
                assert a.shape == b.shape
                assert_same(a, b)


@pytest.mark.parametrize('cfg, pos_weight', [(dict(), -1), (dict(), 2.0),
                                             (dict(reg_decoded_bbox=True), -1)])
def test_get_targets(cfg, pos_weight):
    ours, theirs = head_pair(**cfg)
    train_cfg = copy.deepcopy(TRAIN_CFG)
    train_cfg.pos_weight = pos_weight
    for seed, gts in ((0, (3, 0, 2)), (1, (0, 0, 0))):  # the second batch has no positives
        res = sampling_results(seed, gts)
        for concat in (True, False):
            a = ours.get_targets(res, train_cfg, concat=concat)
            b = theirs.get_targets(res, train_cfg, concat=concat)
            if not concat:
                assert all(isinstance(t, list) and len(t) == 3 for t in a)
                a, b = [torch.cat(t) for t in a], [torch.cat(t) for t in b]
            assert a[0].dtype == b[0].dtype == torch.long and torch.equal(a[0], b[0])
            for x, y in zip(a[1:], b[1:]):
                assert x.dtype == y.dtype and x.shape == y.shape
                assert_same(x, y)
        assert (a[0] < 5).any() == (seed == 0)


def loss_inputs(res, num_classes=5, agnostic=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    rois = bbox2roi([r.priors for r in res])
    n = rois.size(0)
    cls_score = torch.randn(n, num_classes + 1, generator=g)
    bbox_pred = torch.randn(n, 4 if agnostic else 4 * num_classes, generator=g) * 0.5
    return cls_score, bbox_pred, rois


@pytest.mark.parametrize('cfg', [
    dict(), dict(reg_class_agnostic=True), dict(loss_bbox=dict(type='L1Loss', loss_weight=2.0)),
    dict(reg_decoded_bbox=True, loss_bbox=dict(type='GIoULoss', loss_weight=1.0))])
@pytest.mark.parametrize('gts', [(3, 0, 2), (0, 0, 0)])
def test_losses_and_gradients(cfg, gts):
    ours, theirs = head_pair(**cfg)
    res = sampling_results(0, gts)
    cls_score, bbox_pred, rois = loss_inputs(res, agnostic=cfg.get('reg_class_agnostic', False))
    outs, grads = [], []
    for head in (ours, theirs):
        c, b = cls_score.clone().requires_grad_(), bbox_pred.clone().requires_grad_()
        out = head.loss_and_target(c, b, rois, res, TRAIN_CFG)
        losses = out['loss_bbox']
        sum(v.sum() for k, v in losses.items() if k.startswith('loss')).backward()
        outs.append(out)
        grads.append((c.grad, b.grad))
    (a, b) = outs
    assert list(a['loss_bbox']) == list(b['loss_bbox']) == ['loss_cls', 'acc', 'loss_bbox']
    for key in a['loss_bbox']:
        assert a['loss_bbox'][key].shape == b['loss_bbox'][key].shape
        assert_same(a['loss_bbox'][key], b['loss_bbox'][key])
    for x, y in zip(a['bbox_targets'], b['bbox_targets']):
        assert_same(x, y)
    for x, y in zip(grads[0], grads[1]):
        assert_same(x, y)
    if gts == (0, 0, 0):
        assert a['loss_bbox']['loss_bbox'] == 0 and grads[0][1].abs().sum() == 0
    else:
        assert a['loss_bbox']['loss_bbox'] > 0


def test_loss_reduction_none_and_topk_ties():
    ours, theirs = head_pair()
    res = sampling_results(2)
    cls_score, bbox_pred, rois = loss_inputs(res)
    a = ours.loss_and_target(cls_score, bbox_pred, rois, res, TRAIN_CFG,
                             reduction_override='none')['loss_bbox']
    b = theirs.loss_and_target(cls_score, bbox_pred, rois, res, TRAIN_CFG,
                               reduction_override='none')['loss_bbox']
    for key in b:
        assert a[key].shape == b[key].shape
        assert_same(a[key], b[key])
    # All-equal scores: accuracy breaks the ties as mmdet's accuracy does.
    zeros = torch.zeros_like(cls_score)
    a = ours.loss_and_target(zeros, bbox_pred, rois, res, TRAIN_CFG)['loss_bbox']
    b = theirs.loss_and_target(zeros, bbox_pred, rois, res, TRAIN_CFG)['loss_bbox']
    assert_same(a['acc'], b['acc'])


def test_forward_loss_backward_matches():
    """Features -> head -> losses -> gradients of every weight and of the features."""
    for cfg in (dict(), dict(fc_out_channels=4096, reg_class_agnostic=True)):
        ours, theirs = head_pair(**cfg)
        res = sampling_results(3)
        rois = bbox2roi([r.priors for r in res])
        feats = torch.randn(rois.size(0), 8, 7, 7, generator=torch.Generator().manual_seed(3))
        grads = []
        for head in (ours, theirs):
            x = feats.clone().requires_grad_()
            losses = head.loss_and_target(*head(x), rois, res, TRAIN_CFG)['loss_bbox']
            (losses['loss_cls'] + losses['loss_bbox']).backward()
            grads.append([x.grad] + [p.grad for p in head.parameters()])
        for a, b in zip(*grads):
            assert_same(a, b)


def predict_inputs(num_rois, agnostic=False, seed=0, num_classes=5):
    """Clustered RoIs (so NMS suppresses) per image, confident random scores."""
    g = torch.Generator().manual_seed(seed)
    rois, cls_scores, bbox_preds, metas = [], [], [], []
    for i, ((h, w), n) in enumerate(zip(IMG_SHAPES, num_rois)):
        centres = random_boxes(4, h, w, g)
        boxes = centres[torch.randint(0, 4, (n,), generator=g)] + torch.randn(n, 4, generator=g) * 3
        boxes[:3] += torch.tensor([-20., -20., 30., 30.])  # some beyond the image: clipped
        rois.append(torch.cat([boxes.new_full((n, 1), i), boxes], 1))
        cls_scores.append(torch.randn(n, num_classes + 1, generator=g) * 2)
        bbox_preds.append(torch.randn(n, 4 if agnostic else 4 * num_classes, generator=g))
        metas.append(dict(img_shape=(h, w), scale_factor=(1.5, 1.25 + i)))
    return rois, cls_scores, bbox_preds, metas


@pytest.mark.parametrize('cfg', [
    dict(), dict(reg_class_agnostic=True), dict(with_reg=False),
    dict(bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_stds=[0.1, 0.1, 0.2, 0.2]))])
@pytest.mark.parametrize('test_cfg', [None, TEST_CFG,
                                      ConfigDict(score_thr=0.3, nms=dict(type='nms', iou_thr=0.3),
                                                 max_per_img=5),
                                      ConfigDict(score_thr=1.0, nms=TEST_CFG.nms,
                                                 max_per_img=100)])
@pytest.mark.parametrize('rescale', [False, True])
def test_predict_by_feat(cfg, test_cfg, rescale):
    ours, theirs = head_pair(**cfg)
    rois, cls_scores, bbox_preds, metas = predict_inputs(
        (60, 0, 25), agnostic=cfg.get('reg_class_agnostic', False))
    if not cfg.get('with_reg', True):
        bbox_preds = [None] * len(rois)
    a = ours.predict_by_feat(rois, cls_scores, bbox_preds, metas, test_cfg, rescale)
    b = theirs.predict_by_feat(rois, cls_scores, bbox_preds, metas, test_cfg, rescale)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert set(x.keys()) == set(y.keys())
        for key in y.keys():
            assert x[key].shape == y[key].shape and x[key].dtype == y[key].dtype, key
            if key == 'labels':
                assert torch.equal(x[key], y[key])
            else:
                assert_same(x[key], y[key], atol=1e-3 if key == 'bboxes' else 1e-5)
    kept = [len(x.bboxes) for x in a]
    assert kept[1] == 0  # the image without RoIs
    if test_cfg is not None and test_cfg.score_thr < 1:
        assert 0 < kept[0] < 60 * 5 and kept[0] <= test_cfg.max_per_img


def roi_head(bbox_head_type, coder_type):
    cfg = dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                out_channels=8, featmap_strides=[4, 8]),
        bbox_head=dict(type=bbox_head_type, in_channels=8, fc_out_channels=64, roi_feat_size=7,
                       num_classes=5,
                       bbox_coder=dict(type=coder_type,
                                       target_means=[0., 0., 0., 0.],
                                       target_stds=[0.1, 0.1, 0.2, 0.2])),
        train_cfg=TRAIN_CFG, test_cfg=TEST_CFG)
    return MODELS.build(cfg)


def test_inside_standard_roi_head():
    """Swapped by type into mmdet's StandardRoIHead: same losses, gradients, detections."""
    theirs = roi_head('Shared2FCBBoxHead', 'DeltaXYWHBBoxCoder')
    ours = roi_head('ScratchBBoxHead', 'ScratchDeltaXYWHBBoxCoder')
    assert isinstance(ours.bbox_head, ScratchBBoxHead)
    load_random_weights(theirs, ours, seed=5)
    g = torch.Generator().manual_seed(5)

    feats = [torch.randn(3, 8, 32, 32, generator=g), torch.randn(3, 8, 16, 16, generator=g)]
    samples = []
    for i, (h, w) in enumerate(IMG_SHAPES):
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1., 1. + i / 4)))
        k = 2 + i
        sample.gt_instances = InstanceData(bboxes=random_boxes(k, h, w, g),
                                           labels=torch.randint(0, 5, (k,), generator=g))
        samples.append(sample)

    def proposals(counts):
        return [InstanceData(bboxes=torch.cat([s.gt_instances.bboxes.repeat(3, 1) +
                                               torch.randn(3 * len(s.gt_instances), 4,
                                                           generator=g) * 2,
                                               random_boxes(n, *s.img_shape, g)])[:n])
                for s, n in zip(samples, counts)]

    train_proposals, test_proposals = proposals((50, 40, 30)), proposals((80, 0, 60))
    outs = []
    for head in (ours, theirs):
        torch.manual_seed(7)  # the sampler draws from it
        x = [f.clone().requires_grad_() for f in feats]
        # (loss() renames the proposals' fields in place: each head gets a copy)
        losses = head.loss(x, copy.deepcopy(train_proposals), samples)
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        with torch.no_grad():
            dets = head.predict(x, copy.deepcopy(test_proposals), samples, rescale=True)
        outs.append((losses, [t.grad for t in x], dets))
    (la, ga, da), (lb, gb, db) = outs
    assert list(la) == list(lb)
    for key in lb:
        assert_same(la[key], lb[key])
    for a, b in zip(ga, gb):
        assert_same(a, b)
    for a, b in zip(da, db):
        assert torch.equal(a.labels, b.labels)
        assert_same(a.bboxes, b.bboxes, atol=1e-3)
        assert_same(a.scores, b.scores)
    assert len(da[0]) > 0 and len(da[1]) == 0
