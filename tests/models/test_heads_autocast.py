"""The RoI extractor, both heads and a whole detector under
``torch.autocast('cpu', dtype=torch.bfloat16)``, against mmdet's under the same autocast.

mmdet's side needs RoI layers that run under CPU autocast: mmcv's CPU RoIAlign has no
bfloat16 kernel, torchvision's roi_align casts to float32 under autocast (as ours do), so
it stands in (equal to mmcv's RoIAlign in float32 for ``aligned`` avg pooling).

With the same weights, the convolutions and FCs give the same bfloat16 values on both
sides; the losses, targets and box decoding run on the same values in the same dtypes,
and RoI pooling and NMS in float32 on both. What is left is float32 rounding and, where a
float32 result is rounded to bfloat16 (pooled features), one bfloat16 unit in the last
place: the tolerances below say which.
"""
import copy

import pytest
import torch
import torchvision
from detector_parity import detector_batch
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.optim import OptimWrapper
from test_rpn_head import FPN_LEVELS, samples
from torch.nn.modules.utils import _pair

from frcnn_plugin.utils.swap import SCRATCH_TYPES, retyped

BF16 = torch.bfloat16


def bf16_autocast():
    return torch.autocast('cpu', dtype=BF16)


class TorchvisionRoIAlign(torchvision.ops.RoIAlign):
    """torchvision's roi_align with mmcv's RoIAlign arguments (avg pooling only)."""

    def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=0, aligned=True,
                 pool_mode='avg'):
        assert pool_mode == 'avg'
        super().__init__(_pair(output_size), spatial_scale, sampling_ratio, aligned)


def r50_model():
    model = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    model.backbone.init_cfg = None
    return model


def test_roi_extractor_matches_mmdet_under_autocast():
    """Four FPN levels of bfloat16 features; mmdet's extractor casts the RoIs to the
    features' dtype and so does ours (drop-in: the same levels, the same sampling)."""
    cfg = r50_model().roi_head.bbox_roi_extractor
    theirs = MODELS.build(dict(cfg, roi_layer=dict(cfg.roi_layer, type=TorchvisionRoIAlign)))
    ours = MODELS.build(retyped(cfg, SCRATCH_TYPES))
    g = torch.Generator().manual_seed(0)
    feats = tuple(torch.randn(2, 256, h, w, generator=g).to(BF16)
                  for h, w in ((50, 84), (25, 42), (13, 21), (7, 11)))
    xy = torch.rand(300, 2, generator=g) * torch.tensor([1000., 600.])
    wh = torch.rand(300, 2, generator=g) ** 2 * 500 + 4
    rois = torch.cat([torch.randint(0, 2, (300, 1), generator=g).float(), xy, xy + wh], 1)
    with bf16_autocast():
        mine, ref = ours(feats, rois), theirs(feats, rois)
    assert mine.dtype == ref.dtype == BF16
    # float32 results within 1e-4, then one bfloat16 rounding each: rtol 2^-7.
    torch.testing.assert_close(mine.float(), ref.float(), rtol=2 ** -7, atol=1e-4)


def rpn_pair():
    model = r50_model()
    cfg = dict(model.rpn_head, in_channels=8, feat_channels=8,
               train_cfg=ConfigDict(model.train_cfg.rpn), test_cfg=ConfigDict(model.test_cfg.rpn))
    cfg['train_cfg'].assigner.iou_calculator = dict(type='BboxOverlaps2D')
    torch.manual_seed(0)
    theirs = MODELS.build(dict(cfg, type='RPNHead'))
    ours = MODELS.build(retyped(dict(cfg, type='ScratchRPNHead'), SCRATCH_TYPES))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


def test_rpn_head_loss_matches_mmdet_under_autocast():
    """The head's convs run in bfloat16 (equal on both sides); targets and losses then
    see the same values: losses and gradients agree to float32 rounding."""
    ours, theirs = rpn_pair()
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, h, w, generator=g) for h, w in FPN_LEVELS]
    data = samples()
    results = []
    for head in (ours, theirs):
        inputs = [f.clone().requires_grad_() for f in feats]
        torch.manual_seed(0)  # the sampler draws from it
        with bf16_autocast():
            losses = head.loss(inputs, data)
            assert head(inputs)[0][0].dtype == BF16
        sum(sum(v) for v in losses.values()).backward()
        results.append((losses, [i.grad for i in inputs]))
    (my_losses, my_grads), (ref_losses, ref_grads) = results
    for key in ref_losses:
        for a, b in zip(my_losses[key], ref_losses[key]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(my_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)


def test_rpn_proposals_under_autocast_where_mmdet_stops():
    """mmdet's proposal layer cannot run under CPU bfloat16 autocast: it makes the
    anchors in the scores' dtype (BaseDenseHead.predict_by_feat), so the decoded boxes
    are bfloat16, which mmcv's CPU NMS refuses. Ours takes the same bfloat16 boxes
    (the same anchors and deltas: a drop-in) and runs NMS on them in float32; its
    proposals are those of its float32 NMS on the same boxes, kept in bfloat16."""
    ours, theirs = rpn_pair()
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, h, w, generator=g) for h, w in FPN_LEVELS]
    data = samples()
    with torch.no_grad(), bf16_autocast():
        with pytest.raises(RuntimeError, match='expected scalar type Float but found BFloat16'):
            theirs.predict(feats, data)
        proposals = ours.predict(feats, data)
    for result, sample in zip(proposals, data):
        assert result.bboxes.dtype == BF16 and 0 < len(result) <= ours.test_cfg.max_per_img
        h, w = sample.img_shape
        assert (result.bboxes >= 0).all() and (result.bboxes[:, 0::2] <= w).all()
        assert (result.bboxes[:, 1::2] <= h).all()
        assert (result.scores[:-1] >= result.scores[1:]).all()


def test_bbox_head_loss_and_detections_match_mmdet_under_autocast():
    """The FCs run in bfloat16 (equal on both sides); the losses, softmax, decoding and
    per-class NMS see the same values."""
    cfg = dict(in_channels=8, fc_out_channels=64, roi_feat_size=7, num_classes=5)
    torch.manual_seed(0)
    theirs = MODELS.build(dict(type='Shared2FCBBoxHead', **cfg))
    ours = MODELS.build(dict(type='ScratchBBoxHead', **cfg))
    with torch.no_grad():
        for p in theirs.parameters():  # large enough for varied predictions
            p.normal_(std=0.05)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(80, 8, 7, 7, generator=g)
    xy = torch.rand(80, 2, generator=g) * torch.tensor([100., 70.])
    rois = torch.cat([torch.zeros(80, 1), xy, xy + torch.rand(80, 2, generator=g) * 40 + 2], 1)
    labels = torch.randint(0, 6, (80,), generator=g)
    targets = (labels, torch.ones(80), torch.randn(80, 4, generator=g) * 0.5,
               (labels < 5).float()[:, None].expand(80, 4).contiguous())
    test_cfg = ConfigDict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                          max_per_img=100)
    meta = dict(img_shape=(120, 160), scale_factor=(1., 1.))
    results = []
    for head in (ours, theirs):
        with bf16_autocast():
            cls_score, bbox_pred = head(x)
            assert cls_score.dtype == bbox_pred.dtype == BF16
            losses = head.loss(cls_score, bbox_pred, rois, *targets)
            detections = head.predict_by_feat((rois,), (cls_score,), (bbox_pred,), [meta],
                                              test_cfg)[0]
        results.append((losses, detections))
    (my_losses, mine), (ref_losses, ref) = results
    assert my_losses.keys() == ref_losses.keys()
    for key in ref_losses:
        torch.testing.assert_close(my_losses[key], ref_losses[key], rtol=1e-5, atol=1e-6)
    assert len(mine) == len(ref) > 0
    assert torch.equal(mine.labels, ref.labels)
    torch.testing.assert_close(mine.bboxes, ref.bboxes, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(mine.scores, ref.scores, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_detector_trains_under_autocast_where_mmdet_stops(repo):
    """Our R50-FPN detector (every head and task module ours) takes a training step
    with its forward under bfloat16 autocast and predicts under it; mmdet's twin (same
    weights, an autocast-capable RoIAlign) stops in its RPN's proposal layer (see
    :func:`test_rpn_proposals_under_autocast_where_mmdet_stops`)."""
    ours_cfg = Config.fromfile(repo / 'configs/_base_/models/faster-rcnn_r50_fpn_scratch.py').model
    ours_cfg.backbone.init_cfg = None
    theirs_cfg = r50_model()
    layer = theirs_cfg.roi_head.bbox_roi_extractor.roi_layer
    theirs_cfg.roi_head.bbox_roi_extractor.roi_layer = dict(layer, type=TorchvisionRoIAlign)
    batch = detector_batch()
    torch.manual_seed(0)
    theirs = MODELS.build(theirs_cfg)
    data = theirs.data_preprocessor(copy.deepcopy(batch), True)
    with bf16_autocast(), pytest.raises(RuntimeError, match='but found BFloat16'):
        theirs(**data, mode='loss')

    ours = MODELS.build(ours_cfg)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    optim = OptimWrapper(torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9))
    torch.manual_seed(0)
    with bf16_autocast():
        data = ours.data_preprocessor(copy.deepcopy(batch), True)
        losses = ours(**data, mode='loss')
    total, log_vars = ours.parse_losses(losses)
    assert total.dtype == torch.float32 and torch.isfinite(total)
    optim.update_params(total)  # the backward outside autocast, as mmengine's wrappers
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in ours.parameters())
    ours.eval()
    with torch.no_grad(), bf16_autocast():
        predictions = ours.test_step(copy.deepcopy(batch))
    assert len(predictions) == 2
