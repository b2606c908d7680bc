"""tools/infer.py on a tiny checkpoint the test makes: pictures, JSON, score threshold,
errors for wrong paths."""
import json
import subprocess

import mmcv
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import save_checkpoint

import frcnn_plugin  # noqa: F401  registers our components
from frcnn_plugin.datasets import KittiTinyDataset

CONFIG = """
_base_ = '{repo}/configs/_base_/models/faster-rcnn_vgg16.py'
model = dict(
    backbone=dict(init_cfg=None),
    roi_head=dict(bbox_head=dict(fc_out_channels=64, num_classes=3)))
# KITTI is 1224 x 370: 480 x 145, tall enough for the 128-pixel anchors.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(480, 480), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
test_dataloader = dict(dataset=dict(
    type='KittiTinyDataset', data_root='{root}/', ann_file='val.txt',
    data_prefix=dict(img='training/image_2'), pipeline=test_pipeline))
"""
SCORE_THR = 0.5
IMAGES = ('000050.jpeg', '000068.jpeg')


def run(python, repo, *args):
    return subprocess.run([python, 'tools/infer.py', *map(str, args)], cwd=repo,
                          capture_output=True, text=True)


@pytest.fixture(scope='module')
def tiny(repo, kitti_tiny_root, tmp_path_factory):
    """(config, checkpoint) of a random 3-class VGG16 detector whose scores spread over
    (0, 1), saved as the runner saves, with the class names in meta."""
    tmp = tmp_path_factory.mktemp('infer')
    config = tmp / 'tiny.py'
    config.write_text(CONFIG.format(repo=repo, root=kitti_tiny_root))
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    with torch.no_grad():  # confident, varied class scores instead of ~1/4 everywhere
        model.roi_head.bbox_head.fc_cls.weight.normal_(0, 1.0)
    checkpoint = tmp / 'tiny.pth'
    save_checkpoint({'state_dict': model.state_dict(),
                     'meta': {'dataset_meta': dict(KittiTinyDataset.METAINFO)}}, str(checkpoint))
    return config, checkpoint


def test_infer_draws_and_writes_json(tiny, repo, kitti_tiny_root, python, tmp_path):
    config, checkpoint = tiny
    images = [kitti_tiny_root / 'training/image_2' / name for name in IMAGES]
    out = tmp_path / 'out'
    proc = run(python, repo, config, checkpoint, *images, '--out-dir', out,
               '--score-thr', SCORE_THR, '--json', '--device', 'cpu')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    classes = KittiTinyDataset.METAINFO['classes']
    total = 0
    for image in images:
        height, width = mmcv.imread(image).shape[:2]
        drawn = mmcv.imread(out / image.name)
        assert drawn.shape == (height, width, 3)
        assert not (drawn == mmcv.imread(image)).all()  # something was drawn
        with open(out / (image.stem + '.json')) as f:
            record = json.load(f)
        assert record.keys() == {'image', 'width', 'height', 'score_thr', 'bboxes', 'scores',
                                 'labels', 'class_names'}
        assert (record['width'], record['height']) == (width, height)
        n = len(record['scores'])
        assert len(record['bboxes']) == len(record['labels']) == len(record['class_names']) == n
        boxes = torch.tensor(record['bboxes']).reshape(-1, 4)
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
        assert (boxes[:, 2:] >= boxes[:, :2]).all()
        assert all(s > SCORE_THR for s in record['scores'])
        assert all(0 <= label < 3 for label in record['labels'])
        assert record['class_names'] == [classes[label] for label in record['labels']]
        assert f'{n} detections above {SCORE_THR}' in proc.stdout
        total += n
    assert total > 0


def test_infer_threshold_filters_what_is_written(tiny, repo, kitti_tiny_root, python, tmp_path):
    """A lower threshold keeps more detections, and exactly those the higher one drops."""
    config, checkpoint = tiny
    image = kitti_tiny_root / 'training/image_2' / IMAGES[0]
    scores = {}
    for thr in (0.0, SCORE_THR):
        proc = run(python, repo, config, checkpoint, image, '--out-dir', tmp_path / str(thr),
                   '--score-thr', thr, '--json')
        assert proc.returncode == 0, proc.stderr[-5000:]
        scores[thr] = json.loads((tmp_path / str(thr) / (image.stem + '.json')).read_text())[
            'scores']
    assert scores[SCORE_THR] == [s for s in scores[0.0] if s > SCORE_THR]
    assert len(scores[0.0]) > len(scores[SCORE_THR])


@pytest.mark.parametrize('missing', ['image', 'checkpoint', 'config'])
def test_infer_names_a_missing_file(missing, tiny, repo, kitti_tiny_root, python, tmp_path):
    config, checkpoint = tiny
    paths = dict(config=config, checkpoint=checkpoint,
                 image=kitti_tiny_root / 'training/image_2' / IMAGES[0])
    paths[missing] = tmp_path / 'nope.jpeg'
    proc = run(python, repo, paths['config'], paths['checkpoint'], paths['image'],
               '--out-dir', tmp_path / 'out')
    assert proc.returncode == 2
    assert f'error: {missing} not found: {tmp_path}/nope.jpeg' in proc.stderr
    assert not (tmp_path / 'out').exists()
