from collections import Counter

import numpy as np
import pytest
from mmdet.registry import DATASETS
from PIL import Image

import frcnn_plugin  # noqa: F401  registers KittiTinyDataset
from frcnn_plugin.datasets import KittiTinyDataset, parse_kitti_label

CLASSES = ('Car', 'Pedestrian', 'Cyclist')
# Object counts over all 75 label files of KittiTiny (shared/data/README.md).
ALL_TYPES = {'Car': 209, 'Pedestrian': 36, 'Cyclist': 14, 'DontCare': 188, 'Van': 25,
             'Truck': 10, 'Tram': 9, 'Person_sitting': 5, 'Misc': 3}
LABEL = 'Car 0.00 0 1.66 530.03 187.79 573.10 226.09 1.52 1.54 3.68 -2.53 2.20 31.50 1.58'


def build(root, ann_file, **kwargs):
    cfg = dict(type='KittiTinyDataset', data_root=str(root), ann_file=ann_file,
               data_prefix=dict(img='training/image_2'), pipeline=[])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def write_kitti(root, labels, images=None, ann_lines=None, size=(40, 30)):
    """A KITTI-layout folder: {id: label text}; images for `images` ids (default all)."""
    (root / 'training' / 'image_2').mkdir(parents=True)
    (root / 'training' / 'label_2').mkdir(parents=True)
    for img_id, text in labels.items():
        if text is not None:
            (root / 'training' / 'label_2' / f'{img_id}.txt').write_text(text)
    for img_id in (labels if images is None else images):
        Image.new('RGB', size).save(root / 'training' / 'image_2' / f'{img_id}.jpeg')
    lines = list(labels) if ann_lines is None else ann_lines
    (root / 'train.txt').write_text('\n'.join(lines) + '\n')
    return root


def test_splits_and_counts_match_the_data(kitti_tiny_root):
    train = build(kitti_tiny_root, 'train.txt')
    val = build(kitti_tiny_root, 'val.txt', test_mode=True)
    assert isinstance(train, KittiTinyDataset)
    assert (len(train), len(val)) == (50, 25)
    assert train.metainfo['classes'] == CLASSES
    # Nothing dropped: every object of every label file is an instance.
    assert dict(train.type_counts + val.type_counts) == ALL_TYPES
    val_gt = Counter(CLASSES[i['bbox_label']] for d in map(val.get_data_info, range(25))
                     for i in d['instances'] if not i['ignore_flag'])
    assert val_gt == {'Car': 62, 'Pedestrian': 13, 'Cyclist': 7}


def test_instances_labels_ignore_flags_and_sizes(kitti_tiny_root):
    ds = build(kitti_tiny_root, 'train.txt')
    info = ds.get_data_info(0)
    assert info['img_id'] == '000000'
    assert info['img_path'].endswith('training/image_2/000000.jpeg')
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        with Image.open(info['img_path']) as img:
            img.load()  # a full decode, to compare with the header-only size
            assert (info['width'], info['height']) == img.size
        text = (kitti_tiny_root / 'training' / 'label_2' / f"{info['img_id']}.txt").read_text()
        objects = parse_kitti_label(text, 'x')
        assert len(info['instances']) == len(objects)
        for inst, (obj_type, bbox) in zip(info['instances'], objects):
            assert inst['bbox'] == bbox
            if obj_type in CLASSES:
                assert (inst['bbox_label'], inst['ignore_flag']) == (CLASSES.index(obj_type), 0)
            else:
                assert (inst['bbox_label'], inst['ignore_flag']) == (-1, 1)


def test_pipeline_splits_gt_and_ignored_instances(kitti_tiny_root):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs')]
    ds = build(kitti_tiny_root, 'val.txt', pipeline=pipeline, test_mode=True)
    # The MMDetection KittiTiny tutorial's example image, val.txt line 19: 9 Car/Cyclist
    # boxes and 3 Vans.
    assert ds.get_data_info(18)['img_id'] == '000068'
    sample = ds[18]['data_samples']
    assert sample.gt_instances.labels.tolist() == [0, 0, 2, 0, 0, 0, 0, 0, 2]
    np.testing.assert_allclose(sample.gt_instances.bboxes.tensor[0].numpy(),
                               [69.26, 200.28, 435.08, 374.0], rtol=1e-6)
    assert sample.ignored_instances.labels.tolist() == [-1, -1, -1]


def test_metainfo_classes_override(kitti_tiny_root):
    ds = build(kitti_tiny_root, 'train.txt', metainfo=dict(classes=('Car',)))
    flags = Counter((i['bbox_label'], i['ignore_flag'])
                    for d in map(ds.get_data_info, range(len(ds))) for i in d['instances'])
    assert set(flags) == {(0, 0), (-1, 1)}
    assert flags[(0, 0)] == ds.type_counts['Car']


def test_filter_cfg_as_mmdet_xml_datasets(tmp_path):
    root = write_kitti(tmp_path, {'000000': LABEL + '\n', '000001': '', '000002': ''})
    Image.new('RGB', (40, 32)).save(root / 'training' / 'image_2' / '000002.jpeg')
    assert len(build(root, 'train.txt')) == 3
    kept = build(root, 'train.txt', filter_cfg=dict(filter_empty_gt=True))
    assert [kept.get_data_info(i)['img_id'] for i in range(len(kept))] == ['000000']
    kept = build(root, 'train.txt', filter_cfg=dict(min_size=32))  # the others are 40x30
    assert [kept.get_data_info(i)['img_id'] for i in range(len(kept))] == ['000002']
    # test_mode keeps every image
    assert len(build(root, 'train.txt', test_mode=True,
                     filter_cfg=dict(filter_empty_gt=True, min_size=32))) == 3


def test_blank_lines_and_zero_width_boxes_are_accepted(tmp_path):
    zero_width = LABEL.replace('573.10', '530.03')
    root = write_kitti(tmp_path, {'000000': f'\n{LABEL}\n\n{zero_width}\n'},
                       ann_lines=['000000', '', '  '])
    ds = build(root, 'train.txt')
    assert len(ds) == 1
    bboxes = [i['bbox'] for i in ds.get_data_info(0)['instances']]
    assert bboxes == [[530.03, 187.79, 573.10, 226.09], [530.03, 187.79, 530.03, 226.09]]


@pytest.mark.parametrize('line, message', [
    (LABEL + ' 0.99', r'000001\.txt:2: expected 15 fields \(KITTI label\), got 16'),
    ('Car 0 0 0 1 2 3', r'000001\.txt:2: expected 15 fields \(KITTI label\), got 7'),
    (LABEL.replace('573.10', 'abc'), r'000001\.txt:2: box fields 5-8 must be numbers'),
    (LABEL.replace('573.10', '500.00'), r'000001\.txt:2: box has x2 < x1 or y2 < y1'),
    (LABEL.replace('226.09', '100.00'), r'000001\.txt:2: box has x2 < x1 or y2 < y1'),
])
def test_bad_label_line_names_file_and_line(tmp_path, line, message):
    root = write_kitti(tmp_path, {'000000': LABEL, '000001': f'{LABEL}\n{line}\n'})
    with pytest.raises(ValueError, match=message):
        build(root, 'train.txt')


def test_missing_label_file_names_ann_file_line(tmp_path):
    root = write_kitti(tmp_path, {'000000': LABEL, '000001': None})
    with pytest.raises(FileNotFoundError,
                       match=r"train\.txt:2: label file of image '000001' not found: "
                             r".*training/label_2/000001\.txt"):
        build(root, 'train.txt')


def test_missing_image_names_ann_file_line(tmp_path):
    root = write_kitti(tmp_path, {'000000': LABEL, '000001': LABEL}, images=['000000'])
    with pytest.raises(FileNotFoundError,
                       match=r'train\.txt:2: image not found: .*image_2/000001\.jpeg'):
        build(root, 'train.txt')


def test_img_suffix_and_label_dir_are_configurable(tmp_path):
    root = write_kitti(tmp_path, {'000000': LABEL})
    (root / 'training' / 'image_2' / '000000.jpeg').rename(
        root / 'training' / 'image_2' / '000000.png')
    (root / 'training' / 'label_2').rename(root / 'labels')
    ds = build(root, 'train.txt', img_suffix='.png',
               data_prefix=dict(img='training/image_2', ann='labels'))
    assert ds.get_data_info(0)['img_path'].endswith('000000.png')
    assert len(ds.get_data_info(0)['instances']) == 1
