#!/usr/bin/env python
"""Show, for one image, what each step of Faster R-CNN does: the seeds' pictures.

    python tools/explain.py CONFIG IMAGE --out-dir DIR [--checkpoint CKPT]
        [--gt-kitti LABEL_FILE | --gt-voc XML_FILE] [--top-n 50] [--num-rois 4] [--score-thr 0.3]
        [--seed 0] [--cfg-options KEY=VALUE ...]

Every number and box comes from the detector the config builds (mmdet's registries:
our components, or mmdet's where a config swaps them back), run on the image as the
test pipeline prepares it. Nothing here re-implements a step; the tool only calls the
modules and draws what they return:

    01_anchor_centres.png     rpn_head.prior_generator.grid_priors: the anchors' centres
    02_anchors_one_location   the anchors of the cell at the image centre
    03_anchors_all            every anchor over the padded image (a subsample if many),
                              inside-image ones (valid flags + allowed_border) coloured
    04_rpn_targets            rpn_head._get_targets_single: sampled positive / negative
                              anchors against the gt boxes                  (needs gt)
    05_proposals              rpn_head.predict with test_cfg.rpn: the top-N after NMS
    06_rcnn_samples           roi_head.bbox_assigner / bbox_sampler on the training
                              proposals (train_cfg.rpn_proposal) + gt        (needs gt)
    07_roi_features           roi_head.bbox_roi_extractor: first channels of the pooled
                              features of the first proposals
    08_detections             model.predict: final boxes with class names and scores

Ground truth (for 04 and 06) is read from a KITTI label file (``--gt-kitti``): types in
the class names are gt, the others ignore regions, as KittiTinyDataset reads them; or
from a PASCAL VOC annotation (``--gt-voc``): objects of the classes are gt, difficult
ones ignore regions, others skipped, as mmdet's VOCDataset reads them.
Without it those two pictures are skipped (the summary says so). Without
``--checkpoint`` the model is untrained (its config's init): the targets, anchors and
proposal machinery are still the real ones, only the scores are random.
``summary.txt`` lists the sizes and counts.
"""
import argparse
import os
import os.path as osp
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import matplotlib  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

import frcnn_plugin  # noqa: E402,F401  registers our components
from frcnn_plugin.boxes import anchors_inside  # noqa: E402
from frcnn_plugin.datasets.kitti_tiny import parse_kitti_label  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('image')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--checkpoint', help='trained weights; default: untrained model')
    gt = parser.add_mutually_exclusive_group()
    gt.add_argument('--gt-kitti', help='KITTI label file of the image (gt boxes)')
    gt.add_argument('--gt-voc', help='VOC XML annotation of the image (gt boxes)')
    parser.add_argument('--top-n', type=int, default=50, help='proposals drawn')
    parser.add_argument('--num-rois', type=int, default=4, help='RoIs in the feature grid')
    parser.add_argument('--num-channels', type=int, default=8,
                        help='channels per RoI in the feature grid')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detections drawn')
    parser.add_argument('--seed', type=int, default=0, help='for init and the samplers')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as tools/train.py')
    return parser.parse_args(argv)


# ----------------------------------------------------------------------- setup
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


def prepare(cfg, model, image):
    """Test pipeline (without annotations) + the model's data preprocessor."""
    from mmcv.transforms import Compose
    pipeline = Compose([t for t in cfg.test_dataloader.dataset.pipeline
                        if t['type'] != 'LoadAnnotations'])
    packed = pipeline(dict(img_path=image, img_id=0))
    data = model.data_preprocessor(
        dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]), False)
    # The resized image (BGR uint8, before normalisation) for drawing, RGB.
    picture = packed['inputs'][[2, 1, 0]].permute(1, 2, 0).numpy()
    return data['inputs'], data['data_samples'], picture


def kitti_objects(label_file, names):
    """``(name, box, ignored)`` of a KITTI label file: other types are ignore regions."""
    with open(label_file) as f:
        return [(name, box, name not in names)
                for name, box in parse_kitti_label(f.read(), label_file)]


def voc_objects(xml_file, names):
    """``(name, box, ignored)`` of a VOC annotation as mmdet's XMLDataset reads it:
    1-based boxes minus one, difficult objects ignored, other classes skipped."""
    objects = []
    try:
        for obj in ET.parse(xml_file).findall('object'):
            name = obj.findtext('name')
            if name not in names:
                continue
            box = [float(obj.findtext(f'bndbox/{k}')) - 1
                   for k in ('xmin', 'ymin', 'xmax', 'ymax')]
            objects.append((name, box, obj.findtext('difficult', '0').strip() == '1'))
    except (ET.ParseError, TypeError, ValueError) as e:
        sys.exit(f'explain.py: {xml_file}: not a VOC annotation ({e})')
    return objects


def read_gt(objects, names, scale_factor):
    """(gt, ignored) InstanceData in the resized image's coordinates."""
    sx, sy = scale_factor
    scale = torch.tensor([sx, sy, sx, sy])
    gt_boxes, gt_labels, ignore = [], [], []
    for name, box, ignored in objects:
        if ignored:
            ignore.append(box)
        else:
            gt_boxes.append(box)
            gt_labels.append(names.index(name))
    gt = InstanceData(bboxes=torch.tensor(gt_boxes).view(-1, 4) * scale,
                      labels=torch.tensor(gt_labels, dtype=torch.long))
    ignored = InstanceData(bboxes=torch.tensor(ignore).view(-1, 4) * scale,
                           labels=torch.full((len(ignore),), -1, dtype=torch.long))
    return gt, ignored


# --------------------------------------------------------------------- drawing
def canvas(picture, pad_shape, title):
    """A figure showing the resized image on its padded (zero) canvas."""
    pad_h, pad_w = pad_shape
    height, width = picture.shape[:2]
    fig, ax = plt.subplots(figsize=(12, 12 * pad_h / pad_w + 0.8))
    ax.imshow(picture, extent=(0, width, height, 0))
    ax.add_patch(Rectangle((0, 0), pad_w, pad_h, fill=False, ec='grey', ls=':', lw=1))
    ax.set_xlim(0, pad_w)
    ax.set_ylim(pad_h, 0)
    ax.set_title(title, fontsize=11)
    return fig, ax


def show_all(ax, boxes, pad_shape):
    """Widen the view to ``boxes`` (anchors reach past the padded image)."""
    x1, y1 = boxes[:, :2].min(0).values.clamp(max=0).tolist()
    x2, y2 = boxes[:, 2:].max(0).values.tolist()
    ax.set_xlim(x1, max(x2, pad_shape[1]))
    ax.set_ylim(max(y2, pad_shape[0]), y1)


def draw_boxes(ax, boxes, color, lw=1.0, alpha=1.0, labels=None):
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color,
                               lw=lw, alpha=alpha))
        if labels is not None:
            ax.text(x1, y1, labels[i], color='white', fontsize=7, va='bottom',
                    bbox=dict(facecolor=color, alpha=0.7, pad=1, lw=0))


def save(fig, out_dir, name, written):
    path = osp.join(out_dir, name)
    fig.savefig(path, dpi=80, bbox_inches='tight')
    plt.close(fig)
    written.append(name)


def subsample(n, limit, generator):
    """Indices of at most ``limit`` of ``n`` items (all of them if few)."""
    if n <= limit:
        return torch.arange(n)
    return torch.randperm(n, generator=generator)[:limit]


# ------------------------------------------------------------------------ main
def explain(args):
    for path in (args.config, args.image, args.checkpoint, args.gt_kitti, args.gt_voc):
        if path and not osp.isfile(path):
            sys.exit(f'explain.py: no such file: {path}')
    os.makedirs(args.out_dir, exist_ok=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(args.seed)
    model, meta = build_model(cfg, args.checkpoint)
    names = class_names(cfg, meta)
    rpn_head, roi_head = model.rpn_head, model.roi_head
    generator = torch.Generator().manual_seed(args.seed)
    written, lines = [], []

    inputs, data_samples, picture = prepare(cfg, model, args.image)
    img_meta = data_samples[0].metainfo
    img_h, img_w = img_meta['img_shape']
    pad_shape = tuple(inputs.shape[-2:])
    lines += [f'config: {args.config}', f'image: {args.image}',
              f'checkpoint: {args.checkpoint or "none (untrained: random scores)"}',
              'image size (h x w): {} x {}'.format(*img_meta['ori_shape']),
              f'resized size (h x w): {img_h} x {img_w}',
              'padded size (h x w): {} x {}'.format(*pad_shape)]

    with torch.no_grad():
        feats = model.extract_feat(inputs)
        featmap_sizes = [tuple(f.shape[-2:]) for f in feats]
        prior_generator = rpn_head.prior_generator
        per_level = prior_generator.grid_priors(featmap_sizes, device=inputs.device)
        valid = torch.cat(prior_generator.valid_flags(featmap_sizes, img_meta['pad_shape'],
                                                      inputs.device))
        anchors = torch.cat(per_level)
        allowed_border = cfg.model.train_cfg.rpn.get('allowed_border', 0)
        inside = valid & anchors_inside(anchors, (img_h, img_w), allowed_border)
        lines += [
            'feature map sizes (h x w): ' + ', '.join(f'{h} x {w}' for h, w in featmap_sizes),
            f'strides: {prior_generator.strides}',
            f'anchors per location: {prior_generator.num_base_priors}',
            f'total anchors: {anchors.size(0)}',
            f'inside-image anchors (allowed_border={allowed_border}): {int(inside.sum())}']

        # 01: anchor centres, one colour per level.
        fig, ax = canvas(picture, pad_shape, f'Anchor centres: {len(featmap_sizes)} feature '
                         f'map(s) {featmap_sizes}, strides {prior_generator.strides}')
        for level, (level_anchors, num) in enumerate(zip(per_level,
                                                         prior_generator.num_base_priors)):
            centres = (level_anchors[::num, :2] + level_anchors[::num, 2:]) / 2
            ax.scatter(centres[:, 0], centres[:, 1], s=4, color=f'C{level}',
                       label=f'level {level}: {len(centres)} centres')
        ax.legend(loc='upper right', fontsize=8)
        save(fig, args.out_dir, '01_anchor_centres.png', written)

        # 02: the anchors of the cell nearest the image centre, every level.
        fig, ax = canvas(picture, pad_shape, 'Anchors at one location (cell at the image '
                         f'centre): {prior_generator.num_base_priors} per level')
        centre_anchors = []
        for level, ((feat_h, feat_w), level_anchors, num) in enumerate(
                zip(featmap_sizes, per_level, prior_generator.num_base_priors)):
            cell = (feat_h // 2) * feat_w + feat_w // 2
            centre_anchors.append(level_anchors[cell * num:(cell + 1) * num])
            draw_boxes(ax, centre_anchors[-1], f'C{level}', lw=1.5)
        show_all(ax, torch.cat(centre_anchors), pad_shape)
        save(fig, args.out_dir, '02_anchors_one_location.png', written)

        # 03: every anchor (or a subsample), inside ones green, crossing ones red.
        shown = subsample(anchors.size(0), 3000, generator)
        fig, ax = canvas(picture, pad_shape, f'All anchors over the padded image: '
                         f'{anchors.size(0)} ({len(shown)} drawn); green: inside '
                         f'(allowed_border={allowed_border}), red: ignored')
        draw_boxes(ax, anchors[shown][~inside[shown]], 'red', lw=0.3, alpha=0.3)
        draw_boxes(ax, anchors[shown][inside[shown]], 'lime', lw=0.3, alpha=0.5)
        show_all(ax, anchors, pad_shape)
        save(fig, args.out_dir, '03_anchors_all.png', written)

        gt = ignored = None
        if args.gt_kitti or args.gt_voc:
            objects = (kitti_objects(args.gt_kitti, names) if args.gt_kitti
                       else voc_objects(args.gt_voc, names))
            gt, ignored = read_gt(objects, names, img_meta['scale_factor'])
            lines.append(f'gt boxes: {len(gt)} (+ {len(ignored)} ignore regions)')

        # 04: the RPN's own target code: assigner on the inside anchors, then sampler.
        if gt is not None:
            assign = rpn_head.assigner.assign(InstanceData(priors=anchors[inside]), gt, ignored)
            torch.manual_seed(args.seed)
            sampling = rpn_head._get_targets_single(anchors, valid, gt, img_meta, ignored)[-1]
            lines += [f'RPN assigned: {int((assign.gt_inds > 0).sum())} positive, '
                      f'{int((assign.gt_inds == 0).sum())} negative, '
                      f'{int((assign.gt_inds < 0).sum())} neither (between the IoU thresholds '
                      'or in an ignore region), of the inside anchors',
                      f'RPN sampled: positives {len(sampling.pos_inds)}, '
                      f'negatives {len(sampling.neg_inds)}']
            fig, ax = canvas(picture, pad_shape, 'RPN targets (train_cfg.rpn assigner + '
                             f'sampler): {len(sampling.pos_inds)} positive (green), '
                             f'{len(sampling.neg_inds)} negative (red); gt yellow')
            draw_boxes(ax, sampling.neg_priors, 'red', lw=0.5, alpha=0.5)
            draw_boxes(ax, sampling.pos_priors, 'lime', lw=1.0)
            draw_boxes(ax, gt.bboxes, 'yellow', lw=2.0, labels=[names[i] for i in gt.labels])
            save(fig, args.out_dir, '04_rpn_targets.png', written)
        else:
            lines.append('RPN / RoI targets: skipped (no gt; pass --gt-kitti or --gt-voc)')

        # 05: proposals as at test time (test_cfg.rpn), best first.
        proposals = rpn_head.predict(feats, data_samples, rescale=False)[0]
        top = proposals.bboxes[:args.top_n]
        lines.append(f'RPN proposals kept (test_cfg.rpn, after NMS): {len(proposals)}')
        fig, ax = canvas(picture, pad_shape, f'RPN proposals after NMS: top {len(top)} '
                         f'of {len(proposals)} kept (brighter = higher objectness)')
        for rank, box in enumerate(top.flip(0)):
            draw_boxes(ax, box[None], plt.cm.autumn(rank / max(len(top), 1)), lw=1.0)
        save(fig, args.out_dir, '05_proposals.png', written)

        # 06: the RoI head's training samples: train proposals + gt, assigner, sampler.
        if gt is not None:
            train_proposals = rpn_head.predict_by_feat(
                *rpn_head(feats), batch_img_metas=[img_meta],
                cfg=cfg.model.train_cfg.rpn_proposal, rescale=False)[0]
            train_proposals.priors = train_proposals.pop('bboxes')
            assign = roi_head.bbox_assigner.assign(train_proposals, gt, ignored)
            torch.manual_seed(args.seed)
            sampling = roi_head.bbox_sampler.sample(assign, train_proposals, gt,
                                                    feats=[f[0][None] for f in feats])
            lines += [f'RoI head training proposals (train_cfg.rpn_proposal): '
                      f'{len(train_proposals)}',
                      f'RoIs sampled: positives {len(sampling.pos_inds)}, '
                      f'negatives {len(sampling.neg_inds)}']
            fig, ax = canvas(picture, pad_shape, 'Sampled RoIs (train_cfg.rcnn): '
                             f'{len(sampling.pos_inds)} positive (green, with their gt '
                             f'class), {len(sampling.neg_inds)} negative (red)')
            draw_boxes(ax, sampling.neg_priors, 'red', lw=0.5, alpha=0.5)
            draw_boxes(ax, sampling.pos_priors, 'lime', lw=1.0,
                       labels=[names[i] for i in sampling.pos_gt_labels])
            save(fig, args.out_dir, '06_rcnn_samples.png', written)

        # 07: pooled features of the first proposals (RoI pooling / align output).
        from mmdet.structures.bbox import bbox2roi
        extractor = roi_head.bbox_roi_extractor
        rois = bbox2roi([proposals.bboxes[:args.num_rois]])
        pooled = extractor(feats[:extractor.num_inputs], rois)
        channels = min(args.num_channels, pooled.size(1))
        lines.append(f'pooled RoI features: {tuple(pooled.shape)} (rois, channels, h, w)')
        fig, axes = plt.subplots(len(rois), channels + 1, squeeze=False,
                                 figsize=(1.6 * (channels + 1), 1.7 * len(rois) + 0.6))
        for i, roi in enumerate(rois):
            x1, y1, x2, y2 = roi[1:].round().int().tolist()
            crop = picture[max(y1, 0):max(y2, 1), max(x1, 0):max(x2, 1)]
            axes[i, 0].imshow(crop if crop.size else picture[:1, :1])
            axes[i, 0].set_title(f'RoI {i}', fontsize=8)
            for c in range(channels):
                axes[i, c + 1].imshow(pooled[i, c].numpy(), cmap='viridis')
                axes[i, c + 1].set_title(f'ch {c}', fontsize=8)
        for axis in axes.flat:
            axis.axis('off')
        fig.suptitle(f'Pooled RoI features ({type(extractor).__name__}, '
                     f'{tuple(pooled.shape[-2:])}): first {channels} channels of the '
                     f'first {len(rois)} proposals', fontsize=10)
        save(fig, args.out_dir, '07_roi_features.png', written)

        # 08: the whole detector, boxes in the resized image's coordinates.
        detections = model.predict(inputs, data_samples, rescale=False)[0].pred_instances
        keep = detections.scores >= args.score_thr
        lines.append(f'detections: {len(detections)} (test_cfg.rcnn), '
                     f'{int(keep.sum())} with score >= {args.score_thr} drawn')
        fig, ax = canvas(picture, pad_shape, f'Detections: {int(keep.sum())} with score >= '
                         f'{args.score_thr} (of {len(detections)})')
        draw_boxes(ax, detections.bboxes[keep], 'cyan', lw=1.5,
                   labels=[f'{names[label] if label < len(names) else label} {score:.2f}'
                           for label, score in zip(detections.labels[keep].tolist(),
                                                   detections.scores[keep].tolist())])
        save(fig, args.out_dir, '08_detections.png', written)

    lines.append('pictures: ' + ', '.join(written))
    with open(osp.join(args.out_dir, 'summary.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    explain(parse_args())
