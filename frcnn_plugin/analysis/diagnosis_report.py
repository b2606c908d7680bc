"""``diagnosis.json``, the printed tables and the pictures of ``tools/diagnose.py``."""
import json
import os.path as osp
from typing import List, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from .diagnosis import IOU_THR, SIZES, STAGES  # noqa: E402

STAGE_COLOURS = dict(detected='tab:green', no_positive_anchor='tab:red',
                     not_in_proposals='tab:orange', misclassified='tab:purple',
                     suppressed='tab:blue', below_score_thr='tab:gray')


def table(rows: List[Sequence], header: Sequence[str]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ['  '.join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def outcome_table(diagnosis: dict) -> str:
    header = ['class', 'gts', 'detected'] + list(STAGES)
    rows = [[name, c['num_gt'], c['detected']] + [c['lost_at'][s] for s in STAGES]
            for name, c in diagnosis['per_class'].items()]
    rows.append(['all', diagnosis['num_gt'], diagnosis['detected']]
                + [diagnosis['lost_at'][s] for s in STAGES])
    return table(rows, header)


def confusion_table(confusion: dict) -> str:
    names = confusion['classes']
    rows = [[f'gt {name}'] + row for name, row in zip(names, confusion['matrix'])]
    return table(rows, ['detected as ->'] + list(names))


def coverage_table(coverage: dict) -> str:
    rows = [[name, s['num_gt'], s['mean_best_iou'], s['no_positive_anchor']]
            for name, s in coverage['by_size'].items()]
    rows.append(['all', coverage['num_gt'], coverage['mean_best_iou'],
                 coverage['no_positive_anchor']])
    return table(rows, ['gt size', 'gts', 'mean best anchor IoU', 'no positive anchor'])


def write_json(diagnosis: dict, out_dir: str) -> str:
    path = osp.join(out_dir, 'diagnosis.json')
    with open(path, 'w') as f:
        json.dump(diagnosis, f, indent=1)
    return path


def plot_outcomes(diagnosis: dict, path: str) -> None:
    """Stacked bars per class: detected, then each stage that lost gts."""
    names = list(diagnosis['per_class']) + ['all']
    per = list(diagnosis['per_class'].values()) + [diagnosis]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names) + 3), 4.5))
    bottom = [0] * len(names)
    for outcome in ('detected',) + STAGES:
        values = [c['detected'] if outcome == 'detected' else c['lost_at'][outcome]
                  for c in per]
        ax.bar(names, values, bottom=bottom, color=STAGE_COLOURS[outcome], label=outcome)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel('ground-truth boxes')
    ax.set_title(f'What happened to each ground-truth box ({diagnosis["num_gt"]} in all): '
                 f'detected (score > {diagnosis["score_thr"]}, IoU >= {IOU_THR}) or the first '
                 'stage that lost it', fontsize=9)
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1, 1))
    fig.savefig(path, dpi=80, bbox_inches='tight')
    plt.close(fig)


def plot_anchor_coverage(coverage: dict, assigner_cfg: dict, path: str) -> None:
    """Histogram of each gt's best anchor IoU, one colour per gt size."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = [i / 20 for i in range(21)]
    values = [[iou for iou, size in zip(coverage['best_ious'], coverage['sizes'])
               if size == name] for name, _, _ in SIZES]
    ax.hist(values, bins=bins, stacked=True, label=[f'{name} ({len(v)})' for (name, _, _), v
                                                     in zip(SIZES, values)])
    for key, style in (('min_pos_iou', ':'), ('pos_iou_thr', '--')):
        if isinstance(assigner_cfg.get(key), (int, float)):
            ax.axvline(assigner_cfg[key], color='black', ls=style,
                       label=f'{key} = {assigner_cfg[key]}')
    ax.set_xlabel('best IoU of the gt box with any anchor the RPN trains on')
    ax.set_ylabel('ground-truth boxes')
    ax.set_title('Anchor coverage: a gt left of min_pos_iou gets no positive anchor '
                 f'({coverage["no_positive_anchor"]} of {coverage["num_gt"]})', fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=80, bbox_inches='tight')
    plt.close(fig)


def plot_recall(curve: dict, path: str) -> None:
    """RPN recall against the number of proposals, at IoU 0.5 and 0.7."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in (k for k in curve if k.startswith('iou_')):
        ax.plot(curve['num_proposals'], curve[key], marker='o',
                label=f'IoU >= {key[4:]}')
    ax.set_xscale('log')
    ax.set_ylim(0, 1.02)
    ax.set_xlabel('proposals kept per image (best first, test_cfg.rpn)')
    ax.set_ylabel('share of gt boxes covered (recall)')
    ax.set_title('RPN recall: how many gt boxes some proposal covers, by number of '
                 'proposals', fontsize=9)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=80, bbox_inches='tight')
    plt.close(fig)
