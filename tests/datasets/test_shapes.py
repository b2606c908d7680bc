"""The synthetic Shapes set: deterministic, the distribution the docstring promises, and
read by mmdet's own VOCDataset as the custom-VOC recipe reads VOC data."""
import filecmp
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from mmdet.registry import DATASETS
from PIL import Image

from frcnn_plugin.datasets.shapes import (
    CLASSES,
    IMAGE_SIZE,
    MAX_SHAPES,
    random_image,
    voc_xml,
    write_shapes,
)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes') / 'seed0'
    write_shapes(root, seed=0, num_train=40, num_val=10)
    return root


def files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file())


def test_layout_and_ids(shapes):
    ids = (shapes / 'ImageSets/Main/train.txt').read_text().split()
    assert ids == [f'train_{i:06d}' for i in range(40)]
    assert (shapes / 'ImageSets/Main/val.txt').read_text().split()[-1] == 'val_000009'
    assert len(files(shapes)) == 2 + 2 * 50
    with Image.open(shapes / 'JPEGImages/val_000003.jpg') as img:
        assert img.format == 'JPEG' and img.mode == 'RGB'
        assert img.size == (IMAGE_SIZE, IMAGE_SIZE)


def test_same_seed_same_bytes_prefix_stable_other_seed_fresh(shapes, tmp_path):
    again = tmp_path / 'again'
    write_shapes(again, seed=0, num_train=5, num_val=3)
    # The first images of each split do not depend on how many are asked for.
    for name in files(again):
        if not name.startswith('ImageSets'):
            assert filecmp.cmp(again / name, shapes / name, shallow=False), name
    other = tmp_path / 'other'
    write_shapes(other, seed=1, num_train=5, num_val=3)
    for name in files(other):
        if name.startswith('JPEGImages'):
            assert not filecmp.cmp(other / name, shapes / name, shallow=False), name


def test_processes_write_the_same_files_and_counts(tmp_path):
    counts = write_shapes(tmp_path / 'one', seed=0, num_train=7, num_val=5)
    assert write_shapes(tmp_path / 'two', seed=0, num_train=7, num_val=5,
                        processes=2) == counts
    assert files(tmp_path / 'one') == files(tmp_path / 'two')
    for name in files(tmp_path / 'one'):
        assert filecmp.cmp(tmp_path / 'one' / name, tmp_path / 'two' / name,
                           shallow=False), name
    assert counts['train']['images'] == 7 and counts['val']['images'] == 5
    assert counts['train']['objects'] == sum(
        len(parse(xml)) for xml in (tmp_path / 'one/Annotations').glob('train_*.xml'))


def parse(xml_file):
    objects = []
    for obj in ET.parse(xml_file).findall('object'):
        box = [int(obj.find(f'bndbox/{k}').text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
        objects.append(dict(name=obj.find('name').text, box=box,
                            **{k: int(obj.find(k).text)
                               for k in ('truncated', 'occluded', 'difficult')}))
    return objects


def test_distribution(shapes):
    objects, per_image = [], []
    for xml_file in sorted((shapes / 'Annotations').glob('*.xml')):
        found = parse(xml_file)
        objects += found
        per_image.append(len(found))
    assert 0 in per_image and max(per_image) <= MAX_SHAPES
    assert {o['name'] for o in objects} == set(CLASSES)
    boxes = np.array([o['box'] for o in objects])
    assert boxes[:, :2].min() >= 1 and boxes[:, 2:].max() <= IMAGE_SIZE  # VOC: 1-based
    assert (boxes[:, 2:] >= boxes[:, :2]).all()
    sides = np.sqrt((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1))
    assert sides.min() < 24 and sides.max() > IMAGE_SIZE / 2
    for flag in ('truncated', 'occluded', 'difficult'):
        assert 0 < sum(o[flag] for o in objects) < len(objects) / 2, flag


def test_boxes_inside_the_image_and_voc_coordinates():
    for seed in range(30):
        image, objects = random_image(np.random.default_rng([seed, 7]))
        assert image.dtype == np.uint8 and image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        for obj in objects:
            x1, y1, x2, y2 = obj['box']
            assert 0 <= x1 < x2 <= IMAGE_SIZE and 0 <= y1 < y2 <= IMAGE_SIZE
            assert min(x2 - x1, y2 - y1) >= 8
    text = voc_xml('x', IMAGE_SIZE, [dict(name='circle', box=(0, 5, 10, 20), truncated=1,
                                          occluded=0, difficult=1)])
    assert '<xmin>1</xmin><ymin>6</ymin><xmax>10</xmax><ymax>20</ymax>' in text


def test_read_by_mmdet_voc_dataset(shapes):
    dataset = DATASETS.build(dict(
        type='VOCDataset', data_root=str(shapes), metainfo=dict(classes=CLASSES),
        ann_file='ImageSets/Main/train.txt', data_prefix=dict(sub_data_root=''),
        filter_cfg=dict(filter_empty_gt=False), pipeline=[], test_mode=False))
    assert len(dataset) == 40
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        xml = parse(shapes / 'Annotations' / f"{info['img_id']}.xml")
        assert [inst['bbox'] for inst in info['instances']] == [
            [v - 1 for v in o['box']] for o in xml]  # mmdet: 0-based
        assert [inst['ignore_flag'] for inst in info['instances']] == [
            o['difficult'] for o in xml]
        assert [CLASSES[inst['bbox_label']] for inst in info['instances']] == [
            o['name'] for o in xml]
