import json

import pytest
from coco_files import TRAIN, write_coco
from log_capture import log_of
from mmdet.registry import DATASETS

from frcnn_plugin.datasets import DatasetError, Defect, ScratchCocoDataset


def build(root, split='train', classes=('cat', 'dog'), dataset_type='ScratchCocoDataset',
          **kwargs):
    cfg = dict(type=dataset_type, data_root=str(root), metainfo=dict(classes=classes),
               ann_file=f'annotations/{split}.json', data_prefix=dict(img='images/'),
               pipeline=[])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def infos(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def ann(ann_id, bbox, category_id=1, image_id=1, **kwargs):
    area = bbox[2] * bbox[3] if isinstance(bbox, list) and len(bbox) == 4 else 1
    return dict(dict(id=ann_id, image_id=image_id, category_id=category_id, bbox=bbox,
                     area=area, iscrowd=0), **kwargs)


# What mmdet skips without a word; ScratchCocoDataset skips it too, and counts it.
SKIPPED = [ann(10, [5, 5, 0.5, 40]), ann(11, [700, 10, 30, 30]),
           ann(12, [5, 5, 20, 20], area=0)]


@pytest.mark.parametrize('filter_cfg', [None, dict(filter_empty_gt=True, min_size=32)])
def test_same_data_as_mmdet_with_the_skips_counted(tmp_path, filter_cfg):
    annotations = dict(TRAIN, **{'e.jpg': [('bird', [1, 2, 30, 40], 0)]})
    write_coco(tmp_path, annotations=annotations, categories=('cat', 'bird', 'dog'),
               extra=SKIPPED + [ann(13, [600, 400, 60, 100])])
    ours = build(tmp_path, filter_cfg=filter_cfg)
    theirs = build(tmp_path, dataset_type='CocoDataset', filter_cfg=filter_cfg)
    assert isinstance(ours, ScratchCocoDataset)
    assert infos(ours) == infos(theirs)
    assert len(ours) == (2 if filter_cfg else 3)
    ann_file = f'{tmp_path}/annotations/train.json'
    assert ours.defects == [
        Defect(ann_file, None, 'annotation 10 (image a.jpg): box under one pixel or of '
               'zero area, skipped: [5, 5, 0.5, 40]', False),
        Defect(ann_file, None, 'annotation 11 (image a.jpg): box outside the 640x480 '
               'image, skipped: [700, 10, 30, 30]', False),
        Defect(ann_file, None, 'annotation 12 (image a.jpg): box under one pixel or of '
               'zero area, skipped: [5, 5, 20, 20]', False),
        Defect(ann_file, None, 'annotation 13 (image a.jpg): box reaches outside the '
               '640x480 image: [600, 400, 60, 100]', False),
        Defect(ann_file, None, "1 annotation(s) of category 'bird' skipped: not in "
               "classes ('cat', 'dog') (e.g. annotation 5 (image e.jpg))", False),
    ]
    # crowd boxes are ignore regions
    assert [i['ignore_flag'] for i in infos(ours)[1]['instances']] == [0, 1]


def test_errors_name_the_annotation_and_image(tmp_path):
    write_coco(tmp_path, extra=[ann(10, [5, 5, 'x', 40]), ann(11, None),
                                ann(12, [5, 5, 20, 20], category_id=7),
                                ann(13, [50, 50, 20, 20], image_id=2)])
    (tmp_path / 'images' / 'b.jpg').unlink()
    ann_file = f'{tmp_path}/annotations/train.json'
    expected = [
        Defect(ann_file, None, "annotation 10 (image a.jpg): bbox is not [x, y, w, h] "
               "numbers: [5, 5, 'x', 40]"),
        Defect(ann_file, None, 'annotation 11 (image a.jpg): bbox is not [x, y, w, h] '
               'numbers: None'),
        Defect(ann_file, None, 'annotation 12 (image a.jpg): category_id 7 is no '
               'category'),
        Defect(ann_file, None, f'image 2: file not found: {tmp_path}/images/b.jpg'),
    ]
    dataset = build(tmp_path, raise_on_defects=False)
    assert dataset.defects == expected
    assert [i['img_path'] for i in infos(dataset)] == [f'{tmp_path}/images/a.jpg']
    with pytest.raises(DatasetError) as error:
        build(tmp_path)
    assert str(error.value) == '\n'.join(map(str, expected))


def test_negative_size_and_missing_area(tmp_path):
    write_coco(tmp_path, extra=[ann(10, [50, 50, -20, 20]),
                                {k: v for k, v in ann(11, [5, 5, 20, 20]).items()
                                 if k != 'area'}])
    with pytest.raises(DatasetError) as error:
        build(tmp_path)
    assert str(error.value).splitlines() == [
        f'{tmp_path}/annotations/train.json: annotation 10 (image a.jpg): negative width '
        'or height: [50, 50, -20, 20]',
        f'{tmp_path}/annotations/train.json: annotation 11 (image a.jpg): no area '
        '(CocoMetric needs it)']


@pytest.mark.parametrize('classes, categories, message', [
    (('dog', 'cat'), ('cat', 'dog'), "classes must be in the order of the categories, "
     "('cat', 'dog'): mmdet numbers the labels that way, so in any other order the "
     'class names would name the wrong boxes'),
    (('cat', 'dgo'), ('cat', 'dog'),
     "classes ['dgo'] are not among the categories ['cat', 'dog']"),
    (('cat', 'dog'), ('cat', 'dog', 'cat'), "categories ['cat'] have several ids"),
    (('cat', 'dog', 'cat'), ('cat', 'dog'),
     "classes ['cat'] are listed more than once in classes"),
    (('cat ', 'Dog'), ('cat', 'dog'), "classes ['cat ', 'Dog'] are not among the "
     "categories ['cat', 'dog'] ('cat ' is 'cat' but for spaces or case; 'Dog' is 'dog' "
     'but for spaces or case)'),
])
def test_classes_must_match_the_categories(tmp_path, classes, categories, message):
    path = write_coco(tmp_path, categories=categories[:2])
    coco = json.loads(path.read_text())
    coco['categories'] = [dict(id=k, name=n) for k, n in enumerate(categories, start=1)]
    path.write_text(json.dumps(coco))
    with pytest.raises(DatasetError) as error:
        build(tmp_path, classes=classes)
    assert str(error.value).splitlines()[0] == (
        f'{tmp_path}/annotations/train.json: {message}')


def test_not_json_names_line_and_column(tmp_path):
    path = write_coco(tmp_path)
    path.write_text(path.read_text().replace('"images": [', '"images": [,', 1))
    with pytest.raises(DatasetError) as error:
        build(tmp_path)
    assert str(error.value) == f'{path}:2: not JSON: Expecting value (column 13)'


def test_byte_order_mark_is_named(tmp_path):
    """Windows tools may save the JSON with a UTF-8 byte-order mark: pycocotools cannot
    read it, so it is an error that says what to change (a control without the mark
    loads)."""
    path = write_coco(tmp_path)
    assert len(build(tmp_path)) == 2
    path.write_bytes(b'\xef\xbb\xbf' + path.read_bytes())
    with pytest.raises(DatasetError) as error:
        build(tmp_path)
    assert str(error.value) == (
        f'{path}:1: starts with a UTF-8 byte-order mark, which pycocotools (and '
        'CocoMetric) cannot read: save the file as UTF-8 without it')


@pytest.mark.parametrize('size, ok', [((640, 480), True), ((640.0, 480.0), True),
                                      (('640', '480'), False), ((640, None), False),
                                      ((0, 480), False), ((True, 480), False)])
@pytest.mark.parametrize('check_images', [True, False])
def test_json_width_height_must_be_numbers(tmp_path, size, ok, check_images):
    """A string (or other non-number) size is one error naming the image, not a
    TypeError from a comparison; a float is a number."""
    path = write_coco(tmp_path)
    coco = json.loads(path.read_text())
    coco['images'][0].update(width=size[0], height=size[1])
    path.write_text(json.dumps(coco))
    if ok:
        assert len(build(tmp_path, check_images=check_images)) == 2
        return
    with pytest.raises(DatasetError) as error:
        build(tmp_path, check_images=check_images)
    assert str(error.value) == (
        f'{path}: image 1 (a.jpg): width and height must be positive numbers, not '
        f'{size[0]!r} x {size[1]!r}')


def test_image_without_size_names_its_file(tmp_path):
    path = write_coco(tmp_path)
    coco = json.loads(path.read_text())
    del coco['images'][1]['width'], coco['images'][1]['height']
    path.write_text(json.dumps(coco))
    with pytest.raises(DatasetError) as error:
        build(tmp_path)
    assert str(error.value) == f'{path}: image 2 (b.jpg) has no width, height'


def test_sizes_come_from_the_files_and_every_skip_is_logged(tmp_path):
    """a.jpg's JSON says 320x240, its file is 640x480: the file's size is used, so the
    box beyond 320x240 is kept (mmdet, with the JSON's size, drops it without a word;
    a.jpg's other two boxes reach beyond 320x240 too).
    Each kind of skipped or changed box is one log line with its count."""
    path = write_coco(tmp_path, extra=[ann(10, [400, 300, 50, 50]),
                                       ann(11, [5, 5, 20, 20], ignore=True),
                                       ann(12, [5, 5, 20, 0.5], image_id=2)])
    coco = json.loads(path.read_text())
    coco['images'][0].update(width=320, height=240)
    path.write_text(json.dumps(coco))
    theirs = build(tmp_path, dataset_type='CocoDataset')
    ours, log = log_of(lambda: build(tmp_path))
    assert [len(i['instances']) for i in infos(theirs)] == [2, 2]  # a.jpg's 10 dropped
    assert [len(i['instances']) for i in infos(ours)] == [3, 2]
    assert (infos(ours)[0]['width'], infos(ours)[0]['height']) == (640, 480)
    ann_file = f'{tmp_path}/annotations/train.json'
    assert log == [f'ScratchCocoDataset: {ann_file}: {message}' for message in [
        '1 annotation(s) marked "ignore", skipped as mmdet does (e.g. annotation 11 '
        '(image a.jpg))',
        "1 image(s) whose JSON width x height is not the file's, the file's used (e.g. "
        'a.jpg: JSON 320x240, file 640x480)',
        "3 box(es) reaching beyond their image's JSON width x height, judged against the "
        "file's size (e.g. annotation 1 (image a.jpg))",
        '1 box(es) under one pixel or of zero area, skipped as mmdet does (e.g. '
        'annotation 12 (image b.jpg))']]
    assert Defect(ann_file, None, "image 1 (a.jpg): the JSON says 320x240, the file "
                  f"{tmp_path}/images/a.jpg is 640x480: the file's size is used (3 box(es) "
                  "reach beyond the JSON's)", False) in ours.defects
    # Without reading the images, the JSON's size (and mmdet's skips).
    unchecked = build(tmp_path, check_images=False)
    assert [len(i['instances']) for i in infos(unchecked)] == [2, 2]


def test_unreadable_image(tmp_path):
    write_coco(tmp_path)
    (tmp_path / 'images' / 'a.jpg').write_text('not an image')
    errors = [d for d in build(tmp_path, raise_on_defects=False).defects if d.error]
    assert len(errors) == 1 and errors[0].message.startswith(
        f'image 1: unreadable image {tmp_path}/images/a.jpg: ')
