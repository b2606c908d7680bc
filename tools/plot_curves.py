#!/usr/bin/env python
"""Plot a training run's learning curves: its losses and its validation mAP per epoch.

    python tools/plot_curves.py WORK_DIR [--out WORK_DIR/curves.png] [--title TEXT]

Reads the scalars mmengine's ``LoggerHook`` wrote during ``tools/train.py``
(``WORK_DIR/<timestamp>/vis_data/<timestamp>.json``, one JSON object per logged training
iteration and per validation), from the latest run in WORK_DIR that has both, and draws
two panels: every ``loss*`` scalar against the epoch (log scale; each logged value is
the mean over the logger's interval), and each validation metric ending in ``mAP``
(mmdet's VOCMetric: ``pascal_voc/mAP``) after each evaluated epoch.
"""
import argparse
import glob
import json
import os.path as osp
import sys
from collections import defaultdict

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def find_scalars(work_dir: str) -> str:
    """The latest run's scalars file in ``work_dir`` that holds a validation."""
    candidates = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', '*.json')))
    candidates = [c for c in candidates if osp.basename(c) != 'scalars.json']
    for path in reversed(candidates):
        with open(path) as f:
            if any('mAP' in line for line in f):
                return path
    sys.exit(f'plot_curves.py: no training run with a validation in {work_dir} '
             '(looked for <timestamp>/vis_data/<timestamp>.json)')


def read_scalars(path: str):
    """(train, val): train rows have 'epoch' and 'iter', val rows 'step' = epoch."""
    train, val = [], []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f'plot_curves.py: {path}:{number}: not JSON: {e}')
            (train if 'iter' in row and 'epoch' in row else val).append(row)
    return train, val


def plot(train, val, out: str, title: str) -> None:
    # Iterations per epoch from the log itself: the largest iteration logged in an
    # epoch, over the epoch's number (the logger's `iter` counts from the start).
    per_epoch = max(row['iter'] / row['epoch'] for row in train) if train else 1
    losses = defaultdict(lambda: ([], []))
    for row in train:
        for key, value in row.items():
            if key.startswith('loss'):
                losses[key][0].append(row['iter'] / per_epoch)
                losses[key][1].append(value)
    metrics = defaultdict(lambda: ([], []))
    for row in val:
        for key, value in row.items():
            if key.endswith('mAP'):
                metrics[key][0].append(row['step'])
                metrics[key][1].append(value)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, (x, y) in sorted(losses.items()):
        left.plot(x, y, lw=1.5 if key == 'loss' else 1.0, label=key)
    left.set_yscale('log')
    left.set_xlabel('epoch')
    left.set_title('training losses')
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    for key, (x, y) in sorted(metrics.items()):
        right.plot(x, y, marker='o', label=key)
        right.annotate(f'{y[-1]:.3f}', (x[-1], y[-1]), textcoords='offset points',
                       xytext=(-10, -14), fontsize=8)
    right.set_ylim(0, 1)
    right.set_xlabel('epoch')
    right.set_title('validation mAP@0.5')
    right.legend(fontsize=7, loc='lower right')
    right.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dir', help='the --work-dir of tools/train.py')
    parser.add_argument('--out', help='the PNG to write (default WORK_DIR/curves.png)')
    parser.add_argument('--title', default='', help='a title over both panels')
    args = parser.parse_args(argv)
    if not osp.isdir(args.work_dir):
        sys.exit(f'plot_curves.py: no such folder: {args.work_dir}')
    path = find_scalars(args.work_dir)
    train, val = read_scalars(path)
    out = args.out or osp.join(args.work_dir, 'curves.png')
    plot(train, val, out, args.title)
    print(f'{out}: {len(train)} training logs, {len(val)} validations, from {path}')


if __name__ == '__main__':
    main()
