"""tools/train.py and tools/test.py before mmdet's tools start: missing data is one line
naming the path and the command that provides it; pretrained weights that cannot be
downloaded are one warning line, and training goes on without them."""
import re
import socket
import subprocess

import pytest
from kitti_small import run_tool, write_small_config

PREPARE_VOC = "run 'python tools/prepare_data.py voc --years 2007'"
PREPARE_KITTI = "run 'python tools/prepare_data.py kitti_tiny'"


def run_in(cwd, python, *args):
    return subprocess.run([python, *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_missing_data_is_one_line(repo, python, tmp_path):
    """Run from an empty folder, where the configs' data/... paths do not exist."""
    config = repo / 'configs/frcnn_voc.py'
    result = run_in(tmp_path, python, repo / 'tools/train.py', config)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f'frcnn_plugin: data/VOCdevkit/ not found (train_dataloader.dataset.data_root of '
        f'{config}); {PREPARE_VOC} (a download; --src VOCDEVKIT links a copy you have)')
    assert 'Traceback' not in result.stderr
    config = repo / 'configs/frcnn_kitti_tiny.py'
    result = run_in(tmp_path, python, repo / 'tools/test.py', config, 'epoch_12.pth')
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        f'frcnn_plugin: data/kitti_tiny/ not found (test_dataloader.dataset.data_root of '
        f'{config}); {PREPARE_KITTI}')
    assert 'Traceback' not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written: no work_dirs/


@pytest.mark.slow
def test_unfetchable_pretrained_weights_warn_and_training_goes_on(
        repo, kitti_tiny_root, python, tmp_path, monkeypatch):
    """The tutorials' model, small, whose ImageNet VGG16 lies behind a closed port: one
    warning line, then one training iteration from random initialisation."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    url = f'http://127.0.0.1:{port}/models/vgg16-397923af.pth'
    config = write_small_config(
        tmp_path / 'small.py', repo / 'configs/frcnn_kitti_tiny.py', kitti_tiny_root,
        ['000000', '000001'], scale=(480, 480), overrides=f"""
model = dict(backbone=dict(init_cfg=dict(checkpoint='{url}')),
             roi_head=dict(bbox_head=dict(fc_out_channels=64)))
train_cfg = dict(max_epochs=1)
param_scheduler = []
""")
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))  # nothing cached
    work_dir = tmp_path / 'work'
    log = run_tool(python, repo, 'tools/train.py', config, '--work-dir', work_dir)
    warnings = [line for line in log.splitlines() if 'frcnn_plugin: warning' in line]
    assert len(warnings) == 1
    assert warnings[0].startswith('frcnn_plugin: warning: cannot fetch the pretrained weights '
                                  f'of model.backbone.init_cfg, {url}: ')
    assert 'starts from random initialisation' in warnings[0]
    assert re.search(r'Epoch\(train\) \[1\]\[1/1\].*loss: \d', log)
    assert 'Traceback' not in log
    # The run's own record of its config says what it trained from.
    dumped = (work_dir / 'small.py').read_text()
    assert re.search(r"backbone=dict\([^)]*init_cfg=None", dumped, re.S)
