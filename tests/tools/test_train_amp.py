"""tools/train.py --amp without a GPU: it trains with ScratchAmpOptimWrapper (bfloat16
autocast on the CPU), its checkpoints resume, and tools/test.py evaluates them."""
import math
import os
import re
import subprocess

import pytest
from kitti_small import write_small_config

pytestmark = pytest.mark.slow

# frcnn_kitti_tiny.py at 400 x 121 (no download: random initialisation); fc6 / fc7 of
# 256 instead of 4096 keep the checkpoints small.
OVERRIDES = """
model = dict(backbone=dict(init_cfg=None),
             roi_head=dict(bbox_head=dict(fc_out_channels=256)))
train_cfg = dict(max_epochs=1, val_interval=1)
"""


def run_without_gpu(repo, python, *args):
    """``python *args`` in ``repo`` as on a CPU-only machine (no CUDA device visible)."""
    proc = subprocess.run([python, *map(str, args)], cwd=repo, capture_output=True, text=True,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    return log


def test_amp_trains_resumes_and_tests_on_the_cpu(repo, kitti_tiny_root, python, tmp_path):
    config = write_small_config(
        tmp_path / 'small.py', repo / 'configs/frcnn_kitti_tiny.py', kitti_tiny_root,
        ['000000', '000001', '000002', '000003'], ['000050', '000068'], scale=(400, 160),
        overrides=OVERRIDES)
    work_dir = tmp_path / 'work'
    log = run_without_gpu(repo, python, 'tools/train.py', config, '--work-dir', work_dir, '--amp')
    assert 'tools/train.py: --amp without a GPU' in log
    assert 'ScratchAmpOptimWrapper: no GPU, so mixed precision is bfloat16 autocast' in log
    losses = re.findall(r'Epoch\(train\) \[1\]\[2/2\].* loss: (\S+)', log)
    assert len(losses) == 1 and math.isfinite(float(losses[0])), log[-3000:]
    assert re.search(r'Epoch\(val\) \[1\]\[2/2\].*pascal_voc/mAP: \d', log)
    dumped = (work_dir / 'small.py').read_text()
    assert "type='ScratchAmpOptimWrapper'" in dumped

    # The checkpoint resumes (optimizer state included) into a second epoch.
    log = run_without_gpu(repo, python, 'tools/train.py', config, '--work-dir', work_dir,
                          '--amp', '--resume', '--cfg-options', 'train_cfg.max_epochs=2',
                          'train_cfg.val_interval=2')
    assert 'resumed epoch: 1, iter: 2' in log
    assert re.search(r'Epoch\(train\) \[2\]\[2/2\].* loss: \d', log)

    log = run_without_gpu(repo, python, 'tools/test.py', config, work_dir / 'epoch_2.pth',
                          '--work-dir', tmp_path / 'test')
    assert re.search(r'Epoch\(test\) \[2/2\].*pascal_voc/mAP: \d', log)
