"""Ground truth from typed boxes, VOC XML, COCO json and KITTI labels: read as mmdet's
datasets read them, bad input named in one line, objects of other classes named (class,
count, file) instead of dropped silently."""
import json

import pytest
import torch

from frcnn_plugin.analysis.ground_truth import (
    parse_gt_text,
    read_coco_json,
    read_ground_truth,
    read_kitti_label,
    read_voc_xml,
    scale_to_resized,
)

NAMES = ('Car', 'Pedestrian', 'Cyclist')
VOC = """<annotation>
  <size><width>500</width><height>375</height><depth>3</depth></size>
  <object><name>Car</name><difficult>0</difficult>
    <bndbox><xmin>11</xmin><ymin>21</ymin><xmax>101.7</xmax><ymax>201</ymax></bndbox></object>
  <object><name>Cyclist</name><difficult>1</difficult>
    <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>31</xmax><ymax>42</ymax></bndbox></object>
  <object><name>dog</name>
    <bndbox><xmin>5</xmin><ymin>5</ymin><xmax>50</xmax><ymax>50</ymax></bndbox></object>
  <object><name>Pedestrian</name>
    <bndbox><xmin>301</xmin><ymin>101</ymin><xmax>331</xmax><ymax>201</ymax></bndbox></object>
</annotation>
"""


def test_typed_boxes_labels_by_index_name_or_default():
    gt, ignored, skipped, source = parse_gt_text(
        ' 89,469,249,644 ;238,417,415,630,Cyclist;1,2,3,4,1;', NAMES)
    assert gt.bboxes.tolist() == [[89, 469, 249, 644], [238, 417, 415, 630], [1, 2, 3, 4]]
    assert gt.bboxes.dtype == torch.float32
    assert gt.labels.tolist() == [0, 2, 1] and len(ignored) == 0
    assert skipped == {} and source == '--gt'


@pytest.mark.parametrize('text, message', [
    ('1,2,3', "--gt box 1 '1,2,3': need x1,y1,x2,y2[,label], got 3 comma-separated values"),
    ('1,2,3,4;5,6,x,8', "--gt box 2 '5,6,x,8': 'x' is not a number"),
    ('1,2,3,4;;5,6,7,8', '--gt box 2: empty'),
    ('10,2,3,4', "--gt box 1 '10,2,3,4': need x1 < x2 and y1 < y2, got [10.0, 2.0, 3.0, 4.0]"),
    ('1,2,3,4,Truck', "--gt box 1 '1,2,3,4,Truck': unknown class 'Truck' (classes: Car, "
                      'Pedestrian, Cyclist)'),
    ('1,2,3,4,3', "--gt box 1 '1,2,3,4,3': class index 3 out of range 0..2"),
])
def test_typed_boxes_errors_name_the_token(text, message):
    with pytest.raises(ValueError) as error:
        parse_gt_text(text, NAMES)
    assert message in str(error.value) and '\n' not in str(error.value)


def test_voc_xml_as_xml_dataset(tmp_path):
    path = tmp_path / 'a.xml'
    path.write_text(VOC.replace('\n', '\r\n'))  # CRLF, as files from Windows tools
    read = read_voc_xml(str(path), NAMES)
    gt, ignored = read.gt, read.ignored
    # int(float(v)) - 1, as XMLDataset; other classes skipped, difficult ignored.
    assert gt.bboxes.tolist() == [[10, 20, 100, 200], [300, 100, 330, 200]]
    assert gt.labels.tolist() == [0, 1]
    assert ignored.bboxes.tolist() == [[0, 1, 30, 41]] and ignored.labels.tolist() == [-1]
    assert read.skipped == {'dog': 1}
    assert read.skipped_note() == f'skipped 1 object of a class not in the config: dog x1 ({path})'


def test_voc_xml_of_other_classes_names_every_skipped_object(tmp_path):
    """A VOC file of classes the config does not have: no gt, and one line that names
    each class left out, how many of it, and the file."""
    path = tmp_path / 'pets.xml'
    objects = ''.join(f'<object><name>{name}</name><bndbox><xmin>1</xmin><ymin>1</ymin>'
                      f'<xmax>9</xmax><ymax>9</ymax></bndbox></object>'
                      for name in ('dog', 'cat', 'dog'))
    path.write_text(f'<annotation>{objects}</annotation>')
    read = read_voc_xml(str(path), NAMES)
    assert len(read.gt) == 0 and len(read.ignored) == 0
    assert read.skipped == {'dog': 2, 'cat': 1}
    assert read.skipped_note() == (
        f'skipped 3 objects of classes not in the config: dog x2, cat x1 ({path})')
    # read_ground_truth hands the same on, and moving to the resized image keeps it.
    read = read_ground_truth(NAMES, gt_voc=str(path)).resized((0.5, 0.5))
    assert read.skipped == {'dog': 2, 'cat': 1} and read.source == str(path)


def test_voc_xml_errors(tmp_path):
    broken = tmp_path / 'broken.xml'
    broken.write_text('<annotation>\n<object>\n</annotation>\n')
    with pytest.raises(ValueError, match=r'broken.xml:3:\d+: not valid XML'):
        read_voc_xml(str(broken), NAMES)
    nobox = tmp_path / 'nobox.xml'
    nobox.write_text('<annotation><object><name>Car</name></object></annotation>')
    with pytest.raises(ValueError, match=r'nobox.xml: object 1 \(Car\): no <bndbox>'):
        read_voc_xml(str(nobox), NAMES)


def coco_file(tmp_path):
    coco = dict(
        images=[dict(id=7, file_name='a.jpg', width=100, height=80)],
        categories=[dict(id=3, name='Car'), dict(id=9, name='Cyclist'), dict(id=5, name='dog')],
        annotations=[
            dict(id=1, image_id=7, category_id=3, bbox=[10, 20, 30, 40], area=1200, iscrowd=0),
            dict(id=2, image_id=7, category_id=9, bbox=[0, 0, 50, 50], area=2500, iscrowd=1),
            dict(id=3, image_id=7, category_id=5, bbox=[1, 1, 5, 5], area=25, iscrowd=0),
            dict(id=4, image_id=7, category_id=3, bbox=[5, 5, 0.5, 9], area=4.5, iscrowd=0),
            dict(id=5, image_id=8, category_id=3, bbox=[1, 1, 9, 9], area=81, iscrowd=0)])
    path = tmp_path / 'coco.json'
    path.write_text(json.dumps(coco))
    return path


def test_coco_json_as_coco_dataset(tmp_path):
    path = coco_file(tmp_path)
    for image_id in ('7', 'a.jpg'):
        gt, ignored, skipped, source = read_coco_json(str(path), image_id, NAMES)
        assert gt.bboxes.tolist() == [[10, 20, 40, 60]] and gt.labels.tolist() == [0]
        assert ignored.bboxes.tolist() == [[0, 0, 50, 50]]
        # The dog is of another class; the 0.5-pixel-wide box is empty, not a class.
        assert skipped == {'dog': 1} and source == f'{path}, image 7'
    with pytest.raises(ValueError, match="no image with id or file_name '99'"):
        read_coco_json(str(path), '99', NAMES)


def test_kitti_and_one_source_only(tmp_path):
    label = tmp_path / '000001.txt'
    label.write_text('Car 0 0 0 10 20 30 40 0 0 0 0 0 0 0\n\n'
                     'DontCare -1 -1 -10 1 2 3 4 -1 -1 -1 -1000 -1000 -1000 -10\n')
    gt, ignored, skipped, _ = read_kitti_label(str(label), NAMES)
    assert gt.bboxes.tolist() == [[10, 20, 30, 40]] and ignored.bboxes.tolist() == [[1, 2, 3, 4]]
    assert skipped == {}  # other types are ignore regions, as KittiTinyDataset reads them
    with pytest.raises(ValueError, match='give one ground-truth source, got --gt and --gt-kitti'):
        read_ground_truth(NAMES, gt='1,2,3,4', gt_kitti=str(label))
    with pytest.raises(ValueError, match='--gt-coco needs --image-id'):
        read_ground_truth(NAMES, gt_coco='x.json')
    assert read_ground_truth(NAMES) is None


def test_scale_to_resized():
    gt = parse_gt_text('100,50,300,150', NAMES).gt
    resized = scale_to_resized(gt, (0.5, 2.0))  # (w_scale, h_scale)
    assert resized.bboxes.tolist() == [[50, 100, 150, 300]]
