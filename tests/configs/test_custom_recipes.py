"""The custom-data recipes (configs/examples/frcnn_custom_{voc,coco}.py) copied and
edited as the README says, on data as tools write it: a published-style VOC set
(4 own classes, 800x600 frames, id lists with CRLF and blank lines) trains and is
evaluated; a COCO JSON set builds and goes through the model."""
import math
import re
import subprocess

import pytest
import torch
from coco_files import VAL, write_coco
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import save_checkpoint
from voc_files import CLASSES, copy_recipe, write_voc

import frcnn_plugin  # noqa: F401  registers our datasets

# Speed only (CPU, 2 images a batch), appended to the recipe (editing its dicts, not
# replacing them): 64 instead of 4096 channels in fc6 / fc7, a smaller scale, no loader
# workers, one epoch.
SMALL = """
model.update(backbone=dict(init_cfg=None))
model['roi_head']['bbox_head']['fc_out_channels'] = 64
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(400, 300), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(400, 300), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
for loader, pipeline in [(train_dataloader, train_pipeline),
                         (val_dataloader, test_pipeline)]:
    loader.update(num_workers=0, persistent_workers=False)
    loader['dataset']['pipeline'] = pipeline
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1))
"""


@pytest.mark.slow
def test_custom_voc_recipe_trains_on_the_published_set(repo, tmp_path, python):
    """Fine-tuned from a (random) 20-class VOC checkpoint of the same model."""
    voc = Config.fromfile(repo / 'configs/frcnn_voc.py').model
    voc.backbone.init_cfg = None
    voc.roi_head.bbox_head.fc_out_channels = 64
    save_checkpoint({'state_dict': MODELS.build(voc).state_dict()}, str(tmp_path / 'voc.pth'))
    root = write_voc(tmp_path / 'site')
    config = copy_recipe(repo / 'configs/examples/frcnn_custom_voc.py', tmp_path / 'mine.py', {
        "classes = ('cat', 'dog')": f'classes = {CLASSES}',
        "data_root = 'data/my_voc/'": f"data_root = '{root}/'",
        "load_from = 'work_dirs/frcnn_voc/epoch_16.pth'": f"load_from = '{tmp_path}/voc.pth'"})
    config.write_text(config.read_text() + SMALL)
    proc = subprocess.run([python, 'tools/train.py', str(config), '--work-dir',
                           str(tmp_path / 'work')], cwd=repo, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    # FineTuneHook: the 4 class-specific tensors of 20 VOC classes do not fit 4 classes.
    assert ('Fine-tuning: 4 checkpoint tensor(s) do not fit this model' in log
            and 'roi_head.bbox_head.fc_cls.weight: checkpoint [21, 64] -> model [5, 64]'
            in log), log[-5000:]
    # 3 trainval images at batch 2: 2 iterations, finite losses; then the test image.
    lines = re.findall(r'Epoch\(train\) \[1\]\[\d/2\].*', log)
    assert len(lines) == 2, log[-3000:]
    losses = re.findall(r' (loss\w*): (\S+)', '\n'.join(lines))
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'} <= dict(losses).keys()
    assert all(math.isfinite(float(v)) for _, v in losses), losses
    assert re.search(r'Epoch\(val\) \[1\]\[1/1\]', log), log[-3000:]
    assert '| forklift |' in log and 'mAP' in log


def test_custom_coco_recipe_builds_and_goes_through_the_model(repo, tmp_path):
    root = tmp_path / 'my_coco'
    write_coco(root, 'train')
    write_coco(root, 'val', VAL)
    config = copy_recipe(repo / 'configs/examples/frcnn_custom_coco.py', tmp_path / 'mine.py',
                         {"data_root = 'data/my_coco/'": f"data_root = '{root}/'"})
    cfg = Config.fromfile(config)
    assert cfg.val_evaluator.ann_file == f'{root}/annotations/val.json'
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert (len(train), len(val)) == (2, 2)
    assert train.metainfo['classes'] == ('cat', 'dog')

    # Speed only: 64 channels in fc6 / fc7, the 640x480 images at 320x240.
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.fc_out_channels = 64
    model = MODELS.build(cfg.model)
    assert model.roi_head.bbox_head.num_classes == 2
    resize = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'Resize')
    resize.scale = (320, 240)
    train = DATASETS.build(cfg.train_dataloader.dataset)
    torch.manual_seed(0)
    batch = model.data_preprocessor(pseudo_collate([train[0], train[1]]), True)
    assert batch['inputs'].shape[2:] == (240, 320)
    assert batch['data_samples'][1].gt_instances.labels.tolist() == [1]
    assert batch['data_samples'][1].ignored_instances.labels.tolist() == [1]  # crowd
    with torch.no_grad():
        loss, log_vars = model.parse_losses(model.loss(batch['inputs'],
                                                       batch['data_samples']))
    assert torch.isfinite(loss) and loss > 0
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'} <= log_vars.keys()
