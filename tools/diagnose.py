#!/usr/bin/env python
"""Where does the detector lose each object it misses? Every gt box of a dataset split,
followed through anchors, proposals, classification and NMS.

    python tools/diagnose.py CONFIG CHECKPOINT --out-dir DIR [--split val|train|test]
        [--score-thr 0.3] [--cfg-options KEY=VALUE ...]

Runs the detector of CONFIG with CHECKPOINT on each image of the split's dataset (any
mmdet dataset config: KittiTiny, VOC, COCO, ...; annotations through the test
pipeline, ignore regions such as VOC ``difficult`` and COCO ``iscrowd`` boxes left
out and counted) and writes to DIR:

    diagnosis.json       {"num_gt": N, "detected": d, "lost_at": {"no_positive_anchor": a,
                          "not_in_proposals": b, "misclassified": c, "suppressed": e,
                          "below_score_thr": f}, "per_class": {...}, ...}
                         with d + a + b + c + e + f = N; also anchor_coverage (best
                         anchor IoU per gt, by size, suggested scales / ratios),
                         rpn_recall (recall at IoU 0.5 / 0.7 by number of proposals),
                         confusion (gt class x detected class)
    outcomes.png         detected / lost-at stage per class
    anchor_coverage.png  each gt's best anchor IoU, by gt size
    rpn_recall.png       RPN recall against the number of proposals

and prints the tables. A gt is detected when a detection of its class with IoU >= 0.5
scores above ``--score-thr``; otherwise it is lost at the first failing stage, checked
in this order (``frcnn_plugin/analysis/diagnosis.py`` defines each precisely):
``no_positive_anchor`` (the RPN's assigner gives it no positive anchor),
``not_in_proposals`` (no proposal has IoU >= 0.5), ``suppressed`` (a box of its class
covering it scored above the threshold before NMS, none is left after),
``misclassified`` (only boxes of other classes covering it scored above the
threshold), ``below_score_thr`` (nothing covering it scored above the threshold).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='detector config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', required=True, help='where the results are written')
    parser.add_argument('--split', choices=('val', 'train', 'test'), default='val',
                        help='the dataset of {split}_dataloader (default val)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='a detection counts when it scores above this (default 0.3)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as tools/train.py')
    args = parser.parse_args(argv)
    for kind, path in (('config', args.config), ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            parser.error(f'{kind} not found: {path}')
    return args


def print_report(diagnosis: dict, suggestion) -> None:
    from frcnn_plugin.analysis.diagnosis_report import (
        confusion_table,
        coverage_table,
        outcome_table,
    )
    coverage = diagnosis['anchor_coverage']
    print(f'\n{diagnosis["num_images"]} images, {diagnosis["num_gt"]} gt boxes '
          f'({diagnosis["ignored_gt_excluded"]} ignore regions excluded), score > '
          f'{diagnosis["score_thr"]}, IoU >= {diagnosis["iou_thr"]}\n')
    print('Where each gt box ends (first stage that loses it):')
    print(outcome_table(diagnosis))
    print('\nAnchor coverage (sizes: COCO\'s, in the original image):')
    print(coverage_table(coverage))
    if suggestion:
        for step in suggestion['steps']:
            print(f'  add {step["add"]}: scales {step["scales"]}, ratios {step["ratios"]} '
                  f'-> {step["no_positive_anchor"]} gts without a positive anchor '
                  f'({100 * step["no_positive_anchor_share"]:.1f}%)')
    recall = diagnosis['rpn_recall']
    print(f'\nRPN recall with {recall["num_proposals"][-1]} proposals: '
          + ', '.join(f'IoU >= {k[4:]}: {v[-1]:.3f}' for k, v in recall.items()
                      if k.startswith('iou_')))
    print('\nDetections matched to a gt (rows: the gt\'s class; off the diagonal: confused):')
    print(confusion_table(diagnosis['confusion']))


def main(argv=None):
    args = parse_args(argv)
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    from mmengine.utils import ProgressBar

    import frcnn_plugin  # noqa: F401  our registries; checkpoints under torch >= 2.6
    from frcnn_plugin.analysis.diagnosis import diagnose, split_dataset_cfg, suggest_anchors
    from frcnn_plugin.analysis.diagnosis_report import (
        plot_anchor_coverage,
        plot_outcomes,
        plot_recall,
        write_json,
    )
    from frcnn_plugin.utils.detector import load_detector

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    try:
        dataset = DATASETS.build(split_dataset_cfg(cfg, args.split))
    except ValueError as error:
        sys.exit(f'diagnose.py: {error}')
    model = load_detector(cfg, args.checkpoint)
    os.makedirs(args.out_dir, exist_ok=True)

    print(f'{args.split}: {len(dataset)} images')
    diagnosis, records = diagnose(model, dataset, args.score_thr, ProgressBar(len(dataset)))
    suggestion = suggest_anchors(cfg.model.rpn_head.anchor_generator, model.rpn_head.assigner,
                                 records, model.rpn_head.train_cfg.get('allowed_border', -1))
    diagnosis['anchor_coverage']['suggestion'] = suggestion

    write_json(diagnosis, args.out_dir)
    plot_outcomes(diagnosis, osp.join(args.out_dir, 'outcomes.png'))
    plot_anchor_coverage(diagnosis['anchor_coverage'], cfg.model.train_cfg.rpn.assigner,
                         osp.join(args.out_dir, 'anchor_coverage.png'))
    plot_recall(diagnosis['rpn_recall'], osp.join(args.out_dir, 'rpn_recall.png'))
    print_report(diagnosis, suggestion)
    print(f'\nwritten: {args.out_dir}/diagnosis.json, outcomes.png, anchor_coverage.png, '
          'rpn_recall.png')


if __name__ == '__main__':
    main()
