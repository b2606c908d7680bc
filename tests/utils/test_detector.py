"""frcnn_plugin.utils.detector: the one way tools/infer.py, explain.py and diagnose.py
build and load a config's detector: eval mode, the checkpoint's weights and class names
(else the config's), a missing checkpoint named in one line."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import save_checkpoint

import frcnn_plugin  # noqa: F401  registers our components
from frcnn_plugin.datasets import ScratchVOCDataset
from frcnn_plugin.utils.detector import (
    checkpoint_dataset_meta,
    config_dataset_meta,
    load_detector,
)

CONFIG = 'configs/frcnn_shapes.py'
SHAPES = ('circle', 'square', 'triangle')
CLASSES = ('cat', 'dog', 'bird')  # what the checkpoint says: not the config's


def small_config(repo):
    cfg = Config.fromfile(repo / CONFIG)
    cfg.model.roi_head.bbox_head.fc_out_channels = 32
    return cfg


@pytest.fixture(scope='module')
def checkpoint(repo, tmp_path_factory):
    """A checkpoint as the runner saves it: random weights, classes in meta."""
    torch.manual_seed(5)
    model = MODELS.build(small_config(repo).model)
    model.init_weights()
    path = tmp_path_factory.mktemp('detector') / 'model.pth'
    save_checkpoint({'state_dict': model.state_dict(),
                     'meta': {'dataset_meta': {'CLASSES': CLASSES}}}, str(path))
    return path, model.state_dict()


def test_checkpoint_weights_and_class_names(repo, checkpoint):
    path, weights = checkpoint
    cfg = small_config(repo)
    torch.manual_seed(0)  # another init than the checkpoint's: the weights must be loaded
    model = load_detector(cfg, str(path))
    assert not model.training and all(not m.training for m in model.modules())
    loaded = model.state_dict()
    assert loaded.keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(loaded[key], value), key
    # Class names from the checkpoint (keys lowercased, as mmdet 3.x reads them), the
    # palette from the config's dataset (ScratchVOCDataset's).
    assert model.dataset_meta['classes'] == CLASSES
    assert model.dataset_meta['palette'] == ScratchVOCDataset.METAINFO['palette']
    assert model.cfg is cfg
    assert next(model.parameters()).device.type == 'cpu'


def test_untrained_model_gets_the_configs_classes_and_init(repo):
    torch.manual_seed(0)
    first = load_detector(small_config(repo))
    torch.manual_seed(0)
    again = load_detector(small_config(repo))
    assert not first.training and first.dataset_meta['classes'] == SHAPES
    # init_weights ran: the RPN conv has the config's normal(0, 0.01) init, seeded.
    conv = first.rpn_head.rpn_conv.weight
    assert 0.005 < float(conv.std()) < 0.02
    assert torch.equal(conv, again.rpn_head.rpn_conv.weight)


def test_missing_checkpoint_is_one_line(repo, tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError) as error:
        load_detector(small_config(repo), str(missing))
    assert str(error.value) == f'checkpoint not found: {missing}'


def test_class_names_from_checkpoint_meta_or_config():
    assert checkpoint_dataset_meta({'dataset_meta': {'CLASSES': ('a',), 'palette': [1]}}) == \
        {'classes': ('a',), 'palette': [1]}
    assert checkpoint_dataset_meta({'CLASSES': ['a', 'b']}) == {'classes': ('a', 'b')}  # 2.x
    assert checkpoint_dataset_meta(None) == {} == checkpoint_dataset_meta({'epoch': 3})
    # The config's test dataset, through wrappers; its metainfo over the class's METAINFO.
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=2,
        dataset=dict(type='KittiTinyDataset', metainfo=dict(classes=('Car',)))))))
    meta = config_dataset_meta(cfg)
    assert meta['classes'] == ('Car',) and len(meta['palette']) == 3
    assert config_dataset_meta(Config(dict(test_dataloader=None))) == {}


def test_no_class_names_anywhere_is_an_error(repo):
    cfg = small_config(repo)
    cfg.test_dataloader = cfg.val_dataloader = cfg.train_dataloader = None
    with pytest.raises(ValueError, match='no class names'):
        load_detector(cfg)
