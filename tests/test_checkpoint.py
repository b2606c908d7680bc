import os
import pickle
import subprocess

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

import frcnn_plugin  # noqa: F401  allowlists the globals on import
from frcnn_plugin.checkpoint import history_buffer_getattr

# torch.load's default: weights_only=True from torch 2.6 on.
WEIGHTS_ONLY_DEFAULT = torch.__version__ >= '2.6'


def runner_like_checkpoint(path):
    """What mmengine's Runner.save_checkpoint writes, in miniature."""
    hub = MessageHub.get_instance('test_checkpoint')
    for step in range(3):
        hub.update_scalar('train/loss', 1.5 - step)
        hub.update_scalar('train/lr', np.float64(0.01))
    hub.update_info('epoch', np.int64(2))
    ckpt = dict(meta=dict(epoch=2, iter=10, seed=np.int64(0),
                          dataset_meta=dict(classes=('Car', 'Pedestrian', 'Cyclist'))),
                state_dict={'w': torch.arange(4.)},
                message_hub=hub.state_dict(),
                optimizer={'state': {}, 'param_groups': [{'lr': 0.01, 'params': [0]}]})
    torch.save(ckpt, path)


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class LooksUpAttributes:
    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def test_runner_checkpoint_loads_weights_only(tmp_path):
    path = tmp_path / 'epoch_2.pth'
    runner_like_checkpoint(path)
    for ckpt in (torch.load(path, weights_only=True), _load_checkpoint(str(path))):
        buffer = ckpt['message_hub']['log_scalars']['train/loss']
        assert isinstance(buffer, HistoryBuffer)
        assert buffer.mean() == pytest.approx(0.5)
        assert buffer.current() == -0.5  # the statistics methods came back and work
        assert ckpt['meta']['seed'] == np.int64(0)
        assert torch.equal(ckpt['state_dict']['w'], torch.arange(4.))


@pytest.mark.skipif(not WEIGHTS_ONLY_DEFAULT, reason='torch < 2.6 loads everything')
@pytest.mark.parametrize('plugin', [False, True])
def test_a_fresh_process_loads_it_only_with_the_plugin(tmp_path, python, plugin):
    # A fresh process: no HistoryBuffer exists yet there, as in test.py or --resume.
    path = tmp_path / 'epoch_2.pth'
    runner_like_checkpoint(path)
    code = (f'import sys, torch, mmdet{", frcnn_plugin" if plugin else ""}\n'
            'try:\n    ckpt = torch.load(sys.argv[1])\n'
            '    print("loaded", ckpt["message_hub"]["log_scalars"]["train/loss"].mean())\n'
            'except Exception as e:\n    print(type(e).__name__, e)\n')
    out = subprocess.run([python, '-c', code, str(path)], capture_output=True, text=True,
                         check=True).stdout
    if plugin:
        assert out == 'loaded 0.5\n'
    else:  # the first global met is refused: a numpy scalar here
        assert out.startswith('UnpicklingError') and 'Unsupported global' in out


@pytest.mark.parametrize('payload', ['code', 'getattr'])
def test_arbitrary_pickled_objects_are_still_refused(tmp_path, payload):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    evil = RunsCode(marker) if payload == 'code' else LooksUpAttributes()
    torch.save({'state_dict': {}, 'meta': {'x': evil}}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(str(path))
    assert not marker.exists()


def test_history_buffer_getattr_only_reaches_statistics_methods():
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in [(HistoryBuffer, 'update'), (HistoryBuffer, '__init__'),
                      (os, 'system'), (HistoryBuffer(), 'mean')]:
        with pytest.raises(pickle.UnpicklingError, match='refuses getattr'):
            history_buffer_getattr(obj, name)
