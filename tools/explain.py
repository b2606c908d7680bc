#!/usr/bin/env python
"""Show, for one image, what each step of Faster R-CNN does: the seeds' walkthrough.

    python tools/explain.py CONFIG IMAGE --out-dir DIR [--checkpoint CKPT]
        [--gt "x1,y1,x2,y2[,label];..." | --gt-voc XML | --gt-coco JSON --image-id ID
         | --gt-kitti LABEL_FILE] [--seed-setting] [--top-n 50] [--num-rois 4]
        [--score-thr 0.3] [--seed 0] [--cfg-options KEY=VALUE ...]

Every number and box comes from the detector the config builds (mmdet's registries:
our components, or mmdet's where a config swaps them back), run on the image as the
test pipeline prepares it. Nothing here re-implements a step; the tool calls the
modules (``frcnn_plugin.analysis.stages`` opens them up) and draws what they return:

    01_input_gt               the resized input with the gt boxes (seed 000, "4")
    02_feature_map            the first 5 channels of the backbone's feature map ("5")
    03_anchor_centres         rpn_head.prior_generator.grid_priors: the centres ("6")
    04_anchors_one_location   the anchors of the cell at the image centre, with the gt
    05_anchors_all            every anchor on a canvas padded to hold them all ("7");
                              inside-image ones (valid flags + allowed_border) green
    06_rpn_targets            rpn_head.get_targets: sampled positive / negative
                              anchors against the gt boxes                  (needs gt)
    07_proposals              rpn_head.predict with test_cfg.rpn: the top-N after NMS
    08_rcnn_samples           roi_head.bbox_assigner / bbox_sampler on the training
                              proposals (train_cfg.rpn_proposal) + gt        (needs gt)
    09_rois_positive,         the same sampled RoIs, positives and negatives apart,
    10_rois_negative          with the gt (seed 000, "8" and "9")           (needs gt)
    11_roi_features           roi_head.bbox_roi_extractor: first channels of the pooled
                              features of the first proposals
    12_pooled_crops           the first sampled RoIs: image crop and pooled map (needs gt)
    13_detections             roi_head.predict on the proposals of 07 (model.predict's
                              second half): final boxes with class names and scores

Ground truth comes from ``--gt`` (boxes typed in the image's pixels, label a class
index or name), a VOC XML, a COCO json (``--image-id``: the image's id or file name)
or a KITTI label file, read as mmdet's datasets read those formats
(``frcnn_plugin.analysis.ground_truth``). Without gt the target pictures are skipped.

``--seed-setting`` runs the seeds' exact setting whatever the config says: the image
resized to 800 x 800 (aspect ratio not kept), VGG16 conv5_3 (stride 16, 512 channels),
anchor scales 8/16/32 and ratios 0.5/1/2 centred in their cell, cross-boundary anchors
ignored (``allowed_border=0``). With seed 000's zebra boxes on any 800 x 800 image,
``--gt "89,469,249,644;238,417,415,630;435,419,580,634;617,462,765,637"``, the summary
gives the seeds' best anchor IoUs 0.5851 / 0.5753 / 0.5255 / 0.6326.

Without ``--checkpoint`` the model is untrained (its config's init): anchors, IoUs,
targets and the proposal machinery are still the real ones, only scores are random.
``summary.txt`` lists the seeds' printed numbers step by step and, last, how each
compares with the seeds and why some differ.
"""
import argparse
import copy
import os
import os.path as osp
import sys
from dataclasses import dataclass
from typing import List, Optional

import env_check  # first: without the environment, one line instead of a traceback

env_check.require_environment()
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import matplotlib  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from mmdet.structures.bbox import bbox2roi  # noqa: E402
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402
from torch import Tensor  # noqa: E402

import frcnn_plugin  # noqa: E402,F401  registers our components
from frcnn_plugin.analysis.ground_truth import read_ground_truth, scale_to_resized  # noqa: E402
from frcnn_plugin.analysis.stages import best_anchor_ious, image_anchors  # noqa: E402
from frcnn_plugin.utils.pipelines import inference_pipeline  # noqa: E402
from frcnn_plugin.utils.pretrained import drop_unfetchable_weights  # noqa: E402

#: The seeds' setting (seeds 000 / 002 / 003): 800 x 800, VGG16 conv5_3, 9 anchors.
SEED_IMAGE_SIZE = (800, 800)
SEED_ANCHORS = dict(strides=[16], scales=[8, 16, 32], ratios=[0.5, 1.0, 2.0],
                    center_offset=0.5)
#: Seed 000's zebra boxes in the 800 x 800 frame and seed 003's best IoUs for them.
ZEBRA_BOXES = '89,469,249,644;238,417,415,630;435,419,580,634;617,462,765,637'
ZEBRA_BEST_IOUS = (0.5851, 0.5753, 0.5255, 0.6326)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('image')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--checkpoint', help='trained weights; default: untrained model')
    gt = parser.add_argument_group('ground truth (one of)')
    gt.add_argument('--gt', metavar='"x1,y1,x2,y2[,label];..."',
                    help='boxes in the image\'s pixels; label: class index or name (default 0)')
    gt.add_argument('--gt-voc', metavar='XML', help='VOC annotation file of the image')
    gt.add_argument('--gt-coco', metavar='JSON', help='COCO annotation file (with --image-id)')
    gt.add_argument('--image-id', help='the image\'s id (or file_name) in --gt-coco')
    gt.add_argument('--gt-kitti', metavar='FILE', help='KITTI label file of the image')
    parser.add_argument('--seed-setting', action='store_true',
                        help='the seeds\' setting: 800x800, VGG16 conv5_3 stride 16, scales '
                             '8/16/32, ratios 0.5/1/2, cross-boundary anchors ignored')
    parser.add_argument('--top-n', type=int, default=50, help='proposals drawn')
    parser.add_argument('--num-rois', type=int, default=4, help='RoIs in the feature grids')
    parser.add_argument('--num-channels', type=int, default=8,
                        help='channels per RoI in the feature grid')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detections drawn')
    parser.add_argument('--seed', type=int, default=0, help='for init and the samplers')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as tools/train.py (applied last)')
    return parser.parse_args(argv)


# ----------------------------------------------------------------------- setup
def apply_seed_setting(cfg: Config) -> None:
    """The seeds' setting as config overrides of the model and the test pipeline."""
    model = cfg.model
    backbone = model.backbone
    if backbone.type.split('.')[-1] == 'ScratchVGG16':  # the config's weights and freezing
        model.backbone = ConfigDict(type='ScratchVGG16', init_cfg=backbone.get('init_cfg'),
                                    frozen_stages=backbone.get('frozen_stages', -1))
    else:  # another backbone: a VGG16 with torchvision's random initialisation
        model.backbone = ConfigDict(type='ScratchVGG16')
    model.pop('neck', None)
    model.data_preprocessor.pad_size_divisor = 16
    model.rpn_head.in_channels = 512
    model.rpn_head.anchor_generator = ConfigDict(
        type=model.rpn_head.anchor_generator.type, **SEED_ANCHORS)
    model.train_cfg.rpn.allowed_border = 0
    model.roi_head.bbox_roi_extractor.featmap_strides = [16]
    model.roi_head.bbox_roi_extractor.out_channels = 512
    model.roi_head.bbox_head.in_channels = 512
    dataset = cfg.test_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:  # dataset wrappers
        dataset = dataset.dataset
    pipeline = [t for t in dataset.pipeline if str(t['type']).split('.')[-1] != 'Resize']
    pipeline.insert(1, dict(type='Resize', scale=SEED_IMAGE_SIZE, keep_ratio=False))
    dataset.pipeline = pipeline


def load_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    if args.seed_setting:
        apply_seed_setting(cfg)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not args.checkpoint:  # the config's own init: its pretrained weights, if they can be had
        drop_unfetchable_weights(cfg)
    return cfg


def class_names(cfg, checkpoint_meta):
    """The checkpoint's dataset classes, else the config's test dataset's."""
    meta = (checkpoint_meta or {}).get('dataset_meta') or {}
    if meta.get('classes'):
        return tuple(meta['classes'])
    from mmdet.registry import DATASETS
    dataset = cfg.test_dataloader.dataset
    if dataset.get('metainfo', {}).get('classes'):
        return tuple(dataset.metainfo.classes)
    return tuple(DATASETS.get(dataset.type).METAINFO['classes'])


def build_model(cfg, checkpoint):
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    meta = None
    if checkpoint:
        meta = load_checkpoint(model, checkpoint, map_location='cpu').get('meta')
    else:
        model.init_weights()
    return model.eval(), meta


@dataclass
class Sample:
    """The image as the detector sees it."""
    inputs: Tensor          # (1, 3, H_pad, W_pad) normalised
    data_samples: list      # [DetDataSample] with the image's metainfo
    picture: np.ndarray     # (H, W, 3) RGB uint8 resized image, for drawing
    img_meta: dict

    @property
    def pad_shape(self):
        return tuple(self.inputs.shape[-2:])


def prepare(cfg, model, image) -> Sample:
    """Test pipeline (without annotations) + the model's data preprocessor."""
    from mmcv.transforms import Compose
    packed = Compose(inference_pipeline(cfg))(dict(img_path=image, img_id=0))
    data = model.data_preprocessor(
        dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]), False)
    picture = packed['inputs'][[2, 1, 0]].permute(1, 2, 0).numpy()  # BGR -> RGB
    return Sample(data['inputs'], data['data_samples'], picture,
                  data['data_samples'][0].metainfo)


class Report:
    """``summary.txt`` lines and the pictures written to ``out_dir``."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.lines: List[str] = []
        self.pictures: List[str] = []

    def add(self, key: str, value) -> None:
        self.lines.append(f'{key}: {value}')

    def section(self, title: str) -> None:
        self.lines.append(f'\n== {title}')

    def save(self, fig, name: str) -> None:
        fig.savefig(osp.join(self.out_dir, name), dpi=80, bbox_inches='tight')
        plt.close(fig)
        self.pictures.append(name)

    def write(self) -> str:
        self.add('pictures', ', '.join(self.pictures))
        text = '\n'.join(self.lines).lstrip('\n') + '\n'
        with open(osp.join(self.out_dir, 'summary.txt'), 'w') as f:
            f.write(text)
        return text


# --------------------------------------------------------------------- drawing
def canvas(sample: Sample, title: str, margin: float = 0.0):
    """A figure of the resized image on its padded (black) canvas, with ``margin``
    pixels of white around it (room for anchors that reach past the image)."""
    pad_h, pad_w = sample.pad_shape
    height, width = sample.picture.shape[:2]
    span_w, span_h = pad_w + 2 * margin, pad_h + 2 * margin
    fig, ax = plt.subplots(figsize=(10, 10 * span_h / span_w + 0.8))
    ax.add_patch(plt.Rectangle((0, 0), pad_w, pad_h, color='black', zorder=-1))  # padding
    ax.imshow(sample.picture, extent=(0, width, height, 0))
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


def draw_gt(ax, gt: Optional[InstanceData], names) -> None:
    if gt is not None:
        draw_boxes(ax, gt.bboxes, 'yellow', lw=2.0, labels=[names[i] for i in gt.labels])


def fig_input_gt(report, sample, gt, names) -> None:
    count = 'no gt given' if gt is None else f'{len(gt)} gt boxes (yellow)'
    fig, ax = canvas(sample, f'Input: the image resized to {sample.picture.shape[1]} x '
                     f'{sample.picture.shape[0]} as the test pipeline does, {count}')
    draw_gt(ax, gt, names)
    report.save(fig, '01_input_gt.png')


def fig_feature_map(report, feats, count=5) -> None:
    level = feats[0][0]  # (C, H, W), the first (finest) level
    count = min(count, level.size(0))
    fig, axes = plt.subplots(1, count, figsize=(3 * count, 3.4), squeeze=False)
    for c, ax in enumerate(axes[0]):
        ax.imshow(level[c].numpy(), cmap='gray')
        ax.set_title(f'channel {c}', fontsize=9)
        ax.axis('off')
    fig.suptitle(f'Backbone feature map {tuple(level.shape)} (channels, h, w): the first '
                 f'{count} channels', fontsize=10)
    report.save(fig, '02_feature_map.png')


def fig_anchor_centres(report, sample, per_level, prior_generator) -> None:
    fig, ax = canvas(sample, f'Anchor centres: one per feature-map cell, strides '
                     f'{prior_generator.strides}')
    for level, (level_anchors, num) in enumerate(zip(per_level,
                                                     prior_generator.num_base_priors)):
        centres = (level_anchors[::num, :2] + level_anchors[::num, 2:]) / 2
        ax.scatter(centres[:, 0], centres[:, 1], s=4, color=f'C{level}',
                   label=f'level {level}: {len(centres)} centres')
    ax.legend(loc='upper right', fontsize=8)
    report.save(fig, '03_anchor_centres.png')


def centre_cell_anchors(per_level, featmap_sizes, num_base_priors) -> List[Tensor]:
    """Per level, the anchors of the cell nearest the feature map's centre."""
    result = []
    for (feat_h, feat_w), level_anchors, num in zip(featmap_sizes, per_level, num_base_priors):
        cell = (feat_h // 2) * feat_w + feat_w // 2
        result.append(level_anchors[cell * num:(cell + 1) * num])
    return result


def fig_anchors_one_location(report, sample, per_level, featmap_sizes, prior_generator,
                             gt, names) -> None:
    anchors = centre_cell_anchors(per_level, featmap_sizes, prior_generator.num_base_priors)
    reach = torch.cat(anchors)
    margin = float(max(0, -reach[:, :2].min(), (reach[:, 2:] - reach.new_tensor(
        sample.pad_shape[::-1])).max()))
    fig, ax = canvas(sample, 'Anchors at one location (the cell at the image centre): '
                     f'{prior_generator.num_base_priors} per level; gt yellow', margin)
    for level, level_anchors in enumerate(anchors):
        draw_boxes(ax, level_anchors, f'C{level}', lw=1.5)
    draw_gt(ax, gt, names)
    report.save(fig, '04_anchors_one_location.png')


def fig_anchors_all(report, sample, anchors, inside, allowed_border) -> None:
    margin = float(max(0, -anchors[:, :2].min(), (anchors[:, 2:] - anchors.new_tensor(
        sample.pad_shape[::-1])).max()))
    fig, ax = canvas(sample, f'All {anchors.size(0)} anchors on a canvas padded to hold them: '
                     f'green {int(inside.sum())} inside the image (allowed_border='
                     f'{allowed_border}), red {int((~inside).sum())} ignored', margin)
    draw_boxes(ax, anchors[~inside], 'red', lw=0.2, alpha=0.25)
    draw_boxes(ax, anchors[inside], 'lime', lw=0.2, alpha=0.4)
    report.save(fig, '05_anchors_all.png')


def fig_rpn_targets(report, sample, pos_anchors, neg_anchors, gt, names) -> None:
    fig, ax = canvas(sample, f'RPN targets (train_cfg.rpn assigner + sampler): '
                     f'{len(pos_anchors)} positive anchors (green), {len(neg_anchors)} '
                     'negative (red); gt yellow')
    draw_boxes(ax, neg_anchors, 'red', lw=0.5, alpha=0.5)
    draw_boxes(ax, pos_anchors, 'lime', lw=1.0)
    draw_gt(ax, gt, names)
    report.save(fig, '06_rpn_targets.png')


def fig_proposals(report, sample, proposals, top_n) -> None:
    top = proposals.bboxes[:top_n]
    fig, ax = canvas(sample, f'RPN proposals after NMS (test_cfg.rpn): the best {len(top)} '
                     f'of {len(proposals)} (brighter = higher objectness)')
    for rank, box in enumerate(top.flip(0)):
        draw_boxes(ax, box[None], plt.cm.autumn(rank / max(len(top), 1)), lw=1.0)
    report.save(fig, '07_proposals.png')


def fig_rcnn_samples(report, sample, sampling, names) -> None:
    fig, ax = canvas(sample, 'Sampled RoIs (train_cfg.rcnn): '
                     f'{len(sampling.pos_inds)} positive (green, with their gt class), '
                     f'{len(sampling.neg_inds)} negative (red)')
    draw_boxes(ax, sampling.neg_priors, 'red', lw=0.5, alpha=0.5)
    draw_boxes(ax, sampling.pos_priors, 'lime', lw=1.0,
               labels=[names[i] for i in sampling.pos_gt_labels])
    report.save(fig, '08_rcnn_samples.png')


def fig_rois(report, sample, rois, gt, names, positive: bool) -> None:
    kind = 'positive (IoU with a gt >= pos_iou_thr)' if positive else \
        'negative (background: IoU below neg_iou_thr)'
    fig, ax = canvas(sample, f'The {len(rois)} {kind} sampled RoIs (white); gt yellow')
    draw_boxes(ax, rois, 'white', lw=1.0, alpha=0.8)
    draw_gt(ax, gt, names)
    report.save(fig, '09_rois_positive.png' if positive else '10_rois_negative.png')


def crop(picture, box) -> np.ndarray:
    x1, y1, x2, y2 = box.round().int().tolist()
    part = picture[max(y1, 0):max(y2, 1), max(x1, 0):max(x2, 1)]
    return part if part.size else picture[:1, :1]


def fig_roi_features(report, picture, rois, pooled, extractor, channels) -> None:
    channels = min(channels, pooled.size(1))
    fig, axes = plt.subplots(len(rois), channels + 1, squeeze=False,
                             figsize=(1.6 * (channels + 1), 1.7 * len(rois) + 0.6))
    for i, roi in enumerate(rois):
        axes[i, 0].imshow(crop(picture, roi[1:]))
        axes[i, 0].set_title(f'proposal {i}', fontsize=8)
        for c in range(channels):
            axes[i, c + 1].imshow(pooled[i, c].numpy(), cmap='viridis')
            axes[i, c + 1].set_title(f'ch {c}', fontsize=8)
    for axis in axes.flat:
        axis.axis('off')
    fig.suptitle(f'Pooled RoI features ({type(extractor).__name__}, '
                 f'{tuple(pooled.shape[-2:])}): first {channels} channels of the '
                 f'first {len(rois)} proposals', fontsize=10)
    report.save(fig, '11_roi_features.png')


def fig_pooled_crops(report, picture, rois, pooled, labels, names) -> None:
    count = len(rois)
    fig, axes = plt.subplots(2, count, squeeze=False, figsize=(2.2 * count, 4.8))
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
    report.save(fig, '12_pooled_crops.png')


def fig_detections(report, sample, detections, keep, score_thr, names) -> None:
    fig, ax = canvas(sample, f'Detections: {int(keep.sum())} with score >= {score_thr} '
                     f'(of {len(detections)})')
    draw_boxes(ax, detections.bboxes[keep], 'cyan', lw=1.5,
               labels=[f'{names[label] if label < len(names) else label} {score:.2f}'
                       for label, score in zip(detections.labels[keep].tolist(),
                                               detections.scores[keep].tolist())])
    report.save(fig, '13_detections.png')


# ------------------------------------------------------------------ the steps
def shape(size) -> str:
    return ' x '.join(str(s) for s in size)


def step_image(report, args, sample, feats, gt, ignored) -> None:
    report.section('image and feature map (seed 000 "1. Feature extraction")')
    report.add('config', args.config)
    report.add('image', args.image)
    report.add('checkpoint', args.checkpoint or 'none (untrained: random scores)')
    report.add('setting', 'the seeds\' (--seed-setting)' if args.seed_setting else 'the config\'s')
    report.add('image size (h x w)', shape(sample.img_meta['ori_shape']))
    report.add('resized size (h x w)', shape(sample.img_meta['img_shape']))
    report.add('padded size (h x w)', shape(sample.pad_shape))
    report.add('input tensor', tuple(sample.inputs.shape))
    report.add('feature maps', ', '.join(str(tuple(f.shape)) for f in feats))
    report.add('feature map sizes (h x w)', ', '.join(shape(f.shape[-2:]) for f in feats))
    if gt is None:
        report.add('gt boxes', 'none given')
    else:
        report.add('gt boxes', f'{len(gt)} (+ {len(ignored)} ignore regions)')
        for i, (box, label) in enumerate(zip(gt.bboxes.tolist(), gt.labels.tolist())):
            report.add(f'gt {i} (resized image)',
                       f'label {label} [{", ".join(f"{v:.1f}" for v in box)}]')


def step_anchors(report, rpn_head, allowed_border, per_level, inside) -> None:
    report.section('anchors (seed 000 "2. Anchor Generation Layer", seed 002 anchor_base)')
    generator = rpn_head.prior_generator
    report.add('strides', generator.strides)
    report.add('anchors per location', generator.num_base_priors)
    for level, base in enumerate(generator.base_anchors):
        rows = '; '.join('[' + ', '.join(f'{v:.2f}' for v in row) + ']' for row in base.tolist())
        report.add(f'anchor_base level {level} ({shape(base.shape)}, x1 y1 x2 y2)', rows)
    report.add('total anchors', sum(a.size(0) for a in per_level))
    report.add(f'inside-image anchors (allowed_border={allowed_border})', int(inside.sum()))


def step_anchor_target(report, rpn_head, anchors, inside, featmap_sizes, gt, ignored, img_meta,
                       seed):
    """Seed 000 "3. Anchor Target Layer": IoUs, labels, sampling, deltas.
    Returns each gt's best anchor IoU and the sampled positive and negative anchors."""
    report.section('anchor target layer (seed 000 "3. Anchor Target Layer")')
    # The RPN sees one class, "object" (label 0), as TwoStageDetector.loss hands it the gts.
    gt = InstanceData(bboxes=gt.bboxes, labels=torch.zeros_like(gt.labels))
    best, reach = best_anchor_ious(rpn_head.assigner.iou_calculator, gt.bboxes, anchors[inside])
    report.add('best anchor IoU per gt', ', '.join(f'{v:.4f}' for v in best.tolist()))
    report.add('anchors reaching it per gt', ', '.join(str(v) for v in reach.tolist()))
    report.add('anchors reaching a gt\'s best IoU (all gts)', int(reach.sum()))
    assign = rpn_head.assigner.assign(InstanceData(priors=anchors[inside]), gt, ignored)
    report.add('RPN assigned', f'{int((assign.gt_inds > 0).sum())} positive, '
               f'{int((assign.gt_inds == 0).sum())} negative, '
               f'{int((assign.gt_inds < 0).sum())} neither (between the IoU thresholds '
               'or in an ignore region), of the inside anchors')
    torch.manual_seed(seed)
    anchor_list, valid_list = rpn_head.get_anchors(featmap_sizes, [img_meta],
                                                   device=anchors.device)
    labels, label_weights, bbox_targets = rpn_head.get_targets(
        anchor_list, valid_list, [gt], [img_meta], [ignored])[:3]
    labels, weights = torch.cat(labels, 1)[0], torch.cat(label_weights, 1)[0]
    targets = torch.cat(bbox_targets, 1)[0]
    positive = (weights > 0) & (labels < rpn_head.num_classes)
    negative = (weights > 0) & (labels == rpn_head.num_classes)
    report.add('RPN sampled', f'positives {int(positive.sum())}, negatives {int(negative.sum())}')
    for i, delta in enumerate(targets[positive][:5].tolist()):
        report.add(f'positive anchor {i} deltas (dx, dy, dw, dh)',
                   ', '.join(f'{v:.4f}' for v in delta))
    return best, anchors[positive], anchors[negative]


def proposal_counts(report, rpn_head, feats, img_meta, cfg, name) -> InstanceData:
    """Seed 000 "5. Proposal Layer" with ``cfg``: boxes after each step; returns the
    proposals the head gives."""
    cls_scores, bbox_preds = rpn_head(feats)
    featmap_sizes = [tuple(f.shape[-2:]) for f in feats]
    priors = rpn_head.prior_generator.grid_priors(featmap_sizes, device=feats[0].device)
    per_image = ([s[0] for s in cls_scores], [b[0] for b in bbox_preds])
    proposals = rpn_head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=[img_meta],
                                         cfg=cfg, rescale=False)[0]
    if hasattr(rpn_head, 'top_proposals_by_level'):
        bboxes, _, _ = rpn_head.top_proposals_by_level(*per_image, priors, img_meta, cfg)
        big = rpn_head.large_enough(bboxes, cfg.get('min_bbox_size', -1))
        uncapped = copy.deepcopy(cfg)
        uncapped.max_per_img = bboxes.size(0)
        every = rpn_head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=[img_meta],
                                         cfg=uncapped, rescale=False)[0]
        report.add(f'{name}: after the pre-NMS top-N (nms_pre={cfg.get("nms_pre", -1)} per '
                   'level)', bboxes.size(0))
        report.add(f'{name}: after the min-size filter (min_bbox_size='
                   f'{cfg.get("min_bbox_size", -1)})', int(big.sum()))
        report.add(f'{name}: after NMS ({cfg["nms"]["iou_threshold"]})', len(every))
    report.add(f'{name}: kept (max_per_img={cfg["max_per_img"]})', len(proposals))
    return proposals


def step_rcnn_targets(report, rpn_head, roi_head, feats, img_meta, train_cfg, gt, ignored,
                      seed):
    """Seed 000 "6. Proposal Target Layer": the training proposals, assigned and sampled."""
    report.section('proposal layer in training (train_cfg.rpn_proposal) and proposal target layer')
    proposals = proposal_counts(report, rpn_head, feats, img_meta, train_cfg.rpn_proposal,
                                'training proposals')
    proposals = InstanceData(priors=proposals.bboxes, scores=proposals.scores)
    assign = roi_head.bbox_assigner.assign(proposals, gt, ignored)
    torch.manual_seed(seed)
    sampling = roi_head.bbox_sampler.sample(assign, proposals, gt,
                                            feats=[f[0][None] for f in feats])
    report.add('RoIs sampled', f'positives {len(sampling.pos_inds)}, '
               f'negatives {len(sampling.neg_inds)} (gt boxes joined the proposals: '
               f'{bool(train_cfg.rcnn.sampler.get("add_gt_as_proposals", False))})')
    return sampling


def step_head_shapes(report, roi_head, feats, rois):
    """Seed 000 "7. RoI Pooling" and "8. Fast R-CNN": the shapes through the head."""
    report.section('RoI pooling and Fast R-CNN head (seed 000 "7", "8")')
    extractor = roi_head.bbox_roi_extractor
    pooled = extractor(feats[:extractor.num_inputs], rois)
    cls_score, bbox_pred = roi_head.bbox_head(pooled)
    report.add('RoIs (image index, x1, y1, x2, y2)', tuple(rois.shape))
    report.add('pooled', tuple(pooled.shape))
    report.add('flattened', tuple(pooled.flatten(1).shape))
    report.add('head output: class scores', tuple(cls_score.shape))
    report.add('head output: box deltas', tuple(bbox_pred.shape))
    return pooled


def step_losses(report, model, sample, gt, ignored, seed) -> None:
    """Seed 000 "4.1 Multi-task Loss" and the Fast R-CNN loss, for this image."""
    report.section('losses of this image (model.loss, train_cfg)')
    data_sample = sample.data_samples[0].clone()
    data_sample.gt_instances = gt
    data_sample.ignored_instances = ignored
    torch.manual_seed(seed)
    with torch.no_grad():
        losses = model.loss(sample.inputs, [data_sample])
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'):
        value = losses.get(key)
        if value is not None:
            value = sum(value) if isinstance(value, (list, tuple)) else value
            report.add(key, f'{float(value):.4f}')


def step_seed_comparison(report, args, numbers: dict) -> None:
    """The seeds' printed numbers beside ours, and why some differ."""
    report.section('compared with the seeds')
    if not args.seed_setting:
        report.add('setting', 'the config\'s, not the seeds\' (800 x 800, stride 16, 9 '
                   'anchors): sizes and counts differ; run with --seed-setting to compare')
        return
    rows = [
        ('feature map (seeds 000/002: 50 x 50)', numbers.get('featmap'), '50 x 50', ''),
        ('anchors (seeds: 22500)', numbers.get('anchors'), 22500, ''),
        ('inside anchors (seeds: 8940)', numbers.get('inside'), 8940,
         'the seeds keep x2 <= 800, mmdet x2 < 800; no anchor ends exactly on 800'),
        ('anchor_base (seed 002: 9 x 4)', numbers.get('anchor_base'), '9 x 4',
         'seed 002 prints rows as [y1, x1, y2, x2], ours are [x1, y1, x2, y2]'),
    ]
    if numbers.get('best_ious') is not None:
        rows.append(('zebra best anchor IoUs (seed 003: 0.5851 0.5753 0.5255 0.6326)',
                     numbers['best_ious'], ' '.join(f'{v:.4f}' for v in ZEBRA_BEST_IOUS),
                     'only with seed 000\'s zebra boxes (--gt "' + ZEBRA_BOXES + '")'))
    for what, ours, seed, note in rows:
        verdict = 'same' if str(ours) == str(seed) else 'differs'
        report.add(what, f'ours {ours}: {verdict}' + (f' ({note})' if note else ''))
    notes = [
        'anchors reaching the best IoU: seed 000 lists 45 for the zebras (6 / 24 / 12 / 3): '
        'it computes IoUs in float64 and stores them in float32, which rounds the nearly '
        'equal IoUs of shifted anchors to one value; ours (and mmdet) compute in float32, '
        'where the zebras get 6 / 15 / 6 / 3 = 30, hence 30 positive anchors instead of 45',
        'RPN sampled negatives: seed 000 computes n_neg = n_sample * n_pos (a typo for '
        'n_sample - n_pos) and so keeps every negative; seed 002 and ours sample 256 in all',
        'proposals: the seeds filter min_size (>= 16) over all 22500 boxes first, then take '
        'the top 12000; ours (mmdet) takes the top nms_pre per level first, then drops boxes '
        'not wider and higher than min_bbox_size',
        'proposals after NMS: seeds 000/002 sort the kept boxes by anchor index instead of '
        'score before NMS (order = order.argsort()[::-1], a bug), so other boxes survive '
        '(seed 002: 1031 of 12000); they also add 1 to widths and heights in the areas',
        'sampled RoIs: seed 000 32 / 96, seed 002 23 / 105, from random RPN proposals; '
        'ours adds the gt boxes to the proposals (py-faster-rcnn), so positives never lack',
        'head output: seed 002 21 / 84 columns (20 VOC classes + background), seed 000 2 / 8; '
        'ours num_classes + 1 and 4 x num_classes',
        'losses: seeds 000/002 print rpn_cls_loss 0.6945 / 0.6931 (untrained: ln 2 = 0.6931, '
        'as ours untrained); their box losses are summed smooth L1 (sigma 1) x lambda 10 / '
        'positives, ours mmdet\'s smooth L1 (beta 1/9 RPN, 1 R-CNN) averaged over the sampled '
        'anchors / RoIs, so they are not comparable',
    ]
    for i, note in enumerate(notes, start=1):
        report.add(f'note {i}', note)


# ------------------------------------------------------------------------ main
def load_gt(args, names, img_meta):
    """(gt, ignored) in the resized image's pixels, or (None, None)."""
    try:
        read = read_ground_truth(names, gt=args.gt, gt_voc=args.gt_voc, gt_coco=args.gt_coco,
                                 image_id=args.image_id, gt_kitti=args.gt_kitti)
    except ValueError as error:
        sys.exit(f'explain.py: {error}')
    if read is None:
        return None, None
    return tuple(scale_to_resized(instances, img_meta['scale_factor']) for instances in read)


def check_paths(args) -> None:
    for path in (args.config, args.image, args.checkpoint, args.gt_voc, args.gt_coco,
                 args.gt_kitti):
        if path and not osp.isfile(path):
            sys.exit(f'explain.py: no such file: {path}')


def anchor_steps(report, sample, rpn_head, featmap_sizes, allowed_border, gt, names, numbers):
    """Anchors: the numbers and pictures 03-05. Returns all anchors and the inside mask."""
    generator = rpn_head.prior_generator
    per_level, inside = image_anchors(generator, featmap_sizes, sample.img_meta, allowed_border)
    anchors = torch.cat(per_level)
    step_anchors(report, rpn_head, allowed_border, per_level, inside)
    numbers.update(featmap=shape(featmap_sizes[0]), anchors=anchors.size(0),
                   inside=int(inside.sum()), anchor_base=shape(generator.base_anchors[0].shape))
    fig_anchor_centres(report, sample, per_level, generator)
    fig_anchors_one_location(report, sample, per_level, featmap_sizes, generator, gt, names)
    fig_anchors_all(report, sample, anchors, inside, allowed_border)
    return anchors, inside


def pooling_steps(report, args, roi_head, sample, feats, proposals, sampling, names) -> None:
    """RoI pooling and the head: shapes of the sampled RoIs (else of the test
    proposals), pictures 11 and 12."""
    rois = bbox2roi([sampling.priors if sampling is not None else proposals.bboxes])
    pooled = step_head_shapes(report, roi_head, feats, rois)
    first = bbox2roi([proposals.bboxes[:args.num_rois]])
    extractor = roi_head.bbox_roi_extractor
    fig_roi_features(report, sample.picture, first,
                     extractor(feats[:extractor.num_inputs], first), extractor,
                     args.num_channels)
    if sampling is not None:
        count = min(args.num_rois * 2, rois.size(0))
        background = sampling.pos_gt_labels.new_full((len(sampling.neg_inds),), len(names))
        labels = torch.cat([sampling.pos_gt_labels, background])
        fig_pooled_crops(report, sample.picture, rois[:count], pooled[:count],
                         labels[:count].tolist(), names)


def detection_step(report, args, roi_head, sample, feats, proposals, names) -> None:
    report.section('detections (roi_head.predict on the test proposals, test_cfg.rcnn)')
    detections = roi_head.predict(feats, [proposals], sample.data_samples, rescale=False)[0]
    keep = detections.scores >= args.score_thr
    report.add('detections', f'{len(detections)} (test_cfg.rcnn), {int(keep.sum())} '
               f'with score >= {args.score_thr} drawn')
    fig_detections(report, sample, detections, keep, args.score_thr, names)


def explain(args) -> str:
    check_paths(args)
    os.makedirs(args.out_dir, exist_ok=True)
    cfg = load_config(args)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(args.seed)
    model, meta = build_model(cfg, args.checkpoint)
    names = class_names(cfg, meta)
    rpn_head, roi_head, train_cfg = model.rpn_head, model.roi_head, cfg.model.train_cfg
    sample = prepare(cfg, model, args.image)
    gt, ignored = load_gt(args, names, sample.img_meta)
    report, numbers, sampling = Report(args.out_dir), {}, None

    with torch.no_grad():
        feats = model.extract_feat(sample.inputs)
        featmap_sizes = [tuple(f.shape[-2:]) for f in feats]
        step_image(report, args, sample, feats, gt, ignored)
        fig_input_gt(report, sample, gt, names)
        fig_feature_map(report, feats)
        anchors, inside = anchor_steps(report, sample, rpn_head, featmap_sizes,
                                       train_cfg.rpn.get('allowed_border', 0), gt, names,
                                       numbers)
        if gt is not None:
            best, pos, neg = step_anchor_target(report, rpn_head, anchors, inside,
                                                featmap_sizes, gt, ignored, sample.img_meta,
                                                args.seed)
            numbers['best_ious'] = ' '.join(f'{v:.4f}' for v in best.tolist())
            fig_rpn_targets(report, sample, pos, neg, gt, names)
        else:
            report.add('RPN / RoI targets', 'skipped (no gt; pass --gt, --gt-voc, --gt-coco '
                       'or --gt-kitti)')

        report.section('proposal layer at test time (test_cfg.rpn)')
        proposals = proposal_counts(report, rpn_head, feats, sample.img_meta,
                                    cfg.model.test_cfg.rpn, 'test proposals')
        report.add('RPN proposals kept (test_cfg.rpn, after NMS)', len(proposals))
        fig_proposals(report, sample, proposals, args.top_n)
        if gt is not None:
            sampling = step_rcnn_targets(report, rpn_head, roi_head, feats, sample.img_meta,
                                         train_cfg, gt, ignored, args.seed)
            fig_rcnn_samples(report, sample, sampling, names)
            fig_rois(report, sample, sampling.pos_priors, gt, names, positive=True)
            fig_rois(report, sample, sampling.neg_priors, gt, names, positive=False)
        pooling_steps(report, args, roi_head, sample, feats, proposals, sampling, names)
        detection_step(report, args, roi_head, sample, feats, proposals, names)

    if gt is not None:
        step_losses(report, model, sample, gt, ignored, args.seed)
    step_seed_comparison(report, args, numbers)
    return report.write()


if __name__ == '__main__':
    print(explain(parse_args()), end='')
