"""Fine-tuning with another class count: ``load_from`` a 20-class (ours, VGG16) or an
80-class (mmdet's stock R50-FPN) checkpoint into a 3-class KittiTiny detector.

Training runs with lr 0, so the checkpoint it writes after 2 iterations holds exactly
the weights ``load_from`` left in the model: everything from the source checkpoint
except ``fc_cls`` / ``fc_reg``, which keep the model's initialisation.
"""
import re
import subprocess
from pathlib import Path

import mmdet
import pytest
import torch
from kitti_small import write_small_config
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import save_checkpoint

import frcnn_plugin  # noqa: F401  registers our components
from frcnn_plugin.engine import checkpoint
from frcnn_plugin.engine.hooks.finetune_hook import describe_mismatches, shape_mismatches

pytestmark = pytest.mark.slow

MMDET_CONFIGS = Path(mmdet.__file__).parent / '.mim' / 'configs'

# KITTI is 1224 x 370: at scale (480, 480) 480 x 145, tall enough for the VGG16 RPN's
# 128-pixel anchors; no flip.
OVERRIDES = """
custom_imports = dict(imports=['frcnn_plugin'], allow_failed_imports=False)
custom_hooks = [dict(type='FineTuneHook')]
load_from = '{ckpt}'
train_cfg = dict(max_epochs=1)
# lr 0: the weights saved after training are the weights load_from gave the model.
optim_wrapper = dict(optimizer=dict(lr=0.0))
"""

FC_SHAPES = {  # name: (source checkpoint, 3-class model)
    'vgg16': {'fc_cls.weight': ((21, 64), (4, 64)), 'fc_cls.bias': ((21,), (4,)),
              'fc_reg.weight': ((80, 64), (12, 64)), 'fc_reg.bias': ((80,), (12,))},
    'r50_fpn': {'fc_cls.weight': ((81, 1024), (4, 1024)), 'fc_cls.bias': ((81,), (4,)),
                'fc_reg.weight': ((320, 1024), (12, 1024)), 'fc_reg.bias': ((320,), (12,))},
}


def model_configs(repo):
    """(source model config, 3-class target model config) for each case."""
    vgg = Config.fromfile(repo / 'configs/_base_/models/faster-rcnn_vgg16.py').model
    vgg.backbone.init_cfg = None
    vgg.roi_head.bbox_head.fc_out_channels = 64  # small and fast; same in source and target
    vgg_target = vgg.copy()
    vgg_target.roi_head = vgg.roi_head.copy()
    vgg_target.roi_head.bbox_head = dict(vgg.roi_head.bbox_head, num_classes=3)
    # Source: mmdet's own Faster R-CNN R50-FPN, every component stock, 80 COCO classes.
    mmdet_r50 = Config.fromfile(MMDET_CONFIGS / '_base_/models/faster-rcnn_r50_fpn.py').model
    mmdet_r50.backbone.init_cfg = None
    ours_r50 = Config.fromfile(
        repo / 'configs/_base_/models/faster-rcnn_r50_fpn_scratch.py').model
    ours_r50.backbone.init_cfg = None
    ours_r50.roi_head.bbox_head.num_classes = 3
    return {'vgg16': (vgg, vgg_target), 'r50_fpn': (mmdet_r50, ours_r50)}


def make_checkpoint(model_cfg, path):
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    # Unlike any fresh initialisation (the training run seeds its own with 0 as well),
    # small enough to keep the activations finite.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.rand_like(p), alpha=1e-3)
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return model.state_dict()


def test_shape_mismatches_names_exactly_the_class_layers(repo):
    source_cfg, target_cfg = model_configs(repo)['r50_fpn']
    source, target = MODELS.build(source_cfg), MODELS.build(target_cfg)
    state = {'module.' + k: v for k, v in source.state_dict().items()}  # DataParallel keys
    mismatches = shape_mismatches(target, state)
    expected = [('roi_head.bbox_head.' + k, ckpt, model)
                for k, (ckpt, model) in FC_SHAPES['r50_fpn'].items()]
    assert sorted(mismatches) == sorted(expected)
    assert shape_mismatches(target, target.state_dict()) == []
    text = describe_mismatches(mismatches)
    assert 'roi_head.bbox_head.fc_reg.weight: checkpoint [320, 1024] -> model [12, 1024]' in text


@pytest.mark.parametrize('case', ['vgg16', 'r50_fpn'])
def test_load_from_other_class_count_loads_the_rest_and_trains(
        case, repo, kitti_tiny_root, python, tmp_path):
    source_cfg, target_cfg = model_configs(repo)[case]
    source_state = make_checkpoint(source_cfg, tmp_path / 'source.pth')

    base = Config.fromfile(repo / 'configs/baselines/faster-rcnn_r50_fpn_kitti_tiny.py')
    base.model = target_cfg
    base.dump(str(tmp_path / 'base.py'))
    config = write_small_config(
        tmp_path / 'small.py', './base.py', kitti_tiny_root,
        ['000000', '000001', '000002', '000003'], scale=(480, 480), flip=False,
        overrides=OVERRIDES.format(ckpt=tmp_path / 'source.pth'))
    work_dir = tmp_path / 'work'
    proc = subprocess.run([python, 'tools/train.py', str(config), '--work-dir', str(work_dir)],
                          cwd=repo, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]

    # The log names each skipped tensor with both shapes (ours and mmengine's line).
    assert 'Fine-tuning: 4 checkpoint tensor(s) do not fit this model' in log
    for name, (ckpt, model) in FC_SHAPES[case].items():
        assert f'roi_head.bbox_head.{name}: checkpoint {list(ckpt)} -> model {list(model)}' in log
        assert re.search(rf'size mismatch for roi_head\.bbox_head\.{re.escape(name)}: copying a '
                         rf'param with shape torch\.Size\(\[{", ".join(map(str, ckpt))}\]\)', log)
    assert 'missing keys' not in log and 'unexpected key' not in log
    assert f'Load checkpoint from {tmp_path}/source.pth' in log
    assert re.search(r'Epoch\(train\) \[1\]\[2/2\].*loss: \d', log), log[-3000:]

    trained = checkpoint.load(work_dir / 'epoch_1.pth', map_location='cpu')['state_dict']
    assert trained.keys() == source_state.keys()
    fc = {'roi_head.bbox_head.' + k for k in FC_SHAPES[case]}
    for name, value in trained.items():
        if name in fc:
            assert tuple(value.shape) == FC_SHAPES[case][name.split('.', 2)[2]][1], name
        else:
            assert torch.equal(value, source_state[name]), name
    # The class layers are the model's own init (mmdet's Normal(0.01) / Normal(0.001),
    # bias 0), not anything from the checkpoint.
    head = 'roi_head.bbox_head.'
    assert torch.equal(trained[head + 'fc_cls.bias'], torch.zeros(4))
    assert torch.equal(trained[head + 'fc_reg.bias'], torch.zeros(12))
    assert 0.005 < trained[head + 'fc_cls.weight'].std() < 0.02
    assert 0.0005 < trained[head + 'fc_reg.weight'].std() < 0.002
