
import pytest
from log_capture import log_of
from mmdet.registry import DATASETS
from PIL import Image
from voc_files import CLASSES, PUBLISHED, SPLITS, labelimg_xml, write_voc

from frcnn_plugin.datasets import DatasetError, Defect, ScratchVOCDataset


def build(root, split='trainval', dataset_type='ScratchVOCDataset', **kwargs):
    cfg = dict(type=dataset_type, data_root=str(root), metainfo=dict(classes=CLASSES),
               ann_file=f'ImageSets/Main/{split}.txt', data_prefix=dict(sub_data_root=''),
               pipeline=[])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def data_list(dataset, root):
    """The dataset's data infos, paths relative to ``root``."""
    infos = []
    for i in range(len(dataset)):
        info = dict(dataset.get_data_info(i))
        for key in ('img_path', 'xml_path'):
            info[key] = str(info[key]).replace(str(root), '<root>')
        del info['sample_idx']
        infos.append(info)
    return infos


@pytest.mark.parametrize('filter_cfg', [None, dict(filter_empty_gt=True, min_size=32,
                                                   bbox_min_size=100)])
def test_same_data_as_mmdet_and_takes_the_published_files(tmp_path, filter_cfg):
    """On files mmdet reads, the data list is mmdet's; the published files (CRLF, a
    byte-order mark, spaces and blank lines in the id lists) give the same list."""
    clean = write_voc(tmp_path / 'clean', newline='\n', messy_lists=False)
    published = write_voc(tmp_path / 'published')
    expected = data_list(build(clean, dataset_type='VOCDataset', filter_cfg=filter_cfg),
                         clean)
    assert len(expected) == 3
    assert data_list(build(clean, filter_cfg=filter_cfg), clean) == expected
    ours = build(published, filter_cfg=filter_cfg)
    assert isinstance(ours, ScratchVOCDataset)
    assert data_list(ours, published) == expected
    # bbox_min_size=100 makes every helmet an ignore region: a class without objects
    assert ours.defects == ([] if filter_cfg is None else [Defect(
        f'{published}/ImageSets/Main/trainval.txt', None, "class 'helmet' has no objects: "
        'the head would learn a class that is never a positive', False)])
    # The first image as mmdet reads VOC: 1-based pixels made 0-based; the 90 x 68
    # helmet is under bbox_min_size.
    assert expected[0]['instances'][:2] == [
        dict(ignore_flag=0, bbox=[100, 80, 299, 559], bbox_label=2),
        dict(ignore_flag=int(filter_cfg is not None), bbox=[149, 81, 239, 149],
             bbox_label=0)]


def test_box_on_the_image_border_is_inside(tmp_path):
    root = write_voc(tmp_path)
    info = build(root, split='test').get_data_info(0)  # forklift at (1, 1)
    assert info['instances'][0]['bbox'] == [0, 0, 379, 419]
    info = build(root).get_data_info(1)  # person up to ymax == height (600)
    assert info['instances'][1] == dict(ignore_flag=1, bbox=[39, 299, 119, 599],
                                        bbox_label=2)


def object_xml(img_id, objects, size=(800, 600)):
    return labelimg_xml(img_id, size, objects).replace('\n', '\r\n')


BROKEN = {  # id -> (XML text or None for no file, write the image)
    'inverted': (object_xml('inverted', [('person', (300, 80, 100, 560), 0)]), True),
    'zero_size': (object_xml('zero_size', [('vest', (10, 10, 10, 90), 0)]), True),
    'misspelt': (object_xml('misspelt', [('helmat', (10, 10, 50, 50), 0),
                                         ('person', (5, 5, 90, 190), 0),
                                         ('helmat', (60, 10, 90, 40), 0)]), True),
    'no_image': (object_xml('no_image', [('person', (5, 5, 90, 190), 0)]), False),
    'no_xml': (None, True),
    'malformed': (object_xml('malformed', [('person', (5, 5, 90, 190), 0)])
                  .replace('</pose>', '</pos>'), True),
    'wrong_size': (object_xml('wrong_size', [('person', (5, 5, 90, 190), 0)],
                              size=(600, 800)), True),
    'not_number': (object_xml('not_number', [('vest', (5, 5, 90, 190), 0),
                                             ('vest', (5, 5, '9O', 190), 0)]), True),
    'no_bndbox': (object_xml('no_bndbox', [('vest', (5, 5, 90, 190), 0)])
                  .replace('<bndbox>', '<bbox>').replace('</bndbox>', '</bbox>'), True),
    'no_name': (object_xml('no_name', [('', (5, 5, 90, 190), 0)]), True),
    'bad_difficult': (object_xml('bad_difficult', [('vest', (5, 5, 90, 190), 'yes')]),
                      True),
    'outside': (object_xml('outside', [('vest', (0, 5, 90, 601), 0),
                                       ('vest', (810, 5, 900, 90), 0)]), True),
}


def write_broken(root):
    """The published set plus one image per defect, listed after a per-class line."""
    write_voc(root)
    for img_id, (xml, with_image) in BROKEN.items():
        if xml is not None:
            (root / 'Annotations' / f'{img_id}.xml').write_text(xml, newline='')
        if with_image:
            Image.new('RGB', (800, 600)).save(root / 'JPEGImages' / f'{img_id}.jpg')
    lines = ['frame_0001', 'frame_0002 -1', *BROKEN, '']
    (root / 'ImageSets/Main/broken.txt').write_bytes('\r\n'.join(lines).encode())
    return root


def test_every_defect_is_named_with_file_and_line(tmp_path):
    root = write_broken(tmp_path)
    ann = f'{root}/ImageSets/Main/broken.txt'
    xml = f'{root}/Annotations'
    expected = [
        Defect(ann, 2, "expected one image id, got 'frame_0002 -1' (a per-class list? "
                       'use ImageSets/Main/<split>.txt)'),
        Defect(f'{xml}/inverted.xml', 19,
               "inverted box of 'person' (xmax < xmin or ymax < ymin): [300, 80, 100, 560]"),
        Defect(f'{xml}/zero_size.xml', 19, "zero-size box of 'vest': [10, 10, 10, 90]"),
        Defect(ann, 6, f'image not found: {root}/JPEGImages/no_image.jpg'),
        Defect(ann, 7, f"annotation of 'no_xml' not found: {xml}/no_xml.xml"),
        Defect(f'{xml}/malformed.xml', 16, 'malformed XML: mismatched tag (column 22)'),
        Defect(f'{xml}/wrong_size.xml', 8, '<size> says 600x800, the image '
               f'{root}/JPEGImages/wrong_size.jpg is 800x600'),
        Defect(f'{xml}/not_number.xml', 34, "<xmax> of 'vest' is not a number: '9O'"),
        Defect(f'{xml}/no_bndbox.xml', 14, "object 'vest' has no <bndbox>"),
        Defect(f'{xml}/no_name.xml', 14, '<object> without a <name>'),
        Defect(f'{xml}/bad_difficult.xml', 18,
               "<difficult> of 'vest' is not an integer: 'yes'"),
        Defect(f'{xml}/outside.xml', 19, "box of 'vest' reaches outside the 800x600 image "
               '(VOC pixels are 1..800, 1..600): [0, 5, 90, 601] clipped to [1, 5, 90, 600]',
               error=False),
        Defect(f'{xml}/outside.xml', 31,
               "box of 'vest' lies outside the 800x600 image: [810, 5, 900, 90]"),
        Defect(f'{xml}/misspelt.xml', 14, "2 object(s) named 'helmat' skipped: not in "
               "classes ('helmet', 'vest', 'person', 'forklift')", error=False),
        Defect(ann, None, "class 'forklift' has no objects: the head would learn a class "
               'that is never a positive', error=False),
    ]
    dataset = build(root, split='broken', raise_on_defects=False)
    assert dataset.defects == expected
    # What is usable is loaded: the good image, the good objects of the others.
    kept = {dataset.get_data_info(i)['img_id']: dataset.get_data_info(i)['instances']
            for i in range(len(dataset))}
    assert sorted(kept) == ['bad_difficult', 'frame_0001', 'inverted', 'misspelt',
                            'no_bndbox', 'no_name', 'not_number', 'outside', 'zero_size']
    assert kept['not_number'] == [dict(ignore_flag=0, bbox=[4, 4, 89, 189], bbox_label=1)]
    assert kept['outside'] == [dict(ignore_flag=0, bbox=[0, 4, 89, 599], bbox_label=1)]

    with pytest.raises(DatasetError) as error:
        build(root, split='broken')
    assert str(error.value) == '\n'.join(str(d) for d in expected if d.error)
    assert str(error.value).startswith(f'{ann}:2: expected one image id')
    assert error.value.defects == [d for d in expected if d.error]


def test_misspelt_class_is_logged_once_per_name(tmp_path):
    root = write_voc(tmp_path, annotations={
        'a': [('helmat', (10, 10, 50, 50), 0), ('Person', (5, 5, 90, 190), 0)],
        'b': [('helmat', (60, 10, 90, 40), 0), ('person', (5, 5, 90, 190), 0)]},
        splits={'trainval': ['a', 'b']})
    dataset, log = log_of(lambda: build(root))
    classes = "('helmet', 'vest', 'person', 'forklift')"
    assert log == [
        f"ScratchVOCDataset: {root}/Annotations/a.xml:26: 1 object(s) named 'Person' "
        f"skipped: not in classes {classes} ('person' in classes is 'Person' but for "
        'spaces or case)',
        f"ScratchVOCDataset: {root}/Annotations/a.xml:14: 2 object(s) named 'helmat' "
        f'skipped: not in classes {classes}'] + [
        f'ScratchVOCDataset: {root}/ImageSets/Main/trainval.txt: class {name!r} has no '
        'objects: the head would learn a class that is never a positive'
        for name in ('helmet', 'vest', 'forklift')]
    assert [len(dataset.get_data_info(i)['instances']) for i in range(2)] == [0, 1]


def test_class_listed_twice(tmp_path):
    """mmdet would number a name listed twice by its last index: the first label
    would have no objects, without a word. An error; the control (each once) loads."""
    root = write_voc(tmp_path)
    assert len(build(root)) == 3
    with pytest.raises(DatasetError) as error:
        build(root, metainfo=dict(classes=CLASSES + ('helmet',)))
    assert str(error.value) == (f'{root}/ImageSets/Main/trainval.txt: classes '
                                "['helmet'] are listed more than once in classes")


def test_missing_or_unfilled_size_comes_from_the_image(tmp_path):
    root = write_voc(tmp_path)
    xml = root / 'Annotations' / 'frame_0001.xml'
    xml.write_bytes(xml.read_bytes().replace(b'<width>800</width>', b'<width>0</width>')
                    .replace(b'<height>600</height>', b'<height>0</height>'))
    xml = root / 'Annotations' / 'frame_0002.xml'
    text = xml.read_text()
    xml.write_text(text[:text.index('<size>')] + text[text.index('</size>') + 7:])
    dataset = build(root)
    assert [(dataset.get_data_info(i)['width'], dataset.get_data_info(i)['height'])
            for i in range(3)] == [(800, 600)] * 3
    assert dataset.defects == []


def test_check_images_false_reads_no_image(tmp_path):
    root = write_voc(tmp_path)
    (root / 'JPEGImages' / 'frame_0001.jpg').unlink()
    with pytest.raises(DatasetError, match=r'trainval\.txt:1: image not found: '):
        build(root)
    assert len(build(root, check_images=False)) == 3


def test_missing_image_set_file(tmp_path):
    root = write_voc(tmp_path)
    with pytest.raises(DatasetError) as error:
        build(root, split='val')
    assert str(error.value) == f'{root}/ImageSets/Main/val.txt: image-set file not found'


def test_many_errors_are_shown_up_to_twenty(tmp_path):
    root = write_voc(tmp_path, splits={'trainval': [f'missing_{k}' for k in range(25)]})
    with pytest.raises(DatasetError) as error:
        build(root)
    lines = str(error.value).splitlines()
    assert len(lines) == 21 and len(error.value.defects) == 25
    assert lines[-1] == ('... 25 errors in all, the first 20 shown; python '
                         'tools/check_dataset.py CONFIG lists every one')


def test_published_splits_counts(tmp_path):
    """Every object of the published set is loaded, with its class."""
    root = write_voc(tmp_path)
    for split, ids in SPLITS.items():
        dataset = build(root, split=split)
        assert [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))] == ids
        labels = [CLASSES[inst['bbox_label']] for i in range(len(dataset))
                  for inst in dataset.get_data_info(i)['instances']]
        assert labels == [name for i in ids for name, _, _ in PUBLISHED[i]]


@pytest.mark.parametrize('newline', ['\n', '\r\n', '\r'])
def test_id_list_line_ends_and_line_numbers(tmp_path, newline):
    """Unix, Windows and old Mac line ends alike: ids found, defects on the right line."""
    root = write_voc(tmp_path, newline=newline)
    (root / 'ImageSets/Main/trainval.txt').write_bytes(
        newline.join(['frame_0001', '', '  frame_0009 ', 'frame_0002', '']).encode())
    dataset = build(root, raise_on_defects=False)
    assert [dataset.get_data_info(i)['img_id'] for i in range(2)] == ['frame_0001',
                                                                      'frame_0002']
    assert [str(d) for d in dataset.defects] == [
        f"{root}/ImageSets/Main/trainval.txt:3: annotation of 'frame_0009' not found: "
        f'{root}/Annotations/frame_0009.xml']


def test_nothing_to_load_is_an_error_even_when_collecting(tmp_path):
    root = write_voc(tmp_path, splits={'trainval': [], 'test': ['missing']})
    with pytest.raises(DatasetError) as error:
        build(root, raise_on_defects=False)
    assert str(error.value) == f'{root}/ImageSets/Main/trainval.txt: no images'
    with pytest.raises(DatasetError) as error:
        build(root, split='test', raise_on_defects=False)
    assert str(error.value) == (f"{root}/ImageSets/Main/test.txt:1: annotation of "
                                f"'missing' not found: {root}/Annotations/missing.xml")


def test_png_images_are_named_and_read_with_img_suffix(tmp_path):
    root = write_voc(tmp_path)
    for img in (root / 'JPEGImages').glob('*.jpg'):
        Image.open(img).save(img.with_suffix('.png'))
        img.unlink()
    with pytest.raises(DatasetError) as error:
        build(root, split='test')
    assert str(error.value) == (f'{root}/ImageSets/Main/test.txt:1: image not found: '
                                f'{root}/JPEGImages/frame_0004.jpg (there is '
                                'frame_0004.png: set img_suffix)')
    dataset = build(root, split='test', img_suffix='.png')
    assert dataset.get_data_info(0)['img_path'] == f'{root}/JPEGImages/frame_0004.png'
