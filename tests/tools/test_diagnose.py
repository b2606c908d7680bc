"""tools/diagnose.py over KittiTiny val images with a tiny random-weight VGG16 detector:
every gt accounted for once (ignore regions excluded), per class and in all; the files
and tables are written; wrong paths and splits are named."""
import json
import subprocess

import pytest
import torch
from kitti_small import write_small_config
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import save_checkpoint

import frcnn_plugin  # noqa: F401  registers our components
from frcnn_plugin.analysis.diagnosis import STAGES
from frcnn_plugin.datasets import KittiTinyDataset

VAL_IDS = ['000050', '000068', '000003', '000010', '000024', '000030']
OVERRIDES = """
model = dict(backbone=dict(init_cfg=None), roi_head=dict(bbox_head=dict(fc_out_channels=64)))
"""


def run(python, repo, *args):
    return subprocess.run([python, 'tools/diagnose.py', *map(str, args)], cwd=repo,
                          capture_output=True, text=True)


@pytest.fixture(scope='module')
def tiny(repo, kitti_tiny_root, tmp_path_factory):
    """(config, checkpoint): the paper's VGG16 at 320 x 97, random weights with confident
    class scores (so some boxes pass the threshold), saved as the runner saves."""
    tmp = tmp_path_factory.mktemp('diagnose')
    config = write_small_config(tmp / 'tiny.py', repo / 'configs/frcnn_kitti_tiny.py',
                                kitti_tiny_root, VAL_IDS[:1], VAL_IDS, overrides=OVERRIDES)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.weight.normal_(0, 1.0)
    checkpoint = tmp / 'tiny.pth'
    save_checkpoint({'state_dict': model.state_dict(),
                     'meta': {'dataset_meta': dict(KittiTinyDataset.METAINFO)}}, str(checkpoint))
    return config, checkpoint


def gt_counts(kitti_tiny_root):
    """(gts per class, ignore regions) in the VAL_IDS label files."""
    classes = KittiTinyDataset.METAINFO['classes']
    per_class, ignored = dict.fromkeys(classes, 0), 0
    for image_id in VAL_IDS:
        label = kitti_tiny_root / 'training/label_2' / f'{image_id}.txt'
        for kind in (line.split()[0] for line in label.read_text().splitlines() if line.split()):
            if kind in per_class:
                per_class[kind] += 1
            else:
                ignored += 1
    return per_class, ignored


def test_diagnose_accounts_for_every_gt(tiny, repo, kitti_tiny_root, python, tmp_path):
    config, checkpoint = tiny
    proc = run(python, repo, config, checkpoint, '--out-dir', tmp_path, '--score-thr', 0.5)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    diagnosis = json.loads((tmp_path / 'diagnosis.json').read_text())
    per_class, ignored = gt_counts(kitti_tiny_root)

    assert diagnosis['num_images'] == len(VAL_IDS)
    assert diagnosis['num_gt'] == sum(per_class.values()) > 0
    assert diagnosis['ignored_gt_excluded'] == ignored > 0
    assert list(diagnosis['lost_at']) == list(STAGES)
    assert diagnosis['detected'] + sum(diagnosis['lost_at'].values()) == diagnosis['num_gt']
    for name, counts in diagnosis['per_class'].items():
        assert counts['num_gt'] == per_class[name]
        assert counts['detected'] + sum(counts['lost_at'].values()) == counts['num_gt']
    for stage in STAGES:
        assert sum(c['lost_at'][stage] for c in diagnosis['per_class'].values()) == \
            diagnosis['lost_at'][stage]

    coverage = diagnosis['anchor_coverage']
    assert len(coverage['best_ious']) == diagnosis['num_gt']
    assert sum(s['num_gt'] for s in coverage['by_size'].values()) == diagnosis['num_gt']
    # A gt without a positive anchor is lost there unless detected anyway.
    assert diagnosis['lost_at']['no_positive_anchor'] <= coverage['no_positive_anchor']
    recall = diagnosis['rpn_recall']
    assert recall['num_proposals'][-1] <= 300
    for key in ('iou_0.5', 'iou_0.7'):
        assert recall[key] == sorted(recall[key]) and 0 <= recall[key][-1] <= 1
    assert all(a >= b for a, b in zip(recall['iou_0.5'], recall['iou_0.7']))
    matrix = diagnosis['confusion']['matrix']
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    for name in ('outcomes.png', 'anchor_coverage.png', 'rpn_recall.png'):
        assert (tmp_path / name).stat().st_size > 1000
    assert 'Where each gt box ends' in proc.stdout and 'no_positive_anchor' in proc.stdout


def test_diagnose_names_wrong_input(tiny, repo, python, tmp_path):
    config, checkpoint = tiny
    proc = run(python, repo, config, tmp_path / 'nope.pth', '--out-dir', tmp_path)
    assert proc.returncode == 2 and f'checkpoint not found: {tmp_path}/nope.pth' in proc.stderr
    proc = run(python, repo, config, checkpoint, '--out-dir', tmp_path, '--split', 'test',
               '--cfg-options', 'test_dataloader=None')
    assert proc.returncode != 0 and 'the config has no test_dataloader' in proc.stderr
