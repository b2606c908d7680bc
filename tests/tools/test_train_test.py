"""tools/train.py and tools/test.py end to end: the KittiTiny baseline, small and fast."""
import pickle
import re

import pytest
from kitti_small import run_tool, write_small_config

pytestmark = pytest.mark.slow

# The baseline at 320 x 192: 4 train images (2 iterations of batch 2), 2 val images.
OVERRIDES = """
# No downloads: random initialisation.
load_from = None
model = dict(backbone=dict(init_cfg=None))
train_cfg = dict(max_epochs=2, val_interval=2)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, begin=0, end=3, milestones=[2])]
"""


@pytest.fixture(scope='module')
def trained(repo, kitti_tiny_root, python, tmp_path_factory):
    """Train 2 epochs of 2 iterations (4 images, batch 2), evaluating at the end."""
    tmp = tmp_path_factory.mktemp('e2e')
    config = write_small_config(
        tmp / 'small.py', repo / 'configs/baselines/faster-rcnn_r50_fpn_kitti_tiny.py',
        kitti_tiny_root, ['000000', '000001', '000002', '000003'], ['000050', '000068'],
        overrides=OVERRIDES)
    work_dir = tmp / 'work'
    log = run_tool(python, repo, 'tools/train.py', config, '--work-dir', work_dir)
    return config, work_dir, log


def test_train_writes_checkpoints_and_evaluates(trained):
    config, work_dir, log = trained
    assert (work_dir / 'epoch_1.pth').is_file() and (work_dir / 'epoch_2.pth').is_file()
    assert 'KittiTinyDataset' in log and 'ignore regions' in log
    assert re.search(r'Epoch\(train\) \[2\]\[2/2\].*loss: \d', log)
    assert re.search(r'Epoch\(val\) \[2\]\[2/2\].*pascal_voc/mAP: \d', log)


def test_resume_continues_from_the_last_checkpoint(trained, repo, python):
    config, work_dir, _ = trained
    log = run_tool(python, repo, 'tools/train.py', config, '--work-dir', work_dir, '--resume',
                   '--cfg-options', 'train_cfg.max_epochs=3', 'train_cfg.val_interval=3')
    assert f'Load checkpoint from {work_dir}/epoch_2.pth' in log
    assert 'resumed epoch: 2, iter: 4' in log
    assert 'Epoch(train) [1]' not in log  # nothing trained twice
    assert re.search(r'Epoch\(train\) \[3\]\[2/2\]', log)
    assert (work_dir / 'epoch_3.pth').is_file()
    # And from an explicit checkpoint: the run starts from its epoch.
    log = run_tool(python, repo, 'tools/train.py', config, '--work-dir', work_dir / 'again',
                   '--resume', work_dir / 'epoch_1.pth')
    assert 'resumed epoch: 1, iter: 2' in log
    assert re.search(r'Epoch\(train\) \[2\]\[2/2\]', log)


def test_test_tool_evaluates_a_trained_checkpoint(trained, repo, python, tmp_path):
    config, work_dir, _ = trained
    out = tmp_path / 'results.pkl'
    log = run_tool(python, repo, 'tools/test.py', config, work_dir / 'epoch_2.pth',
                   '--work-dir', tmp_path, '--out', out, '--show-dir', 'shown')
    assert re.search(r'Epoch\(test\) \[2/2\].*pascal_voc/mAP: \d', log)
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert [r['img_id'] for r in results] == ['000050', '000068']
    assert all(r['pred_instances']['bboxes'].shape[1] == 4 for r in results)
    assert len(list(tmp_path.glob('*/shown/*.jpeg'))) == 2
