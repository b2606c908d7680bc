#!/usr/bin/env python
"""Show, for one image, what each step of Faster R-CNN does, as the tutorials walk through it.

    python tools/explain.py CONFIG IMAGE --out-dir DIR [--checkpoint CKPT]
        [--gt "x1,y1,x2,y2[,label];..." | --gt-voc XML | --gt-coco JSON --image-id ID
         | --gt-kitti LABEL_FILE] [--tutorial-setting] [--top-n 50] [--num-rois 4]
        [--score-thr 0.3] [--seed 0] [--cfg-options KEY=VALUE ...]

Every number and box comes from the detector the config builds (mmdet's registries:
our components, or mmdet's where a config swaps them back), run on the image as the
test pipeline prepares it. Nothing here re-implements a step: the library
(``frcnn_plugin.analysis.walkthrough``) calls the modules and draws what they return
("the Korean walkthrough, figure N" refers to that tutorial's pictures,
docs/references.md):

    01_input_gt               the resized input with the gt boxes (the Korean walkthrough,
                              figure 4)
    02_feature_map            the first 5 channels of the backbone's feature map (figure 5)
    03_anchor_centres         rpn_head.prior_generator.grid_priors: the centres (figure 6)
    04_anchors_one_location   the anchors of the cell at the image centre, with the gt
    05_anchors_all            every anchor on a canvas padded to hold them all (figure 7);
                              inside-image ones (valid flags + allowed_border) green
    06_rpn_targets            rpn_head.get_targets: sampled positive / negative
                              anchors against the gt boxes                  (needs gt)
    07_proposals              rpn_head.predict with test_cfg.rpn: the top-N after NMS
    08_rcnn_samples           roi_head.bbox_assigner / bbox_sampler on the training
                              proposals (train_cfg.rpn_proposal) + gt        (needs gt)
    09_rois_positive,         the same sampled RoIs, positives and negatives apart,
    10_rois_negative          with the gt (figures 8 and 9)                 (needs gt)
    11_roi_features           roi_head.bbox_roi_extractor: first channels of the pooled
                              features of the first proposals
    12_pooled_crops           the first sampled RoIs: image crop and pooled map (needs gt)
    13_detections             roi_head.predict on the proposals of 07 (model.predict's
                              second half): final boxes with class names and scores

Ground truth comes from ``--gt`` (boxes typed in the image's pixels, label a class
index or name), a VOC XML, a COCO json (``--image-id``: the image's id or file name)
or a KITTI label file, read as mmdet's datasets read those formats
(``frcnn_plugin.analysis.ground_truth``); objects of classes not in the config are
named in the summary. Without gt the target pictures are skipped.

``--tutorial-setting`` runs the tutorials' setting whatever the config says: the image
resized to 800 x 800 (aspect ratio not kept), VGG16 conv5_3 (stride 16, 512 channels),
anchor scales 8/16/32 and ratios 0.5/1/2 centred in their cell, cross-boundary anchors
ignored (``allowed_border=0``). With the Korean walkthrough's zebra boxes on any
800 x 800 image, ``--gt "89,469,249,644;238,417,415,630;435,419,580,634;617,462,765,637"``,
the summary gives the PyTorch practice notebook's best anchor IoUs 0.5851 / 0.5753 /
0.5255 / 0.6326. ``--seed-setting`` is its former name, still accepted for now.

Without ``--checkpoint`` the model is untrained (its config's init): anchors, IoUs,
targets and the proposal machinery are still the real ones, only scores are random.
``summary.txt`` lists the tutorials' printed numbers step by step and, last, how each
compares with the tutorials and why some differ.
"""
import argparse
import os.path as osp
import sys

import env_check  # first: without the environment, one line instead of a traceback

env_check.require_environment()
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

#: The deprecated spelling of --tutorial-setting and its one-line note.
OLD_FLAG = '--seed-setting'
DEPRECATION = ('explain.py: --seed-setting is deprecated and will be removed in the next '
               'release; use --tutorial-setting (the same setting)')


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
    parser.add_argument('--tutorial-setting', action='store_true',
                        help='the tutorials\' setting: 800x800, VGG16 conv5_3 stride 16, '
                             'scales 8/16/32, ratios 0.5/1/2, cross-boundary anchors ignored')
    parser.add_argument(OLD_FLAG, action='store_true', dest='old_tutorial_setting',
                        help='deprecated: --tutorial-setting')
    parser.add_argument('--top-n', type=int, default=50, help='proposals drawn')
    parser.add_argument('--num-rois', type=int, default=4, help='RoIs in the feature grids')
    parser.add_argument('--num-channels', type=int, default=8,
                        help='channels per RoI in the feature grid')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detections drawn')
    parser.add_argument('--seed', type=int, default=0, help='for init and the samplers')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as tools/train.py (applied last)')
    args = parser.parse_args(argv)
    if args.old_tutorial_setting:
        print(DEPRECATION, file=sys.stderr)
        args.tutorial_setting = True
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    import frcnn_plugin  # noqa: F401  registers our components
    from frcnn_plugin.analysis.walkthrough import InputError, Options, explain

    options = Options(top_n=args.top_n, num_rois=args.num_rois,
                      num_channels=args.num_channels, score_thr=args.score_thr,
                      seed=args.seed)
    try:
        return explain(args.config, args.image, args.out_dir, checkpoint=args.checkpoint,
                       gt=args.gt, gt_voc=args.gt_voc, gt_coco=args.gt_coco,
                       image_id=args.image_id, gt_kitti=args.gt_kitti,
                       tutorial_setting=args.tutorial_setting,
                       cfg_options=args.cfg_options, options=options)
    except InputError as error:
        sys.exit(f'explain.py: {error}')


if __name__ == '__main__':
    print(main(), end='')
