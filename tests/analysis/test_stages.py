"""The stage helpers on the seeds' setting, without a backbone: seed 000's 800 x 800
anchors and zebra boxes give the seeds' numbers."""
import torch
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

from frcnn_plugin.analysis.stages import best_anchor_ious, gts_with_positive_anchor, image_anchors

ZEBRAS = torch.tensor([[89, 469, 249, 644], [238, 417, 415, 630], [435, 419, 580, 634],
                       [617, 462, 765, 637]], dtype=torch.float32)
META = dict(img_shape=(800, 800), pad_shape=(800, 800))


def seed_anchors(allowed_border=0):
    generator = TASK_UTILS.build(dict(type='ScratchAnchorGenerator', strides=[16],
                                      scales=[8, 16, 32], ratios=[0.5, 1.0, 2.0],
                                      center_offset=0.5))
    per_level, inside = image_anchors(generator, [(50, 50)], META, allowed_border)
    return torch.cat(per_level), inside


def test_seed_anchor_counts():
    anchors, inside = seed_anchors()
    assert anchors.shape == (22500, 4) and int(inside.sum()) == 8940
    assert int(seed_anchors(allowed_border=-1)[1].sum()) == 22500


def test_zebra_best_ious_and_positives():
    anchors, inside = seed_anchors()
    assigner = TASK_UTILS.build(dict(type='ScratchMaxIoUAssigner', pos_iou_thr=0.7,
                                     neg_iou_thr=0.3, min_pos_iou=0.3))
    best, reach = best_anchor_ious(assigner.iou_calculator, ZEBRAS, anchors[inside])
    # Seed 003: [0.58514285 0.5752716 0.5255493 0.6325869].
    assert [round(v, 4) for v in best.tolist()] == [0.5851, 0.5753, 0.5255, 0.6326]
    assert reach.tolist() == [6, 15, 6, 3]  # float32 IoUs (the seed's float64: 6, 24, 12, 3)
    gt = InstanceData(bboxes=ZEBRAS, labels=torch.zeros(4, dtype=torch.long))
    assert gts_with_positive_anchor(assigner, anchors[inside], gt).all()
    strict = TASK_UTILS.build(dict(type='ScratchMaxIoUAssigner', pos_iou_thr=0.7,
                                   neg_iou_thr=0.3, min_pos_iou=0.6))
    assert gts_with_positive_anchor(strict, anchors[inside], gt).tolist() == [
        False, False, False, True]  # only the last zebra's best IoU (0.6326) reaches 0.6
