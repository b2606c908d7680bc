"""Genuine checkpoints load through mmengine's loaders with weights_only=True (hostile ones:
test_checkpoint_security.py): a stock Runner's (message hub, numpy scalars), an mmdet 2.x
model-zoo file, torchvision's VGG16 behind ``torchvision://vgg16``; only inside mmengine's
loading (and :func:`frcnn_plugin.engine.checkpoint.load`), never process-wide."""
import os
import pickle
import subprocess
import threading
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torchvision
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, get_torchvision_models
from torch import nn

import frcnn_plugin  # noqa: F401  re-registers mmengine's checkpoint loaders
from frcnn_plugin.engine import checkpoint
from frcnn_plugin.engine.checkpoint import (
    UnpickledHistoryBuffer,
    history_buffer_getattr,
    loading_mmengine_checkpoints,
)
from frcnn_plugin.models import ScratchVGG16


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


def test_runner_checkpoint_loads_weights_only(tmp_path):
    path = tmp_path / 'epoch_2.pth'
    runner_like_checkpoint(path)
    registry = dict(HistoryBuffer._statistics_methods)
    for ckpt in (checkpoint.load(path), _load_checkpoint(str(path))):
        buffer = ckpt['message_hub']['log_scalars']['train/loss']
        assert type(buffer) is HistoryBuffer
        assert buffer.mean() == pytest.approx(0.5)
        assert buffer.current() == -0.5
        assert buffer.statistics('mean') == pytest.approx(0.5)
        assert type(ckpt['meta']['seed']) is np.int64 and ckpt['meta']['seed'] == 0
        assert torch.equal(ckpt['state_dict']['w'], torch.arange(4.))
    assert dict(HistoryBuffer._statistics_methods) == registry


def test_numpy_values_come_back_as_numpy_pickles_them(tmp_path):
    meta = dict(scalars=[np.float32(1.5), np.bool_(True), np.str_('Car'), np.bytes_(b'xy'),
                         np.complex128(1j), np.uint8(7)],
                arrays=(np.arange(6).reshape(2, 3), np.asfortranarray(np.eye(2)),
                        np.array([1, 2], dtype='>i4'), np.array(['a', 'bc'])),
                dtype=np.dtype('f2'))
    meta['again'] = meta['arrays'][0]  # one array reached twice stays one array
    torch.save({'meta': meta}, tmp_path / 'numpy.pth')
    loaded = checkpoint.load(tmp_path / 'numpy.pth')['meta']
    expected = pickle.loads(pickle.dumps(meta, protocol=2))
    assert [(type(x), x) for x in loaded['scalars']] == [(type(x), x) for x in expected['scalars']]
    for ours, theirs in zip(loaded['arrays'], expected['arrays']):
        assert type(ours) is np.ndarray and ours.dtype == theirs.dtype
        assert ours.flags.f_contiguous == theirs.flags.f_contiguous and ours.flags.writeable
        np.testing.assert_array_equal(ours, theirs)
    assert loaded['again'] is loaded['arrays'][0]
    assert loaded['dtype'] == np.dtype('f2')


@pytest.mark.parametrize('plugin', [False, True])
def test_a_fresh_process_loads_it_only_with_the_plugin(tmp_path, python, plugin):
    # A fresh process: no HistoryBuffer exists yet there, as in test.py or --resume.
    path = tmp_path / 'epoch_2.pth'
    runner_like_checkpoint(path)
    code = (f'import sys, torch, mmdet{", frcnn_plugin" if plugin else ""}\n'
            'from mmengine.runner.checkpoint import _load_checkpoint\n'
            'for load in (_load_checkpoint, torch.load):\n'
            '    try:\n        ckpt = load(sys.argv[1])\n'
            '        buffer = ckpt["message_hub"]["log_scalars"]["train/loss"]\n'
            '        print("loaded", buffer.statistics("mean"))\n'
            '    except Exception as e:\n'
            '        print(type(e).__name__, " ".join(str(e).split()))\n')
    out = subprocess.run([python, '-c', code, str(path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    out = [line for line in out if not line.startswith('Loads checkpoint')]
    if plugin:  # mmengine's loader reads it, a plain torch.load still refuses it
        assert out[0] == 'loaded 0.5'
    else:  # the first global met is refused: a numpy scalar here
        assert out[0].startswith('UnpicklingError') and 'Unsupported global' in out[0]
    assert out[1].startswith('UnpicklingError') and 'Unsupported global' in out[1]


class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return {'loss': out.pow(2).mean()} if mode == 'loss' else out


class ToyDataset(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', 'b'))

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.full((2, ), float(index)))


def toy_runner(work_dir, name, max_epochs, **kwargs):
    # default_scope: mmdet's, as conftest sets it (a runner makes its scope the current one)
    return Runner(model=Toy(), work_dir=str(work_dir), experiment_name=name,
                  train_dataloader=dict(dataset=ToyDataset(), batch_size=2,
                                        sampler=dict(type='DefaultSampler', shuffle=False),
                                        collate_fn=dict(type='default_collate')),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
                  train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
                  default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
                  log_level='WARNING', default_scope='mmdet', **kwargs)


def test_a_stock_runner_checkpoint_resumes(tmp_path):
    first = toy_runner(tmp_path, 'first_run', max_epochs=1)
    first.train()  # saves epoch_1.pth
    scalars = first.message_hub.state_dict()['log_scalars']
    assert isinstance(scalars['train/loss'], HistoryBuffer)
    registry = dict(HistoryBuffer._statistics_methods)

    loaded = _load_checkpoint(str(tmp_path / 'epoch_1.pth'))
    assert loaded['meta']['seed'] == first.seed and loaded['meta']['epoch'] == 1
    assert loaded['message_hub']['log_scalars'].keys() == scalars.keys()
    for key, buffer in scalars.items():
        np.testing.assert_array_equal(loaded['message_hub']['log_scalars'][key].data, buffer.data)
    momentum = first.optim_wrapper.state_dict()['state'][0]['momentum_buffer']
    assert torch.equal(loaded['optimizer']['state'][0]['momentum_buffer'], momentum)

    again = toy_runner(tmp_path, 'resumed_run', max_epochs=2, resume=True,
                       load_from=str(tmp_path / 'epoch_1.pth'))
    again.train()
    assert again.train_loop.epoch == 2 and again.train_loop.iter == 4
    resumed = again.message_hub.log_scalars['train/loss']
    assert type(resumed) is HistoryBuffer
    np.testing.assert_array_equal(resumed.data[0][:2], scalars['train/loss'].data[0])
    assert len(resumed.data[0]) == 4  # 2 iterations loaded, 2 trained after the resume
    assert dict(HistoryBuffer._statistics_methods) == registry


@pytest.mark.parametrize('zipped', [True, False])
def test_an_mmdet_2x_model_zoo_checkpoint_loads(tmp_path, zipped):
    """mmcv 1.x's save_checkpoint: ``meta`` with CLASSES, versions and hook messages (a numpy
    best score), published without the optimizer; old ones in torch's legacy format."""
    model = Toy()
    path = tmp_path / 'faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth'
    meta = dict(mmdet_version='2.25.0', CLASSES=('person', 'bicycle', 'car'), epoch=12,
                iter=87960, config='model = dict(type="FasterRCNN")', env_info='sys.platform',
                seed=0, time='Thu Jan 30 12:00:00 2020', mmcv_version='1.7.0',
                hook_msgs=dict(last_ckpt='work_dirs/epoch_12.pth', best_score=np.float64(0.374)))
    torch.save({'meta': meta, 'state_dict': OrderedDict(model.state_dict())}, path,
               _use_new_zipfile_serialization=zipped)
    into = Toy()
    loaded = load_checkpoint(into, str(path), map_location='cpu', strict=True)
    assert loaded['meta']['CLASSES'] == ('person', 'bicycle', 'car')
    assert loaded['meta']['hook_msgs']['best_score'] == np.float64(0.374)
    for name, value in into.state_dict().items():
        assert torch.equal(value, model.state_dict()[name])


def test_torchvision_vgg16_loads_from_the_hub_cache(tmp_path, monkeypatch):
    """``init_cfg=dict(type='Pretrained', checkpoint='torchvision://vgg16')`` (our VGG16
    configs): mmengine finds the file where torch.hub caches it, without a download."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    url = get_torchvision_models()['vgg16']
    torch.manual_seed(0)
    weights = torchvision.models.vgg16(weights=None).state_dict()
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True)
    torch.save(weights, tmp_path / 'hub' / 'checkpoints' / url.rsplit('/', 1)[1])
    model = ScratchVGG16(init_cfg=dict(type='Pretrained', checkpoint='torchvision://vgg16'))
    model.init_weights()
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights[name]), name


def test_the_allowlist_is_scoped_to_mmengine_loading(tmp_path):
    assert all(getattr(loader, 'guarded_by_frcnn_plugin', False)
               for loader in CheckpointLoader._schemes.values())
    assert CheckpointLoader._get_checkpoint_loader('x.pth').__name__ == 'load_from_local'
    path = tmp_path / 'epoch_2.pth'
    runner_like_checkpoint(path)

    def nothing_process_wide():
        names = {e[1] if isinstance(e, tuple) else e.__qualname__
                 for e in torch.serialization.get_safe_globals()}
        return ('builtins.getattr' not in names and 'numpy.dtype' not in names
                and 'TORCH_FORCE_WEIGHTS_ONLY_LOAD' not in os.environ)

    assert nothing_process_wide()
    _load_checkpoint(str(path))
    assert nothing_process_wide()
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        torch.load(path)


def test_concurrent_loads_do_not_disturb_each_other(tmp_path):
    path = tmp_path / 'epoch_2.pth'
    runner_like_checkpoint(path)
    results = []

    def load_some():
        for _ in range(5):
            ckpt = _load_checkpoint(str(path))
            results.append(ckpt['message_hub']['log_scalars']['train/loss'].mean())

    threads = [threading.Thread(target=load_some) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [0.5] * 15


def test_history_buffer_getattr_only_reaches_statistics_methods():
    with loading_mmengine_checkpoints():  # outside, in no thread
        assert history_buffer_getattr(UnpickledHistoryBuffer, 'mean') is HistoryBuffer.mean
        for obj, name in [(UnpickledHistoryBuffer, 'update'),
                          (UnpickledHistoryBuffer, '__init__'), (HistoryBuffer, 'mean'),
                          (os, 'system'), (HistoryBuffer(), 'mean'),
                          (UnpickledHistoryBuffer, np.str_('mean'))]:
            with pytest.raises(pickle.UnpicklingError, match='refuses getattr'):
                history_buffer_getattr(obj, name)
    with pytest.raises(pickle.UnpicklingError, match='outside frcnn_plugin'):
        history_buffer_getattr(UnpickledHistoryBuffer, 'mean')
