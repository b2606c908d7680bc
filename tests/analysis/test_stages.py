"""The stage helpers on the tutorials' setting, without a backbone: the Korean
walkthrough's 800 x 800 anchors and zebra boxes give the tutorials' numbers; and the
RoI head's path, shared head included, is the detector's own."""
import pytest
import torch
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from frcnn_plugin.analysis.stages import (
    bbox_forward,
    best_anchor_ious,
    gts_with_positive_anchor,
    image_anchors,
    pooled_features,
    rcnn_outputs,
)

ZEBRAS = torch.tensor([[89, 469, 249, 644], [238, 417, 415, 630], [435, 419, 580, 634],
                       [617, 462, 765, 637]], dtype=torch.float32)
META = dict(img_shape=(800, 800), pad_shape=(800, 800))


def tutorial_anchors(allowed_border=0):
    generator = TASK_UTILS.build(dict(type='ScratchAnchorGenerator', strides=[16],
                                      scales=[8, 16, 32], ratios=[0.5, 1.0, 2.0],
                                      center_offset=0.5))
    per_level, inside = image_anchors(generator, [(50, 50)], META, allowed_border)
    return torch.cat(per_level), inside


def test_tutorial_anchor_counts():
    anchors, inside = tutorial_anchors()
    assert anchors.shape == (22500, 4) and int(inside.sum()) == 8940
    assert int(tutorial_anchors(allowed_border=-1)[1].sum()) == 22500


def test_zebra_best_ious_and_positives():
    anchors, inside = tutorial_anchors()
    assigner = TASK_UTILS.build(dict(type='ScratchMaxIoUAssigner', pos_iou_thr=0.7,
                                     neg_iou_thr=0.3, min_pos_iou=0.3))
    best, reach = best_anchor_ious(assigner.iou_calculator, ZEBRAS, anchors[inside])
    # The PyTorch practice notebook: [0.58514285 0.5752716 0.5255493 0.6325869].
    assert [round(v, 4) for v in best.tolist()] == [0.5851, 0.5753, 0.5255, 0.6326]
    # float32 IoUs (the Korean walkthrough's float64: 6, 24, 12, 3)
    assert reach.tolist() == [6, 15, 6, 3]
    gt = InstanceData(bboxes=ZEBRAS, labels=torch.zeros(4, dtype=torch.long))
    assert gts_with_positive_anchor(assigner, anchors[inside], gt).all()
    strict = TASK_UTILS.build(dict(type='ScratchMaxIoUAssigner', pos_iou_thr=0.7,
                                   neg_iou_thr=0.3, min_pos_iou=0.6))
    assert gts_with_positive_anchor(strict, anchors[inside], gt).tolist() == [
        False, False, False, True]  # only the last zebra's best IoU (0.6326) reaches 0.6


NUM_CLASSES = 4


def c4_roi_head(head_type):
    """A C4-style RoI head (mmdet's faster-rcnn_r50-caffe-c4): 14 x 14 RoIAlign on a
    256-channel stride-16 map, a ResNet stage as ``shared_head`` (256 -> 512 channels,
    stride 2: 7 x 7), a ``BBoxHead`` that average-pools it. Random weights, eval mode."""
    torch.manual_seed(3)
    head = MODELS.build(ConfigDict(
        type=head_type,
        shared_head=dict(type='ResLayer', depth=18, stage=3, stride=2, norm_eval=False),
        bbox_roi_extractor=dict(type='SingleRoIExtractor', out_channels=256,
                                roi_layer=dict(type='RoIAlign', output_size=14,
                                               sampling_ratio=0),
                                featmap_strides=[16]),
        bbox_head=dict(type='BBoxHead', with_avg_pool=True, roi_feat_size=7,
                       in_channels=512, num_classes=NUM_CLASSES,
                       bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                       target_stds=[0.1, 0.1, 0.2, 0.2])),
        test_cfg=dict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=100)))
    head.init_weights()
    with torch.no_grad():  # spread the class scores so that detections differ by class
        head.bbox_head.fc_cls.weight.normal_(0, 0.5)
    return head.eval()


@pytest.mark.parametrize('head_type', ['ScratchRoIHead', 'StandardRoIHead'])
def test_head_with_shared_head_gives_the_detectors_numbers(head_type):
    """The analysis runs the RoI head's own pooling + shared head + box head: its scores
    and detections are the detector's (``roi_head.forward`` / ``roi_head.predict``)."""
    head = c4_roi_head(head_type)
    assert head.with_shared_head
    g = torch.Generator().manual_seed(0)
    feats = (torch.randn(1, 256, 12, 16, generator=g),)
    img_meta = dict(img_shape=(192, 256), ori_shape=(192, 256), scale_factor=(1.0, 1.0))
    xy = torch.rand(30, 2, generator=g) * torch.tensor([200., 150.])
    proposals = torch.cat([xy, xy + 16 + torch.rand(30, 2, generator=g) * 40], dim=1)
    sample = DetDataSample(metainfo=img_meta)

    with torch.no_grad():
        cls_score, bbox_pred = head.forward(feats, [InstanceData(bboxes=proposals)])
        theirs = head.predict(feats, [InstanceData(bboxes=proposals)], [sample],
                              rescale=False)[0]
        rois = torch.cat([proposals.new_zeros(30, 1), proposals], dim=1)
        ours = bbox_forward(head, feats, rois)
        candidates, detections = rcnn_outputs(head, feats, proposals, img_meta, head.test_cfg)
        pooled = pooled_features(head, feats, rois)

    assert pooled.shape == (30, 256, 14, 14)  # before the shared head
    assert ours['bbox_feats'].shape == (30, 512, 7, 7)  # after it
    torch.testing.assert_close(ours['cls_score'], cls_score, rtol=0, atol=0)
    torch.testing.assert_close(ours['bbox_pred'], bbox_pred, rtol=0, atol=0)
    assert candidates.scores.shape == (30, NUM_CLASSES + 1)
    torch.testing.assert_close(candidates.scores, cls_score.softmax(-1))
    assert len(detections) == len(theirs) > 0
    assert torch.equal(detections.labels, theirs.labels)
    torch.testing.assert_close(detections.bboxes, theirs.bboxes, rtol=0, atol=0)
    torch.testing.assert_close(detections.scores, theirs.scores, rtol=0, atol=0)
    # Without the shared head the box head would see other features (and here cannot
    # take them at all): the shared head is what makes these numbers.
    with pytest.raises(RuntimeError):
        head.bbox_head(pooled)
