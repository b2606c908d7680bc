"""The tutorials' anchor target layer, re-expressed from the Korean walkthrough's '2. Anchor
Generation Layer' and '3. Anchor Target Layer' (the PyTorch practice notebook has the same
code; docs/references.md) with its Python loops, beside the same step done by our
components, for tools/benchmark.py's ``tutorial_speedup.anchor_target``.

Both take the walkthrough's 800x800 zebra image (stride 16: a 50x50 map, 9 anchors per
cell) and its 4 gt boxes, and return a dict with ``anchors (N, 4)`` in its order,
``inside (N,)`` bool, ``max_ious (N,)`` (0 outside), ``positive (N,)`` bool (before
sampling), ``labels (N,)`` (1 / 0 / -1 after sampling 256) and the positives' targets.
"""
import numpy as np
import torch
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

import frcnn_plugin  # noqa: F401
from frcnn_plugin.boxes import anchors_inside

IMAGE_SIZE = 800
SUB_SAMPLE = 16
RATIOS = [0.5, 1, 2]
SCALES = [8, 16, 32]
# The Korean walkthrough's zebra boxes in the 1333x2000 original, resized to 800x800
# with int().
ZEBRAS = np.array([[223, 782, 623, 1074], [597, 695, 1038, 1050],
                   [1088, 699, 1452, 1057], [1544, 771, 1914, 1063]])


def zebra_boxes():
    ratio = [IMAGE_SIZE / 2000, IMAGE_SIZE / 1333] * 2
    return np.array([[int(a * b) for a, b in zip(box, ratio)] for box in ZEBRAS])


def tutorial_anchor_target(bbox, rng):
    """The tutorial's code, loops and all (numpy ``rng`` for its np.random.choice)."""
    feature_size = IMAGE_SIZE // SUB_SAMPLE
    ctr_x = np.arange(16, (feature_size + 1) * 16, 16)
    ctr_y = np.arange(16, (feature_size + 1) * 16, 16)
    index = 0
    ctr = np.zeros((feature_size * feature_size, 2))
    for i in range(len(ctr_x)):
        for j in range(len(ctr_y)):
            ctr[index, 1] = ctr_x[i] - 8
            ctr[index, 0] = ctr_y[j] - 8
            index += 1

    anchor_boxes = np.zeros(((feature_size * feature_size * 9), 4))
    index = 0
    for c in ctr:
        ctr_y, ctr_x = c
        for i in range(len(RATIOS)):
            for j in range(len(SCALES)):
                h = SUB_SAMPLE * SCALES[j] * np.sqrt(RATIOS[i])
                w = SUB_SAMPLE * SCALES[j] * np.sqrt(1. / RATIOS[i])
                anchor_boxes[index, 1] = ctr_y - h / 2.
                anchor_boxes[index, 0] = ctr_x - w / 2.
                anchor_boxes[index, 3] = ctr_y + h / 2.
                anchor_boxes[index, 2] = ctr_x + w / 2.
                index += 1

    index_inside = np.where((anchor_boxes[:, 0] >= 0) & (anchor_boxes[:, 1] >= 0)
                            & (anchor_boxes[:, 2] <= IMAGE_SIZE)
                            & (anchor_boxes[:, 3] <= IMAGE_SIZE))[0]
    valid_anchor_boxes = anchor_boxes[index_inside]

    ious = np.empty((len(valid_anchor_boxes), len(bbox)), dtype=np.float32)
    ious.fill(0)
    for i, anchor_box in enumerate(valid_anchor_boxes):
        xa1, ya1, xa2, ya2 = anchor_box
        anchor_area = (xa2 - xa1) * (ya2 - ya1)
        for j, gt_box in enumerate(bbox):
            xb1, yb1, xb2, yb2 = gt_box
            box_area = (xb2 - xb1) * (yb2 - yb1)
            inter_x1 = max([xb1, xa1])
            inter_y1 = max([yb1, ya1])
            inter_x2 = min([xb2, xa2])
            inter_y2 = min([yb2, ya2])
            if (inter_x1 < inter_x2) and (inter_y1 < inter_y2):
                inter_area = (inter_x2 - inter_x1) * (inter_y2 - inter_y1)
                iou = inter_area / (anchor_area + box_area - inter_area)
            else:
                iou = 0
            ious[i, j] = iou

    gt_argmax_ious = ious.argmax(axis=0)
    gt_max_ious = ious[gt_argmax_ious, np.arange(ious.shape[1])]
    gt_argmax_ious = np.where(ious == gt_max_ious)[0]
    argmax_ious = ious.argmax(axis=1)
    max_ious = ious[np.arange(len(index_inside)), argmax_ious]

    label = np.empty((len(index_inside),), dtype=np.int32)
    label.fill(-1)
    label[gt_argmax_ious] = 1
    label[max_ious >= 0.7] = 1
    label[max_ious < 0.3] = 0
    positive = label == 1

    n_sample, pos_ratio = 256, 0.5
    n_pos = int(pos_ratio * n_sample)
    pos_index = np.where(label == 1)[0]
    if len(pos_index) > n_pos:
        disable_index = rng.choice(pos_index, size=(len(pos_index) - n_pos), replace=False)
        label[disable_index] = -1
    # The tutorial writes `n_sample * np.sum(label == 1)`, which keeps every negative; its
    # intent (py-faster-rcnn's num_bg) is the rest of the 256, as ours samples.
    n_neg = n_sample - np.sum(label == 1)
    neg_index = np.where(label == 0)[0]
    if len(neg_index) > n_neg:
        disable_index = rng.choice(neg_index, size=(len(neg_index) - n_neg), replace=False)
        label[disable_index] = -1

    max_iou_bbox = bbox[argmax_ious]
    height = valid_anchor_boxes[:, 3] - valid_anchor_boxes[:, 1]
    width = valid_anchor_boxes[:, 2] - valid_anchor_boxes[:, 0]
    ctr_y = valid_anchor_boxes[:, 1] + 0.5 * height
    ctr_x = valid_anchor_boxes[:, 0] + 0.5 * width
    base_height = max_iou_bbox[:, 3] - max_iou_bbox[:, 1]
    base_width = max_iou_bbox[:, 2] - max_iou_bbox[:, 0]
    base_ctr_y = max_iou_bbox[:, 1] + 0.5 * base_height
    base_ctr_x = max_iou_bbox[:, 0] + 0.5 * base_width
    eps = np.finfo(height.dtype).eps
    height = np.maximum(height, eps)
    width = np.maximum(width, eps)
    dy = (base_ctr_y - ctr_y) / height
    dx = (base_ctr_x - ctr_x) / width
    dh = np.log(base_height / height)
    dw = np.log(base_width / width)
    anchor_locs = np.vstack((dx, dy, dw, dh)).transpose()

    anchor_labels = np.empty((len(anchor_boxes),), dtype=label.dtype)
    anchor_labels.fill(-1)
    anchor_labels[index_inside] = label
    anchor_locations = np.zeros_like(anchor_boxes)
    anchor_locations[index_inside, :] = anchor_locs

    full = np.zeros(len(anchor_boxes))
    full[index_inside] = max_ious
    inside = np.zeros(len(anchor_boxes), dtype=bool)
    inside[index_inside] = True
    pos_full = np.zeros(len(anchor_boxes), dtype=bool)
    pos_full[index_inside] = positive
    return dict(anchors=anchor_boxes, inside=inside, max_ious=full, positive=pos_full,
                labels=anchor_labels, targets=anchor_locations[anchor_labels == 1])


class OursAnchorTarget:
    """The same step with our components, configured as the tutorials' model's RPN
    (configs/_base_/models/faster-rcnn_vgg16.py)."""

    def __init__(self):
        self.generator = TASK_UTILS.build(dict(
            type='ScratchAnchorGenerator', strides=[SUB_SAMPLE], scales=SCALES,
            ratios=RATIOS, center_offset=0.5))
        self.assigner = TASK_UTILS.build(dict(
            type='ScratchMaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
            match_low_quality=True, iou_calculator=dict(type='ScratchBboxOverlaps2D')))
        self.sampler = TASK_UTILS.build(dict(type='ScratchRandomSampler', num=256,
                                             pos_fraction=0.5, add_gt_as_proposals=False))
        self.coder = TASK_UTILS.build(dict(type='ScratchDeltaXYWHBBoxCoder'))

    def __call__(self, bbox):
        size = IMAGE_SIZE // SUB_SAMPLE
        anchors = self.generator.grid_priors([(size, size)], device='cpu')[0]
        inside = anchors_inside(anchors, (IMAGE_SIZE, IMAGE_SIZE), 0)
        priors = InstanceData(priors=anchors[inside])
        gts = InstanceData(bboxes=bbox, labels=bbox.new_zeros(len(bbox), dtype=torch.long))
        assign = self.assigner.assign(priors, gts)
        sample = self.sampler.sample(assign, priors, gts)
        targets = self.coder.encode(sample.pos_priors, sample.pos_gt_bboxes)
        labels = anchors.new_full((len(anchors),), -1, dtype=torch.long)
        valid = inside.nonzero().view(-1)
        labels[valid[sample.pos_inds]] = 1
        labels[valid[sample.neg_inds]] = 0
        max_ious = anchors.new_zeros(len(anchors))
        max_ious[valid] = assign.max_overlaps
        positive = torch.zeros_like(inside)
        positive[valid[assign.gt_inds > 0]] = True
        return dict(anchors=anchors, inside=inside, max_ious=max_ious, positive=positive,
                    labels=labels, targets=targets)


def tutorial_order(values):
    """Ours ``(y, x, anchor)``-ordered rows in the tutorial's ``(x, y, anchor)`` order."""
    size = IMAGE_SIZE // SUB_SAMPLE
    return values.reshape(size, size, 9, -1).transpose(0, 1).reshape(size * size * 9, -1) \
        .squeeze(-1)
