"""ScratchRPNHead against mmdet's RPNHead (the oracle): both built from mmdet's
Faster R-CNN config (ours with our task modules, theirs with mmdet's, which are
bit-equal), with shared weights and equal RNG states, so losses, gradients and
proposals must agree."""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.hub import get_config
from mmengine.structures import InstanceData

from frcnn_plugin.boxes import anchors_inside, box_overlaps
from frcnn_plugin.models.rpn_head import ScratchRPNHead
from frcnn_plugin.utils.swap import SCRATCH_TYPES, retyped

CHANNELS = 8
# The tutorials' RPN: one VGG16 map (stride 16), 9 anchors (3 scales x 3 ratios).
TUTORIAL_RPN = dict(in_channels=CHANNELS, feat_channels=CHANNELS,
                anchor_generator=dict(type='AnchorGenerator', scales=[8, 16, 32],
                                      ratios=[0.5, 1.0, 2.0], strides=[16]))


@pytest.fixture(scope='module')
def cfg():
    """mmdet's faster-rcnn_r50_fpn RPN: head (narrowed to CHANNELS), train, proposal, test cfgs."""
    model = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    head = copy.deepcopy(model.rpn_head)
    head.update(in_channels=CHANNELS, feat_channels=CHANNELS)
    train = copy.deepcopy(model.train_cfg.rpn)
    train.assigner.iou_calculator = dict(type='BboxOverlaps2D')  # spelled out to swap it
    return dict(head=head, train=train, proposal=model.train_cfg.rpn_proposal,
                test=model.test_cfg.rpn)


def build_pair(cfg, head=None, train=None, test=None, seed=0, std=None):
    """(ours, theirs) with theirs' weights (N(0, std) if given, else PyTorch's init) in ours."""
    head_cfg = dict(cfg['head'], **(head or {}))
    # ConfigDicts, as the detector passes them (mmdet's head reads attributes).
    train_cfg = ConfigDict(copy.deepcopy(cfg['train']), **(train or {}))
    test_cfg = ConfigDict(copy.deepcopy(cfg['test']), **(test or {}))
    theirs_cfg = dict(head_cfg, type='RPNHead', train_cfg=train_cfg, test_cfg=test_cfg)
    torch.manual_seed(seed)
    theirs = MODELS.build(theirs_cfg)
    if std is not None:
        for param in theirs.parameters():
            torch.nn.init.normal_(param, std=std)
    ours = MODELS.build(retyped(dict(theirs_cfg, type='ScratchRPNHead'), SCRATCH_TYPES))
    assert type(ours) is ScratchRPNHead
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


def features(levels, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, CHANNELS, h, w, generator=g) for h, w in levels]


FPN_LEVELS = [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]   # a 128 x 160 padded batch
TUTORIAL_LEVELS = [(16, 20)]                                      # a 256 x 320 batch at stride 16


def samples(shapes=((128, 160), (100, 120)), pad=(128, 160), num_gts=(5, 2), seed=0,
            scale_factor=(1., 1.), ignored=None):
    """Data samples; the second image is smaller than the padded batch by default."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for (h, w), n in zip(shapes, num_gts):
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
        wh = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.5, h * 0.5]) + 6
        bboxes = torch.minimum(torch.cat([xy, xy + wh], 1), torch.tensor([w, h, w, h]) - 1.)
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), pad_shape=pad, scale_factor=scale_factor,
            ori_shape=(round(h / scale_factor[1]), round(w / scale_factor[0]))))
        # The detector hands the RPN class-agnostic gts: every label 0.
        sample.gt_instances = InstanceData(bboxes=bboxes, labels=torch.zeros(n, dtype=torch.long))
        if ignored is not None:
            sample.ignored_instances = InstanceData(bboxes=ignored(bboxes))
        out.append(sample)
    return out


def tutorial_samples(**kwargs):
    """A batch large enough for the tutorials' 128-512 pixel anchors."""
    return samples(**dict(dict(shapes=((256, 320), (200, 240)), pad=(256, 320)), **kwargs))


def run_loss(head, feats, data, seed=0):
    """Losses of a fresh, grad-tracked copy of ``feats``, and the gradients w.r.t. them."""
    feats = [f.clone().requires_grad_() for f in feats]
    torch.manual_seed(seed)  # the sampler draws from it
    losses = head.loss(feats, data)
    sum(sum(v) for v in losses.values()).backward()
    return losses, [f.grad for f in feats]


def assert_close(ours, theirs, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol)


def assert_same_losses(ours, theirs, feats, data, seed=0):
    ours_losses, ours_grads = run_loss(ours, feats, data, seed)
    theirs_losses, theirs_grads = run_loss(theirs, feats, data, seed)
    assert ours_losses.keys() == theirs_losses.keys() == {'loss_rpn_cls', 'loss_rpn_bbox'}
    for key, values in ours_losses.items():
        assert len(values) == len(theirs_losses[key]) == len(feats)
        for ours_value, theirs_value in zip(values, theirs_losses[key]):
            assert_close(ours_value, theirs_value)
    for ours_grad, theirs_grad in zip(ours_grads, theirs_grads):
        assert_close(ours_grad, theirs_grad, atol=1e-8)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert_close(p.grad, q.grad, atol=1e-8)
    return ours_losses


def assert_same_proposals(ours, theirs):
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert len(mine) == len(ref)
        assert_close(mine.bboxes, ref.bboxes, rtol=1e-5, atol=1e-3)
        assert_close(mine.scores, ref.scores)
        assert torch.equal(mine.labels, torch.zeros(len(mine), dtype=torch.long))


def predict_both(ours, theirs, feats, data, rescale=False):
    with torch.no_grad():
        return (ours.predict(feats, data, rescale=rescale),
                theirs.predict(feats, data, rescale=rescale))


# -------------------------------------------------------------------- structure
def test_state_dicts_interchange_and_layer_shapes(cfg):
    ours, theirs = build_pair(cfg, head=TUTORIAL_RPN)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert ours.rpn_cls.out_channels == 9 and ours.rpn_reg.out_channels == 36
    ours, theirs = build_pair(cfg, head=dict(num_convs=2))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert 'rpn_conv.1.conv.weight' in ours.state_dict()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    with pytest.raises(ValueError):
        MODELS.build(dict(type='ScratchRPNHead', in_channels=4, num_classes=2))


def test_default_init_is_normal_001():
    head = MODELS.build(dict(type='ScratchRPNHead', in_channels=16, feat_channels=32))
    head.init_weights()
    weights = torch.cat([head.rpn_conv.weight.flatten(), head.rpn_cls.weight.flatten()])
    assert abs(weights.std().item() - 0.01) < 1e-3
    assert head.rpn_reg.bias.abs().max() == 0


def test_forward_shapes(cfg):
    ours, theirs = build_pair(cfg)
    feats = features(FPN_LEVELS)
    for mine, ref in zip(ours(feats), theirs(feats)):
        assert len(mine) == 5
        for a, b in zip(mine, ref):
            assert torch.equal(a, b)
    assert ours(feats)[0][0].shape == (2, 3, 32, 40)
    assert ours(feats)[1][0].shape == (2, 12, 32, 40)


# ------------------------------------------------------------------------ loss
@pytest.mark.parametrize('levels,head,data',
                         [(FPN_LEVELS, None, samples),
                          (TUTORIAL_LEVELS, TUTORIAL_RPN, tutorial_samples)],
                         ids=['fpn', 'tutorial'])
def test_loss_and_gradients_match(cfg, levels, head, data):
    ours, theirs = build_pair(cfg, head=head, seed=1)
    losses = assert_same_losses(ours, theirs, features(levels), data())
    assert sum(losses['loss_rpn_bbox']) > 0  # there were positives


def test_softmax_cls_loss_and_proposals_match(cfg):
    softmax = dict(cfg['head']['loss_cls'], use_sigmoid=False)
    ours, theirs = build_pair(cfg, head=dict(loss_cls=softmax), seed=2)
    assert ours.rpn_cls.out_channels == 6 and not ours.use_sigmoid_cls
    feats = features(FPN_LEVELS, seed=2)
    assert_same_losses(ours, theirs, feats, samples())
    assert_same_proposals(*predict_both(ours, theirs, feats, samples()))


def test_smooth_l1_pos_weight_and_no_sampler_match(cfg):
    """Tutorial-style SmoothL1 (weight 10), pos_weight > 0, and no sampler (every
    anchor counts, averaged over the positives)."""
    head = dict(TUTORIAL_RPN, loss_bbox=dict(type='SmoothL1Loss', beta=1 / 9, loss_weight=10.0))
    ours, theirs = build_pair(cfg, head=head, train=dict(sampler=None, pos_weight=2.0), seed=3)
    assert ours.sampler is None and type(theirs.sampler).__name__ == 'PseudoSampler'
    assert_same_losses(ours, theirs, features(TUTORIAL_LEVELS), tutorial_samples())


def test_reg_decoded_bbox_giou_matches(cfg):
    ours, theirs = build_pair(cfg, head=dict(reg_decoded_bbox=True, loss_bbox=dict(
        type='GIoULoss', loss_weight=1.0)), seed=4)
    assert_same_losses(ours, theirs, features(FPN_LEVELS), samples())


def test_empty_gt_gives_zero_box_loss(cfg):
    ours, theirs = build_pair(cfg, seed=5)
    losses = assert_same_losses(ours, theirs, features(FPN_LEVELS), samples(num_gts=(0, 0)))
    assert sum(losses['loss_rpn_bbox']) == 0 and sum(losses['loss_rpn_cls']) > 0


def test_one_image_without_gt(cfg):
    ours, theirs = build_pair(cfg, head=TUTORIAL_RPN, seed=6)
    assert_same_losses(ours, theirs, features(TUTORIAL_LEVELS), tutorial_samples(num_gts=(3, 0)))


def test_all_gts_in_ignore_regions(cfg):
    """Every gt also an ignore region (ignore_iof_thr 0.5): anchors on them are ignored."""
    train = dict(assigner=dict(cfg['train']['assigner'], ignore_iof_thr=0.5))
    ours, theirs = build_pair(cfg, train=train, seed=7)
    data = samples(ignored=lambda bboxes: bboxes.clone())
    assert_same_losses(ours, theirs, features(FPN_LEVELS), data)
    plain = build_pair(cfg, seed=7)[0]
    meta, gts = [d.metainfo for d in data], [d.gt_instances for d in data]
    for head, ignore in ((ours, [d.ignored_instances for d in data]), (plain, None)):
        torch.manual_seed(0)
        head.get_targets(*head.get_anchors(FPN_LEVELS, meta, 'cpu'), gts, meta, ignore)
    # An anchor mostly inside an ignore region (IoF > 0.5) may still be positive
    # (the assigner's IoU rules come after), but it is never a negative.
    # Without ignore regions such anchors are sampled as negatives (seeded, so
    # this does not depend on luck).
    negatives_inside = {}
    for head in (ours, plain):
        negatives_inside[head] = sum(
            (box_overlaps(result.neg_priors, gt.bboxes, mode='iof') > 0.5).any(1).sum()
            for result, gt in zip(head._raw_positive_infos['sampling_results'], gts))
    assert negatives_inside[ours] == 0 and negatives_inside[plain] > 0


def test_gts_outside_the_image(cfg):
    ours, theirs = build_pair(cfg, seed=8)
    data = samples()
    # One gt wholly outside, one hanging over the bottom-right corner.
    data[0].gt_instances = InstanceData(
        bboxes=torch.tensor([[-50., -40., -5., -4.], [150., 120., 260., 200.]]),
        labels=torch.zeros(2, dtype=torch.long))
    assert_same_losses(ours, theirs, features(FPN_LEVELS), data)


@pytest.mark.parametrize('allowed_border', [0, 8, -1])
def test_allowed_border(cfg, allowed_border):
    ours, theirs = build_pair(cfg, head=TUTORIAL_RPN, train=dict(allowed_border=allowed_border),
                              seed=9)
    assert_same_losses(ours, theirs, features(TUTORIAL_LEVELS), tutorial_samples())
    data = tutorial_samples()
    meta = [d.metainfo for d in data]
    anchors, flags = ours.get_anchors(TUTORIAL_LEVELS, meta, 'cpu')
    weights = ours.get_targets(anchors, flags, [d.gt_instances for d in data], meta)[1][0]
    # Cross-boundary anchors (beyond the border) never train the RPN.
    outside = ~anchors_inside(anchors[0][0], meta[0]['img_shape'], allowed_border)
    assert weights[0][outside].sum() == 0
    assert outside.any() == (allowed_border >= 0)


def test_padding_cells_of_a_small_image_are_ignored(cfg):
    """Image 2 (40 x 48) in a 256 x 320 batch: anchors of cells in the padding
    are invalid (valid flags from pad_shape) even with allowed_border=-1."""
    ours, theirs = build_pair(cfg, head=TUTORIAL_RPN, seed=10)
    data = tutorial_samples(shapes=((256, 320), (40, 48)), num_gts=(2, 2))
    assert_same_losses(ours, theirs, features(TUTORIAL_LEVELS), data)
    data[1].set_metainfo(dict(pad_shape=(40, 48)))
    meta = [d.metainfo for d in data]
    anchors, flags = ours.get_anchors(TUTORIAL_LEVELS, meta, 'cpu')
    assert flags[1][0].sum() == 3 * 3 * 9  # ceil(40 / 16) x ceil(48 / 16) cells
    weights = ours.get_targets(anchors, flags, [d.gt_instances for d in data], meta)[1][0]
    assert weights[1][~flags[1][0]].sum() == 0
    assert_same_losses(ours, theirs, features(TUTORIAL_LEVELS), data)


def test_no_anchor_inside_raises_as_mmdet(cfg):
    ours, theirs = build_pair(cfg, head=TUTORIAL_RPN, train=dict(allowed_border=0))
    data = samples(shapes=((20, 20), (20, 20)), pad=(20, 20), num_gts=(1, 1))
    feats = features([(2, 2)])
    for head in (ours, theirs):
        with pytest.raises(ValueError):
            head.loss(feats, data)


# ---------------------------------------------------------------------- predict
@pytest.mark.parametrize('levels,head,data',
                         [(FPN_LEVELS, None, samples),
                          (TUTORIAL_LEVELS, TUTORIAL_RPN, tutorial_samples)],
                         ids=['fpn', 'tutorial'])
@pytest.mark.parametrize('std', [None, 0.01], ids=['torch-init', 'normal-0.01'])
def test_proposals_match(cfg, levels, head, data, std):
    """PyTorch's conv init (spread-out scores) and mmdet's N(0, 0.01) (all near 0.5)."""
    ours, theirs = build_pair(cfg, head=head, seed=11, std=std,
                              test=dict(nms_pre=100, max_per_img=60))
    batch = data()
    mine, ref = predict_both(ours, theirs, features(levels, seed=11), batch)
    assert_same_proposals(mine, ref)
    assert 0 < len(mine[0]) <= 60
    # Clipped to each image, best first.
    img_h, img_w = batch[1].img_shape
    assert (mine[1].bboxes[:, 2] <= img_w).all() and (mine[1].bboxes[:, 3] <= img_h).all()
    assert (mine[0].scores[:-1] >= mine[0].scores[1:]).all()


def test_proposals_default_test_cfg_match(cfg):
    ours, theirs = build_pair(cfg, seed=12)
    mine, ref = predict_both(ours, theirs, features(FPN_LEVELS, seed=12), samples())
    assert_same_proposals(mine, ref)
    assert len(mine[0]) > 100


@pytest.mark.parametrize('rescale', [False, True])
def test_rescale(cfg, rescale):
    ours, theirs = build_pair(cfg, head=TUTORIAL_RPN, seed=13)
    data = tutorial_samples(scale_factor=(0.5, 0.625))
    mine, ref = predict_both(ours, theirs, features(TUTORIAL_LEVELS, seed=13), data, rescale)
    assert_same_proposals(mine, ref)
    if rescale:  # divided by the resize factors: back on the original image
        plain = ours.predict(features(TUTORIAL_LEVELS, seed=13), data, rescale=False)[0]
        assert_close(mine[0].bboxes, plain.bboxes / torch.tensor([0.5, 0.625, 0.5, 0.625]))


def test_min_bbox_size_and_empty_proposals(cfg):
    ours, theirs = build_pair(cfg, seed=14, test=dict(min_bbox_size=40))
    mine, ref = predict_both(ours, theirs, features(FPN_LEVELS, seed=14), samples())
    assert_same_proposals(mine, ref)
    widths = mine[0].bboxes[:, 2] - mine[0].bboxes[:, 0]
    assert (widths > 40).all()
    ours.test_cfg = dict(ours.test_cfg, min_bbox_size=10 ** 4)
    empty = ours.predict(features(FPN_LEVELS, seed=14), samples())
    assert empty[0].bboxes.shape == (0, 4) and empty[0].scores.shape == (0,)


def test_loss_and_predict_as_the_detector_calls_it(cfg):
    ours, theirs = build_pair(cfg, seed=15)
    feats = features(FPN_LEVELS, seed=15)
    results = []
    for head in (ours, theirs):
        torch.manual_seed(0)
        results.append(head.loss_and_predict(feats, samples(), proposal_cfg=cfg['proposal']))
    (mine_losses, mine), (ref_losses, ref) = results
    for key in ref_losses:
        assert_close(sum(mine_losses[key]), sum(ref_losses[key]))
    assert_same_proposals(mine, ref)
    assert len(mine[0]) > 100


@pytest.mark.parametrize('std', [None, 0.01], ids=['torch-init', 'normal-0.01'])
def test_tied_scores_are_cut_and_suppressed_as_mmdet(cfg, std):
    """A padded region's features are constant, so its cells score exactly alike:
    the nms_pre cut and NMS then fall inside ties, which must break as in mmdet."""
    ours, theirs = build_pair(cfg, seed=16, std=std, test=dict(nms_pre=50))
    feats = features(FPN_LEVELS, seed=16)
    for feat in feats:  # image 2 (100 x 120 of 128 x 160) sees padding to its right and below
        h, w = feat.shape[-2:]
        feat[1, :, (h * 100) // 128:] = 0.5
        feat[1, :, :, (w * 120) // 160:] = 0.5
    feats[0][0] = 0.  # and image 1 is blank on the finest level
    mine, ref = predict_both(ours, theirs, feats, samples())
    assert_same_proposals(mine, ref)
    scores = ours(feats)[0][0][0, 0].flatten()
    assert scores.unique().numel() == 1  # the cut really was among ties
