"""configs/frcnn_shapes.py learns: a short schedule on a small Shapes set, from random
initialisation, reaches a val mAP that a broken training pipeline cannot: the same run
with the R-CNN head's classification targets cut off (loss weight 0) stays far below
(measured 0.306 and 0.119).

Each test is one `tools/train.py` run (validation once, at the end); the thresholds come
from measured runs (docs/learning.md)."""
import re

import pytest
from kitti_small import run_tool

from frcnn_plugin.datasets.shapes import write_shapes

NUM_TRAIN, NUM_VAL = 240, 60
# The short schedule: EPOCHS epochs of NUM_TRAIN / 8 iterations, the config's optimizer
# (AdamW, lr 0.003), lr / 10 for the last epoch, validation once at the end.
SCHEDULE = """
max_epochs = {epochs}
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[max_epochs - 1], gamma=0.1),
]
"""
EPOCHS = 8
# Measured (docs/learning.md): 0.306 with this schedule, 0.119 without the head's class
# targets (its boxes are found, their classes are a guess). Either bound fails the other
# run, with a margin of about 0.06 to each.
LEARNS = 0.24  # mAP the short run must reach
BROKEN = 0.18  # mAP the broken run must stay under


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes_learning') / 'shapes'
    write_shapes(root, seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL)
    return root


def train_shapes(python, repo, root, work_dir, overrides=''):
    """Train the short schedule on ``root``; the val mAP at its end."""
    config = work_dir.parent / f'{work_dir.name}.py'
    config.write_text('\n'.join([
        f"_base_ = '{repo / 'configs' / 'frcnn_shapes.py'}'",
        f"data_root = '{root}/'",
        'train_dataloader = dict(dataset=dict(data_root=data_root))',
        'val_dataloader = dict(dataset=dict(data_root=data_root))',
        'test_dataloader = val_dataloader',
        "default_hooks = dict(checkpoint=dict(interval=-1), logger=dict(interval=10))",
        SCHEDULE.format(epochs=EPOCHS), overrides]))
    log = run_tool(python, repo, 'tools/train.py', config, '--work-dir', work_dir)
    found = re.findall(r'pascal_voc/mAP: ([0-9.]+)', log)
    assert len(found) == 1, log[-3000:]
    return float(found[0])


@pytest.mark.slow
def test_shapes_learns(repo, python, shapes_root, tmp_path):
    mAP = train_shapes(python, repo, shapes_root, tmp_path / 'learns')
    assert mAP >= LEARNS, f'val mAP {mAP} after the short schedule'


@pytest.mark.slow
def test_shapes_without_head_class_targets_stays_far_below(repo, python, shapes_root,
                                                            tmp_path):
    # The R-CNN head's classification loss weighted 0: its class targets never reach
    # the gradient, as with a bug that drops or scrambles them. Everything else trains.
    broken = 'model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(loss_weight=0.0))))'
    mAP = train_shapes(python, repo, shapes_root, tmp_path / 'broken', broken)
    assert mAP < BROKEN, f'val mAP {mAP} without the class targets'
