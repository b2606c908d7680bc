"""The pictures of ``tools/explain.py`` (:mod:`.walkthrough`): the resized image on its
padded canvas with boxes drawn over it, and one function per picture.

Each ``fig_*`` function takes what a stage returned (boxes ``(n, 4)`` as ``[x1, y1,
x2, y2]`` in the resized image's pixels, feature maps, ``InstanceData``) and returns a
matplotlib ``Figure``; :mod:`.walkthrough` names and saves it. Figures are made
without ``pyplot``: no backend to choose, no global state, nothing to close.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from mmengine.structures import InstanceData
from torch import Tensor


class Frame(NamedTuple):
    """The image as the detector sees it, for drawing."""
    picture: np.ndarray           # (H, W, 3) RGB uint8, the resized image
    pad_shape: Tuple[int, int]    # (H_pad, W_pad) of the padded input tensor


# --------------------------------------------------------------------- canvas
def canvas(frame: Frame, title: str, margin: float = 0.0):
    """``(fig, ax)``: the resized image on its padded (black) canvas, with ``margin``
    pixels of white around it (room for anchors that reach past the image)."""
    pad_h, pad_w = frame.pad_shape
    height, width = frame.picture.shape[:2]
    span_w, span_h = pad_w + 2 * margin, pad_h + 2 * margin
    fig = Figure(figsize=(10, 10 * span_h / span_w + 0.8))
    ax = fig.subplots()
    ax.add_patch(Rectangle((0, 0), pad_w, pad_h, color='black', zorder=-1))  # padding
    ax.imshow(frame.picture, extent=(0, width, height, 0))
    ax.set_xlim(-margin, pad_w + margin)
    ax.set_ylim(pad_h + margin, -margin)
    ax.set_title(title, fontsize=11)
    return fig, ax


def draw_boxes(ax, boxes: Tensor, color, lw=1.0, alpha=1.0, labels=None) -> None:
    """Rectangles (one LineCollection, fast for 20k anchors), optional labels."""
    boxes = boxes.detach().reshape(-1, 4).float()
    if boxes.numel():
        x1, y1, x2, y2 = boxes.unbind(1)
        corners = torch.stack([torch.stack(p, 1) for p in
                               ((x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1))], 1)
        ax.add_collection(LineCollection(corners.numpy(), colors=[color], linewidths=lw,
                                         alpha=alpha))
    for i, (x1, y1, _, _) in enumerate(boxes.tolist() if labels is not None else []):
        ax.text(x1, y1, labels[i], color='white', fontsize=7, va='bottom',
                bbox=dict(facecolor=color, alpha=0.7, pad=1, lw=0))


def draw_gt(ax, gt: Optional[InstanceData], names: Sequence[str]) -> None:
    if gt is not None:
        draw_boxes(ax, gt.bboxes, 'yellow', lw=2.0, labels=[names[i] for i in gt.labels])


def margin_for(boxes: Tensor, pad_shape: Tuple[int, int]) -> float:
    """How far ``boxes`` reach outside the padded canvas (0 if they stay inside)."""
    if boxes.numel() == 0:
        return 0.0
    beyond = boxes[:, 2:] - boxes.new_tensor(pad_shape[::-1])
    return float(max(0, -boxes[:, :2].min(), beyond.max()))


def crop(picture: np.ndarray, box: Tensor) -> np.ndarray:
    """The part of ``picture`` under ``box`` (at least one pixel)."""
    x1, y1, x2, y2 = box.round().int().tolist()
    part = picture[max(y1, 0):max(y2, 1), max(x1, 0):max(x2, 1)]
    return part if part.size else picture[:1, :1]


# ------------------------------------------------------------------- pictures
def fig_input_gt(frame: Frame, gt: Optional[InstanceData], names) -> Figure:
    count = 'no gt given' if gt is None else f'{len(gt)} gt boxes (yellow)'
    fig, ax = canvas(frame, f'Input: the image resized to {frame.picture.shape[1]} x '
                     f'{frame.picture.shape[0]} as the test pipeline does, {count}')
    draw_gt(ax, gt, names)
    return fig


def fig_feature_map(feats: Sequence[Tensor], count: int = 5) -> Figure:
    """The first ``count`` channels of the first (finest) level of image 0."""
    level = feats[0][0]  # (C, H, W)
    count = min(count, level.size(0))
    fig = Figure(figsize=(3 * count, 3.4))
    axes = fig.subplots(1, count, squeeze=False)
    for c, ax in enumerate(axes[0]):
        ax.imshow(level[c].numpy(), cmap='gray')
        ax.set_title(f'channel {c}', fontsize=9)
        ax.axis('off')
    fig.suptitle(f'Backbone feature map {tuple(level.shape)} (channels, h, w): the first '
                 f'{count} channels', fontsize=10)
    return fig


def fig_anchor_centres(frame: Frame, per_level: Sequence[Tensor], prior_generator) -> Figure:
    fig, ax = canvas(frame, f'Anchor centres: one per feature-map cell, strides '
                     f'{prior_generator.strides}')
    for level, (level_anchors, num) in enumerate(zip(per_level,
                                                     prior_generator.num_base_priors)):
        centres = (level_anchors[::num, :2] + level_anchors[::num, 2:]) / 2
        ax.scatter(centres[:, 0], centres[:, 1], s=4, color=f'C{level}',
                   label=f'level {level}: {len(centres)} centres')
    ax.legend(loc='upper right', fontsize=8)
    return fig


def centre_cell_anchors(per_level: Sequence[Tensor], featmap_sizes, num_base_priors
                        ) -> List[Tensor]:
    """Per level, the anchors ``(num_base_priors[l], 4)`` of the cell nearest the
    feature map's centre (anchors are ordered cell by cell, row-major)."""
    result = []
    for (feat_h, feat_w), level_anchors, num in zip(featmap_sizes, per_level, num_base_priors):
        cell = (feat_h // 2) * feat_w + feat_w // 2
        result.append(level_anchors[cell * num:(cell + 1) * num])
    return result


def fig_anchors_one_location(frame: Frame, per_level, featmap_sizes, prior_generator, gt,
                             names) -> Figure:
    anchors = centre_cell_anchors(per_level, featmap_sizes, prior_generator.num_base_priors)
    fig, ax = canvas(frame, 'Anchors at one location (the cell at the image centre): '
                     f'{prior_generator.num_base_priors} per level; gt yellow',
                     margin_for(torch.cat(anchors), frame.pad_shape))
    for level, level_anchors in enumerate(anchors):
        draw_boxes(ax, level_anchors, f'C{level}', lw=1.5)
    draw_gt(ax, gt, names)
    return fig


def fig_anchors_all(frame: Frame, anchors: Tensor, inside: Tensor, allowed_border) -> Figure:
    fig, ax = canvas(frame, f'All {anchors.size(0)} anchors on a canvas padded to hold them: '
                     f'green {int(inside.sum())} inside the image (allowed_border='
                     f'{allowed_border}), red {int((~inside).sum())} ignored',
                     margin_for(anchors, frame.pad_shape))
    draw_boxes(ax, anchors[~inside], 'red', lw=0.2, alpha=0.25)
    draw_boxes(ax, anchors[inside], 'lime', lw=0.2, alpha=0.4)
    return fig


def fig_rpn_targets(frame: Frame, pos_anchors: Tensor, neg_anchors: Tensor, gt,
                    names) -> Figure:
    fig, ax = canvas(frame, f'RPN targets (train_cfg.rpn assigner + sampler): '
                     f'{len(pos_anchors)} positive anchors (green), {len(neg_anchors)} '
                     'negative (red); gt yellow')
    draw_boxes(ax, neg_anchors, 'red', lw=0.5, alpha=0.5)
    draw_boxes(ax, pos_anchors, 'lime', lw=1.0)
    draw_gt(ax, gt, names)
    return fig


def fig_proposals(frame: Frame, proposals: InstanceData, top_n: int) -> Figure:
    top = proposals.bboxes[:top_n]
    fig, ax = canvas(frame, f'RPN proposals after NMS (test_cfg.rpn): the best {len(top)} '
                     f'of {len(proposals)} (brighter = higher objectness)')
    autumn = colormaps['autumn']
    for rank, box in enumerate(top.flip(0)):
        draw_boxes(ax, box[None], autumn(rank / max(len(top), 1)), lw=1.0)
    return fig


def fig_rcnn_samples(frame: Frame, sampling, names) -> Figure:
    fig, ax = canvas(frame, 'Sampled RoIs (train_cfg.rcnn): '
                     f'{len(sampling.pos_inds)} positive (green, with their gt class), '
                     f'{len(sampling.neg_inds)} negative (red)')
    draw_boxes(ax, sampling.neg_priors, 'red', lw=0.5, alpha=0.5)
    draw_boxes(ax, sampling.pos_priors, 'lime', lw=1.0,
               labels=[names[i] for i in sampling.pos_gt_labels])
    return fig


def fig_rois(frame: Frame, rois: Tensor, gt, names, positive: bool) -> Figure:
    kind = 'positive (IoU with a gt >= pos_iou_thr)' if positive else \
        'negative (background: IoU below neg_iou_thr)'
    fig, ax = canvas(frame, f'The {len(rois)} {kind} sampled RoIs (white); gt yellow')
    draw_boxes(ax, rois, 'white', lw=1.0, alpha=0.8)
    draw_gt(ax, gt, names)
    return fig


def fig_roi_features(picture: np.ndarray, rois: Tensor, pooled: Tensor, extractor_name: str,
                     channels: int) -> Figure:
    """Per RoI of ``rois (n, 5)``: the image under it, then the first ``channels`` of its
    pooled map ``pooled (n, C, h, w)``."""
    channels = min(channels, pooled.size(1))
    fig = Figure(figsize=(1.6 * (channels + 1), 1.7 * len(rois) + 0.6))
    axes = fig.subplots(len(rois), channels + 1, squeeze=False)
    for i, roi in enumerate(rois):
        axes[i, 0].imshow(crop(picture, roi[1:]))
        axes[i, 0].set_title(f'proposal {i}', fontsize=8)
        for c in range(channels):
            axes[i, c + 1].imshow(pooled[i, c].numpy(), cmap='viridis')
            axes[i, c + 1].set_title(f'ch {c}', fontsize=8)
    for axis in axes.flat:
        axis.axis('off')
    fig.suptitle(f'Pooled RoI features ({extractor_name}, {tuple(pooled.shape[-2:])}): '
                 f'first {channels} channels of the first {len(rois)} proposals', fontsize=10)
    return fig


def fig_pooled_crops(picture: np.ndarray, rois: Tensor, pooled: Tensor, labels: Sequence[int],
                     names) -> Figure:
    """Per RoI: the image under it (titled with its class, ``background`` for labels
    past the classes) over its pooled map's maximum over channels."""
    count = len(rois)
    fig = Figure(figsize=(2.2 * count, 4.8))
    axes = fig.subplots(2, count, squeeze=False)
    for i in range(count):
        name = names[labels[i]] if labels[i] < len(names) else 'background'
        axes[0, i].imshow(crop(picture, rois[i, 1:]))
        axes[0, i].set_title(f'RoI {i}: {name}', fontsize=8)
        axes[1, i].imshow(pooled[i].amax(0).numpy(), cmap='viridis')
        axes[1, i].set_title('pooled, max over channels', fontsize=7)
    for axis in axes.flat:
        axis.axis('off')
    fig.suptitle(f'The first {count} sampled RoIs: the image under each (top) and its '
                 f'{tuple(pooled.shape[-2:])} pooled feature map (bottom)', fontsize=10)
    return fig


def fig_detections(frame: Frame, detections: InstanceData, score_thr: float, names) -> Figure:
    """The detections scoring at least ``score_thr``, with class names and scores."""
    keep = detections.scores >= score_thr
    fig, ax = canvas(frame, f'Detections: {int(keep.sum())} with score >= {score_thr} '
                     f'(of {len(detections)})')
    draw_boxes(ax, detections.bboxes[keep], 'cyan', lw=1.5,
               labels=[f'{names[label] if label < len(names) else label} {score:.2f}'
                       for label, score in zip(detections.labels[keep].tolist(),
                                               detections.scores[keep].tolist())])
    return fig
