#!/usr/bin/env python
"""Check a config's datasets before training on them: what they hold, what is wrong.

    python tools/check_dataset.py CONFIG [--split {train,val,test,all}]
        [--anchor-fit-images N] [--cfg-options KEY=VALUE ...]

Builds each split's dataset as tools/train.py and tools/test.py would (mmdet's
``DATASETS``, the config's ``default_scope``; ``ConcatDataset`` / ``RepeatDataset``
wrappers are opened), and prints for each dataset: its images and those without
objects, the objects and ignored (difficult, crowd, KITTI DontCare...) boxes per class
(counted by the name the files give each label: ``label_names``; a class of
``classes`` that names no category is marked), a box-size summary, the anchor fit
(``frcnn_plugin.analysis.anchor_fit``: the boxes after the train pipeline's resize
against the config's RPN anchors and assigner), and every defect with its file (and
line). Our datasets
(``ScratchVOCDataset``, ``ScratchCocoDataset``) report their own defects: here they
are built with ``raise_on_defects=False``, so that all of them are listed and the rest
of the data is counted. Any other dataset (``KittiTinyDataset``, mmdet's) is checked
from the instances it loaded (``frcnn_plugin.datasets.instance_defects``); if it
cannot be built, its error is the defect. ``filter_empty_gt`` is turned off here so
that images without objects are counted (the report says whether training skips them).

Exit status: 1 when any defect is an error, else 0.
"""
import argparse
import contextlib
import copy
import os.path as osp
import sys
from collections import Counter

import env_check  # first: without the environment, one line instead of a traceback

env_check.require_environment()

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmdet.registry import DATASETS  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import frcnn_plugin  # noqa: E402,F401  registers our datasets
from frcnn_plugin.analysis.anchor_fit import AnchorFit, fit_lines  # noqa: E402
from frcnn_plugin.datasets.defects import (  # noqa: E402
    CollectsDefects,
    DatasetError,
    Defect,
    instance_defects,
)
from frcnn_plugin.utils.dataset_wrappers import leaves  # noqa: E402

LOADERS = {'train': 'train_dataloader', 'val': 'val_dataloader',
           'test': 'test_dataloader'}
# COCO's object sizes: area under 32^2 is small, under 96^2 medium, the rest large.
SMALL, MEDIUM = 32**2, 96**2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the config file')
    parser.add_argument('--split', choices=[*LOADERS, 'all'], default='all',
                        help='which split to check (default: all)')
    parser.add_argument('--anchor-fit-images', type=int, default=200, metavar='N',
                        help='measure the anchor fit on at most N images of each dataset, '
                        'evenly spaced (default: 200; 0: no anchor fit)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


def for_checking(dataset_cfg) -> bool:
    """Set up a plain dataset config for checking: our datasets collect their defects,
    and images without objects are kept. Returns whether training leaves them out."""
    dataset_type = dataset_cfg['type']
    cls = dataset_type if isinstance(dataset_type, type) else DATASETS.get(dataset_type)
    if isinstance(cls, type) and issubclass(cls, CollectsDefects):
        dataset_cfg['raise_on_defects'] = False
    filter_cfg = dataset_cfg.get('filter_cfg') or {}
    if filter_cfg.get('filter_empty_gt') and not dataset_cfg.get('test_mode'):
        dataset_cfg['filter_cfg'] = dict(filter_cfg, filter_empty_gt=False)
        return True
    return False


def label_names(dataset):
    """The name of each label as the dataset's files spell it (our datasets say;
    otherwise ``classes``)."""
    return getattr(dataset, 'label_names', None) or dataset.metainfo['classes']


def summary(dataset, skips_empty: bool):
    """Lines of statistics of one plain dataset."""
    classes = dataset.metainfo['classes']
    names_of = label_names(dataset)
    objects, ignored = Counter(), Counter()
    areas, sides = [], []
    empty = 0
    for i in range(len(dataset)):
        instances = dataset.get_data_info(i).get('instances', [])
        empty += not instances
        for inst in instances:
            label = inst['bbox_label']
            name = names_of[label] if 0 <= label < len(names_of) else '(no class)'
            if inst.get('ignore_flag'):
                ignored[name] += 1
                continue
            objects[name] += 1
            x1, y1, x2, y2 = inst['bbox']
            areas.append((x2 - x1) * (y2 - y1))
            sides.append(min(x2 - x1, y2 - y1))

    lines = [f'images: {len(dataset)}, without objects: {empty}'
             + (' (filter_empty_gt: training leaves them out)' if skips_empty else '')]
    names = list(classes) + sorted((set(objects) | set(ignored)) - set(classes))
    width = max(len(n) for n in names + ['class'])
    lines.append(f'{"class":<{width}}  objects  ignored')
    for name in names:
        if name in classes and name not in names_of:
            lines.append(f'{name:<{width}}  {"-":>7}  {"-":>7}  no such category: no label')
            continue
        lines.append(f'{name:<{width}}  {objects[name]:>7}  {ignored[name]:>7}')
    lines.append(f'{"(all)":<{width}}  {sum(objects.values()):>7}  '
                 f'{sum(ignored.values()):>7}')
    if areas:
        areas = np.asarray(areas)
        small, large = int((areas < SMALL).sum()), int((areas >= MEDIUM).sum())
        lines.append(f'boxes by COCO area: {small} small (< 32x32), '
                     f'{len(areas) - small - large} medium, {large} large (>= 96x96)')
        lines.append(f'box shorter side: min {min(sides):g} / median '
                     f'{np.median(sides):g} / max {max(sides):g} px')
    return lines


def anchor_fit_lines(anchor_fit, dataset):
    """The anchor-fit report of one plain dataset, or the line saying why none."""
    if isinstance(anchor_fit, str):
        return [f'anchor fit: not measured: {anchor_fit}']
    if len(dataset) == 0:
        return []
    # Many small tensor operations: one thread. 200 images of 2048 x 1371 took 6-7 s on
    # one thread, 76.6 s on torch's two of a 2-core machine busy with other work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit = anchor_fit(dataset)
    except Exception as e:  # a pipeline step that needs more than a stand-in image
        return [f'anchor fit: not measured: {type(e).__name__}: {e}']
    finally:
        torch.set_num_threads(threads)
    return fit_lines(fit, label_names(dataset), dataset.metainfo['classes'])


def check_split(split: str, dataset_cfg, anchor_fit=None) -> int:
    """Print one split's report; return its number of errors. ``anchor_fit``: an
    :class:`AnchorFit`, a line saying why there is none, or None (not asked)."""
    dataset_cfg = copy.deepcopy(dataset_cfg)
    skips_empty = [for_checking(leaf) for leaf in leaves(dataset_cfg)]
    try:
        with contextlib.redirect_stdout(sys.stderr):  # pycocotools' progress lines
            dataset = DATASETS.build(dataset_cfg)
    except DatasetError as e:  # ours, when nothing could be loaded
        print(f'{split}: {dataset_cfg.get("type")} could not be built')
        for defect in e.defects:
            print(f'    error: {defect}')
        return len(e.defects)
    except Exception as e:  # another dataset stops at its first defect: that defect
        print(f'{split}: {dataset_cfg.get("type")} could not be built\n'
              f'    error: {type(e).__name__}: {e}')
        return 1
    errors = 0
    parts = leaves(dataset)
    for k, (leaf, skips) in enumerate(zip(parts, skips_empty)):
        name = split if len(parts) == 1 else f'{split}[{k}]'
        print(f'{name}: {type(leaf).__name__} {getattr(leaf, "ann_file", "")}')
        for line in summary(leaf, skips):
            print(f'  {line}')
        for line in anchor_fit_lines(anchor_fit, leaf) if anchor_fit is not None else []:
            print(f'  {line}')
        defects = list(leaf.defects if isinstance(leaf, CollectsDefects)
                       else instance_defects(leaf))
        if skips and not any(leaf.get_data_info(i).get('instances')
                             for i in range(len(leaf))):
            defects.append(Defect(getattr(leaf, 'ann_file', ''), None,
                                  'no image has objects: filter_empty_gt leaves none, and '
                                  'training cannot start'))
        num_errors = sum(d.error for d in defects)
        print(f'  defects: {num_errors} error(s), {len(defects) - num_errors} warning(s)')
        for defect in defects:
            print(f'    {"error" if defect.error else "warning"}: {defect}')
        errors += num_errors
    return errors


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))

    anchor_fit = None
    if args.anchor_fit_images > 0:
        try:
            anchor_fit = AnchorFit.from_config(cfg, max_images=args.anchor_fit_images)
        except Exception as e:  # no RPN, or a pipeline step that cannot be built
            anchor_fit = str(e) if isinstance(e, ValueError) else f'{type(e).__name__}: {e}'
    errors = 0
    checked = {}
    for split in (LOADERS if args.split == 'all' else [args.split]):
        loader = cfg.get(LOADERS[split])
        if not loader:
            print(f'{split}: no {LOADERS[split]} in the config')
            continue
        same = [s for s, d in checked.items() if d == loader.dataset]
        if same:
            print(f'{split}: the same dataset as {same[0]}')
            continue
        checked[split] = loader.dataset
        errors += check_split(split, loader.dataset, anchor_fit)
    print(f'{errors} error(s)' if errors else 'no errors')
    return int(errors > 0)


if __name__ == '__main__':
    sys.exit(main())
