"""Every config in configs/ builds: its model and its train / val datasets on a tiny
sample (one item through each pipeline); frcnn_kitti_tiny.py trains 2 iterations."""
import json
import math
import re
import subprocess
from pathlib import Path

import cv2
import mmdet
import numpy as np
import pytest
from coco_files import VAL
from coco_files import write_coco as write_custom_coco
from kitti_small import write_small_config
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config

import frcnn_plugin  # noqa: F401  registers the plugin's modules
from frcnn_plugin.datasets.shapes import write_shapes
from frcnn_plugin.utils.swap import MMDET_TYPES, retyped

REPO = Path(__file__).resolve().parents[2]
# Complete configs: everything but the model-only bases under _base_/, which are built
# as models below.
CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in p.parts)
MODEL_BASES = sorted(p.relative_to(REPO).as_posix()
                     for p in (REPO / 'configs' / '_base_' / 'models').glob('*.py'))

VOC_OBJECT = """<object><name>{name}</name><difficult>{difficult}</difficult>
<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"""


def write_voc(root: Path, ids=('000001', '000002')):
    """A VOC-format folder: 500 x 375 JPEGs, XML with a cat, a dog and a difficult dog."""
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for img_id in ids:
        cv2.imwrite(str(root / 'JPEGImages' / f'{img_id}.jpg'),
                    rng.integers(0, 255, (375, 500, 3), dtype=np.uint8))
        objects = [dict(name='cat', difficult=0, x1=50, y1=60, x2=200, y2=300),
                   dict(name='dog', difficult=0, x1=220, y1=40, x2=480, y2=350),
                   dict(name='dog', difficult=1, x1=10, y1=10, x2=120, y2=90)]
        (root / 'Annotations' / f'{img_id}.xml').write_text(
            f'<annotation><filename>{img_id}.jpg</filename><size><width>500</width>'
            '<height>375</height><depth>3</depth></size>'
            + ''.join(VOC_OBJECT.format(**o) for o in objects) + '</annotation>')
    for split in ('trainval', 'test'):
        (root / 'ImageSets/Main' / f'{split}.txt').write_text('\n'.join(ids) + '\n')


def write_coco(root: Path):
    """data/coco as mmdet's coco_detection.py expects: 2 images per split, 2 boxes each."""
    (root / 'annotations').mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ('train2017', 'val2017'):
        (root / split).mkdir()
        images, anns = [], []
        for i in (1, 2):
            cv2.imwrite(str(root / split / f'{i:012d}.jpg'),
                        rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
            images.append(dict(id=i, file_name=f'{i:012d}.jpg', width=640, height=480))
            for j, (cat, box) in enumerate([(1, [10, 20, 200, 150]), (3, [300, 100, 250, 300])]):
                anns.append(dict(id=10 * i + j, image_id=i, category_id=cat, bbox=box,
                                 area=box[2] * box[3], iscrowd=0))
        categories = [dict(id=k, name=name) for k, name in enumerate(
            DATASETS.get('CocoDataset').METAINFO['classes'], start=1)]
        (root / 'annotations' / f'instances_{split}.json').write_text(
            json.dumps(dict(images=images, annotations=anns, categories=categories)))


@pytest.fixture(scope='module')
def data(tmp_path_factory, kitti_tiny_root):
    """Tiny stand-ins for every data root the configs name, under <tmp>/data/."""
    tmp = tmp_path_factory.mktemp('configs')
    write_voc(tmp / 'data/VOCdevkit/VOC2007')
    write_voc(tmp / 'data/VOCdevkit/VOC2012', ids=('2012_000001', '2012_000002'))
    write_voc(tmp / 'data/my_voc')
    write_coco(tmp / 'data/coco')
    write_custom_coco(tmp / 'data/my_coco', 'train')
    write_custom_coco(tmp / 'data/my_coco', 'val', VAL)
    # Seed 1: the first image of each split has a shape that is not difficult.
    write_shapes(tmp / 'data/shapes', seed=1, num_train=2, num_val=2)
    (tmp / 'kitti_ids.txt').write_text('000000\n000001\n')
    return tmp, kitti_tiny_root


def point_at_tiny_data(dataset: dict, data):
    """Redirect a dataset config (and the datasets a wrapper holds) to the tiny sample."""
    tmp, kitti_root = data
    if 'datasets' in dataset or 'dataset' in dataset:
        for inner in dataset.get('datasets') or [dataset['dataset']]:
            point_at_tiny_data(inner, data)
        return
    if dataset['type'] == 'KittiTinyDataset':
        dataset.update(data_root=str(kitti_root), ann_file=str(tmp / 'kitti_ids.txt'))
    else:  # the layout under data/ that the config documents
        assert dataset['data_root'].startswith('data/'), dataset['data_root']
        dataset['data_root'] = str(tmp / dataset['data_root'])


def build_model(model_cfg):
    """The config's model without downloads (no pretrained backbone)."""
    model_cfg.backbone.init_cfg = None
    model = MODELS.build(model_cfg)
    head = model.roi_head.bbox_head
    assert head.fc_cls.out_features == head.num_classes + 1
    return model


def resized_shape(pipeline, height, width):
    """(h, w) after the pipeline's keep-ratio Resize (mmcv.rescale_size's rule)."""
    scale = next(t['scale'] for t in pipeline if t['type'] == 'Resize')
    ratio = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * ratio + 0.5), int(width * ratio + 0.5)


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_model_and_datasets(config, data):
    cfg = Config.fromfile(REPO / config)
    assert cfg.custom_imports.imports == ['frcnn_plugin']
    model = build_model(cfg.model)
    for loader in ('train_dataloader', 'val_dataloader'):
        dataset_cfg = cfg[loader].dataset
        point_at_tiny_data(dataset_cfg, data)
        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset) == (4 if 'voc0712' in config and loader == 'train_dataloader'
                                else 2)
        classes = dataset.metainfo['classes']
        assert len(classes) == model.roi_head.bbox_head.num_classes, classes
        item = dataset[0]
        sample = item['data_samples']
        pipeline = dataset_cfg.get('pipeline') or dataset_cfg.datasets[0].pipeline
        assert item['inputs'].shape[1:] == sample.img_shape == resized_shape(
            pipeline, *sample.ori_shape)
        labels = sample.gt_instances.labels
        assert len(labels) > 0 and 0 <= labels.min() and labels.max() < len(classes)


def test_example_configs_swap_exactly_one_component():
    """The swap examples differ from their base in the swapped component only."""
    base = Config.fromfile(REPO / 'configs/frcnn_kitti_tiny.py').model
    for name, path in [('mmdet-rpn-head', 'rpn_head.type'),
                       ('mmdet-roi-extractor', 'roi_head.bbox_roi_extractor'),
                       ('mmdet-bbox-head', 'roi_head.bbox_head.type'),
                       ('roi-align', 'roi_head.bbox_roi_extractor.roi_layer')]:
        model = Config.fromfile(REPO / f'configs/examples/frcnn_kitti_tiny_{name}.py').model
        *parents, key = path.split('.')
        swapped, original = model, base
        for p in parents:
            swapped, original = swapped[p], original[p]
        assert swapped[key] != original[key]
        swapped[key] = original[key]
        assert model == base, name


def test_shapes_twin_is_the_demo_with_mmdet_components():
    """The training-level parity twin swaps every component back, and nothing else."""
    demo = Config.fromfile(REPO / 'configs/frcnn_shapes.py')
    twin = Config.fromfile(REPO / 'configs/examples/frcnn_shapes_mmdet-components.py')
    assert twin.model == retyped(demo.model, MMDET_TYPES)
    assert twin.model != demo.model
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper', 'param_scheduler',
                'train_cfg', 'randomness'):
        assert twin[key] == demo[key], key


def unscoped(cfg):
    """A config value without the '_scope_' keys that `mmdet::` bases add."""
    if isinstance(cfg, dict):
        return {k: unscoped(v) for k, v in cfg.items() if k != '_scope_'}
    if isinstance(cfg, (list, tuple)):
        return [unscoped(v) for v in cfg]
    return cfg


def test_r50_fpn_examples_are_the_scratch_base_model():
    scratch = Config.fromfile(REPO / 'configs/_base_/models/faster-rcnn_r50_fpn_scratch.py')
    coco = Config.fromfile(REPO / 'configs/examples/faster-rcnn_r50_fpn_1x_coco_scratch.py')
    stock = Config.fromfile(Path(mmdet.__file__).parent /
                            '.mim/configs/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    assert coco.model == scratch.model
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper', 'param_scheduler',
                'train_cfg', 'val_evaluator'):
        assert unscoped(coco[key]) == unscoped(stock[key]), key
    kitti = Config.fromfile(REPO / 'configs/examples/faster-rcnn_r50_fpn_scratch_kitti_tiny.py')
    scratch.model.roi_head.bbox_head.num_classes = 3
    assert kitti.model == scratch.model
    # Everything but the model is the baseline's: data, schedule, load_from.
    baseline = Config.fromfile(REPO / 'configs/baselines/faster-rcnn_r50_fpn_kitti_tiny.py')
    others = [{k: v for k, v in cfg.to_dict().items() if k not in ('model', 'assigner')}
              for cfg in (kitti, baseline)]
    assert others[0] == others[1]


@pytest.mark.parametrize('config', MODEL_BASES)
def test_model_base_builds(config):
    build_model(Config.fromfile(REPO / config).model)


def test_cfg_options_reach_the_kitti_tiny_dataset():
    cfg = Config.fromfile(REPO / 'configs/frcnn_kitti_tiny.py')
    cfg.merge_from_dict({'train_dataloader.dataset.ann_file': 'mine.txt',
                         'val_dataloader.dataset.data_root': 'elsewhere/'})
    assert cfg.train_dataloader.dataset.type == 'KittiTinyDataset'
    assert cfg.train_dataloader.dataset.ann_file == 'mine.txt'
    assert cfg.val_dataloader.dataset.data_root == 'elsewhere/'
    assert cfg.model.backbone.init_cfg.checkpoint == 'torchvision://vgg16'


# frcnn_kitti_tiny.py at 400 x 160, training only: no download (random initialisation).
OVERRIDES = """
model = dict(backbone=dict(init_cfg=None))
train_cfg = dict(max_epochs=1, val_interval=1)
"""


@pytest.mark.slow
def test_kitti_tiny_config_trains(tmp_path, kitti_tiny_root, python):
    """2 iterations (4 images, batch 2) at 400 x 121: finite losses, a checkpoint."""
    config = write_small_config(
        tmp_path / 'small.py', REPO / 'configs/frcnn_kitti_tiny.py', kitti_tiny_root,
        ['000000', '000001', '000002', '000003'], scale=(400, 160), flip=False,
        overrides=OVERRIDES)
    proc = subprocess.run([python, 'tools/train.py', str(config), '--work-dir',
                           str(tmp_path / 'work')], cwd=REPO, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    lines = re.findall(r'Epoch\(train\) \[1\]\[(\d)/2\].*', log)
    assert lines == ['1', '2'], log[-3000:]
    losses = re.findall(r' (loss\w*): (\S+)', '\n'.join(
        re.findall(r'Epoch\(train\) \[1\]\[\d/2\].*', log)))
    names = {name for name, _ in losses}
    assert {'loss', 'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'} <= names
    assert all(math.isfinite(float(value)) for _, value in losses), losses
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()


def add_voc_image(root: Path, img_id: str, objects=()):
    """One more image in a write_voc folder (and in its trainval.txt)."""
    cv2.imwrite(str(root / 'JPEGImages' / f'{img_id}.jpg'), np.zeros((375, 500, 3), np.uint8))
    (root / 'Annotations' / f'{img_id}.xml').write_text(
        f'<annotation><filename>{img_id}.jpg</filename><size><width>500</width>'
        '<height>375</height><depth>3</depth></size>'
        + ''.join(VOC_OBJECT.format(**o) for o in objects) + '</annotation>')
    with open(root / 'ImageSets/Main/trainval.txt', 'a') as ids:
        ids.write(img_id + '\n')


def voc_train_set(config, data_root, **options):
    cfg = Config.fromfile(REPO / config)
    cfg.merge_from_dict(options)
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = str(data_root)
    return DATASETS.build(dataset_cfg)


def test_voc_trains_on_small_boxes_as_the_paper(tmp_path):
    """frcnn_voc.py: a 20 x 20 px box is ground truth (py-faster-rcnn keeps every
    non-difficult box); mmdet's voc0712.py filter (bbox_min_size=32) would ignore it."""
    root = tmp_path / 'VOCdevkit'
    write_voc(root / 'VOC2007', ids=('000001',))
    add_voc_image(root / 'VOC2007', '000002',
                  [dict(name='cat', difficult=0, x1=101, y1=101, x2=121, y2=121)])
    voc0712 = Config.fromfile(REPO / 'configs/frcnn_voc0712.py').train_dataloader.dataset
    assert all('bbox_min_size' not in d.filter_cfg for d in voc0712.datasets)
    small, = voc_train_set('configs/frcnn_voc.py', root).get_data_info(1)['instances']
    assert small['bbox'] == [100, 100, 120, 120] and small['ignore_flag'] == 0
    small, = voc_train_set('configs/frcnn_voc.py', root, **{
        'train_dataloader.dataset.filter_cfg.bbox_min_size': 32}).get_data_info(1)['instances']
    assert small['ignore_flag'] == 1


def test_custom_voc_keeps_images_without_objects_on_request(tmp_path):
    """frcnn_custom_voc.py drops images without objects unless
    train_dataloader.dataset.filter_cfg.filter_empty_gt=False; kept, such an image
    reaches the model with no gt box (tests/models/test_faster_rcnn.py: it then gives
    only negatives)."""
    root = tmp_path / 'my_voc'
    write_voc(root, ids=('000001',))
    add_voc_image(root, 'background')
    assert len(voc_train_set('configs/examples/frcnn_custom_voc.py', root)) == 1
    kept = voc_train_set('configs/examples/frcnn_custom_voc.py', root, **{
        'train_dataloader.dataset.filter_cfg.filter_empty_gt': False})
    assert len(kept) == 2
    empty = kept[1]['data_samples']
    assert empty.img_id == 'background' and len(empty.gt_instances) == 0


def test_kitti_ignore_regions_example_is_two_switches():
    """frcnn_kitti_tiny_ignore-regions.py is frcnn_kitti_tiny.py with the README's
    --cfg-options: both assigners' ignore_iof_thr=0.5 and IgnoreRegionVOCMetric."""
    example = Config.fromfile(REPO / 'configs/examples/frcnn_kitti_tiny_ignore-regions.py')
    base = Config.fromfile(REPO / 'configs/frcnn_kitti_tiny.py')
    assert base.model.train_cfg.rpn.assigner.ignore_iof_thr == -1  # the tutorial's default
    base.merge_from_dict({'model.train_cfg.rpn.assigner.ignore_iof_thr': 0.5,
                          'model.train_cfg.rcnn.assigner.ignore_iof_thr': 0.5,
                          'val_evaluator.type': 'IgnoreRegionVOCMetric',
                          'test_evaluator.type': 'IgnoreRegionVOCMetric'})
    example, base = example.to_dict(), base.to_dict()
    for key in ('val_evaluator', 'test_evaluator'):
        assert example.pop(key) == dict(base.pop(key), ignore_iof_thr=0.5)  # its default
    assert example == base
