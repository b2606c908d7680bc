"""Ground truth of one image from the files and text a user has at hand.

Each reader returns a :class:`GroundTruth` ``(gt, ignored, skipped, source)``: two
``InstanceData`` with ``bboxes (n, 4)`` float32 ``[x1, y1, x2, y2]`` in the pixels of
the image file as given and ``labels (n,)`` long (indices into ``class_names``; ``-1``
for the ignore regions), the form mmdet's heads take as ``gt_instances`` /
``ignored_instances``, then the objects left out because their class is not one of
``class_names`` (counted by class name; :meth:`GroundTruth.skipped_note` says so in one
line, as the datasets' loaders do) and the file read. Each reads its format as the mmdet
dataset of that format does:

- :func:`parse_gt_text`: ``"x1,y1,x2,y2[,label];..."``, label a class index or
  name (class 0 when left out);
- :func:`read_voc_xml`: a VOC ``Annotations/*.xml`` as ``XMLDataset`` (1 subtracted
  from the coordinates, ``difficult`` objects ignore regions, other classes skipped);
- :func:`read_coco_json`: the annotations of one image of a COCO json as
  ``CocoDataset`` (``[x, y, w, h]`` to corners, ``iscrowd`` ignore regions, empty
  boxes and other categories skipped);
- :func:`read_kitti_label`: a KITTI ``label_2`` file as ``KittiTinyDataset`` (other
  types ignore regions).

Bad input raises ``ValueError`` with one line naming the file (and line or object)
or the offending ``--gt`` token.
"""
import json
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
from mmengine.structures import InstanceData

from ..boxes import rescale_boxes
from ..datasets.kitti_tiny import parse_kitti_label


class GroundTruth(NamedTuple):
    """One image's ground truth as a reader found it (see the module docstring)."""
    gt: InstanceData                 # bboxes (n, 4), labels (n,)
    ignored: InstanceData            # bboxes (m, 4), labels (m,) all -1
    skipped: Dict[str, int]          # class name -> objects left out (not in class_names)
    source: str                      # the file read ('--gt' for typed boxes)

    def skipped_note(self) -> Optional[str]:
        """One line naming every skipped object's class and count and the file, e.g.
        ``skipped 3 objects of classes not in the config: dog x2, cat x1 (a.xml)``;
        ``None`` when nothing was skipped."""
        if not self.skipped:
            return None
        count = sum(self.skipped.values())
        what = ('1 object of a class' if count == 1 else f'{count} objects of classes')
        classes = ', '.join(f'{name} x{n}' for name, n in
                            sorted(self.skipped.items(), key=lambda item: (-item[1], item[0])))
        return f'skipped {what} not in the config: {classes} ({self.source})'

    def resized(self, scale_factor: Sequence[float]) -> 'GroundTruth':
        """The same in the resized image (see :func:`scale_to_resized`)."""
        return self._replace(gt=scale_to_resized(self.gt, scale_factor),
                             ignored=scale_to_resized(self.ignored, scale_factor))


def make_instances(boxes: Sequence[Sequence[float]], labels: Sequence[int]) -> InstanceData:
    """``InstanceData(bboxes (n, 4) float32, labels (n,) long)``."""
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
                        labels=torch.tensor(labels, dtype=torch.long).view(-1))


def scale_to_resized(instances: InstanceData, scale_factor: Sequence[float]) -> InstanceData:
    """The same boxes in the resized image (``scale_factor = (w_scale, h_scale)``,
    as the test pipeline's ``Resize`` records it)."""
    inverse = [1 / s for s in scale_factor]  # rescale_boxes divides by its factor
    return InstanceData(bboxes=rescale_boxes(instances.bboxes, inverse),
                        labels=instances.labels.clone())


def class_index(label: str, class_names: Sequence[str], where: str) -> int:
    """``label`` as a class index: a number in ``[0, C)`` or one of ``class_names``."""
    if label in class_names:
        return list(class_names).index(label)
    try:
        index = int(label)
    except ValueError:
        raise ValueError(f'{where}: unknown class {label!r} (classes: '
                         f'{", ".join(class_names)})') from None
    if not 0 <= index < len(class_names):
        raise ValueError(f'{where}: class index {index} out of range 0..'
                         f'{len(class_names) - 1} ({", ".join(class_names)})')
    return index


def check_box(box: List[float], where: str) -> None:
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'{where}: need x1 < x2 and y1 < y2, got {box}')


def parse_gt_text(text: str, class_names: Sequence[str]) -> GroundTruth:
    """Boxes typed on the command line: ``"x1,y1,x2,y2[,label];..."``.

    Spaces around numbers and an empty last box (a trailing ``;``) are allowed; no
    ignore regions. ``ValueError`` names the offending box and token.
    """
    tokens = text.split(';')
    if len(tokens) > 1 and not tokens[-1].strip():
        tokens.pop()  # "...;" ends the last box
    boxes, labels = [], []
    for number, token in enumerate(tokens, start=1):
        if not token.strip():
            raise ValueError(f'--gt box {number}: empty (in {text!r})')
        where = f'--gt box {number} {token.strip()!r}'
        fields = [field.strip() for field in token.split(',')]
        if len(fields) not in (4, 5):
            raise ValueError(f'{where}: need x1,y1,x2,y2[,label], got {len(fields)} '
                             'comma-separated values')
        box = []
        for field in fields[:4]:
            try:
                box.append(float(field))
            except ValueError:
                raise ValueError(f'{where}: {field!r} is not a number') from None
        check_box(box, where)
        boxes.append(box)
        labels.append(class_index(fields[4], class_names, where) if len(fields) == 5 else 0)
    return GroundTruth(make_instances(boxes, labels), make_instances([], []), {}, '--gt')


def xml_text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise ValueError(f'{where}: no <{tag}>')
    return child.text.strip()


def read_voc_xml(path: str, class_names: Sequence[str]) -> GroundTruth:
    """A VOC annotation file, read as mmdet's ``XMLDataset`` reads it."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        line, column = error.position
        raise ValueError(f'{path}:{line}:{column}: not valid XML ({error})') from None
    gt_boxes, gt_labels, ignore, skipped = [], [], [], Counter()
    for number, obj in enumerate(root.findall('object'), start=1):
        where = f'{path}: object {number}'
        name = xml_text(obj, 'name', where)
        if name not in class_names:
            skipped[name] += 1
            continue
        bndbox = obj.find('bndbox')
        if bndbox is None:
            raise ValueError(f'{where} ({name}): no <bndbox>')
        try:
            # int(float(...)) then - 1, as XMLDataset (VOC's pixels count from 1).
            box = [int(float(xml_text(bndbox, tag, where))) - 1
                   for tag in ('xmin', 'ymin', 'xmax', 'ymax')]
        except ValueError as error:
            if 'no <' in str(error):
                raise
            raise ValueError(f'{where} ({name}): box coordinates must be numbers') from None
        difficult = obj.find('difficult')
        if difficult is not None and difficult.text and int(difficult.text.strip()):
            ignore.append(box)
        else:
            gt_boxes.append(box)
            gt_labels.append(list(class_names).index(name))
    return GroundTruth(make_instances(gt_boxes, gt_labels),
                       make_instances(ignore, [-1] * len(ignore)), dict(skipped), path)


def read_coco_json(path: str, image_id: str, class_names: Sequence[str]) -> GroundTruth:
    """The annotations of image ``image_id`` (its id, or its ``file_name``) of a COCO
    json, read as mmdet's ``CocoDataset`` reads them (categories matched by name)."""
    try:
        with open(path) as f:
            coco = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f'{path}:{error.lineno}:{error.colno}: not valid JSON '
                         f'({error.msg})') from None
    for key in ('images', 'annotations', 'categories'):
        if key not in coco:
            raise ValueError(f'{path}: no "{key}" list (not a COCO detection file)')
    image = next((image for image in coco['images']
                  if str(image.get('id')) == str(image_id)
                  or image.get('file_name') == image_id), None)
    if image is None:
        raise ValueError(f'{path}: no image with id or file_name {image_id!r} '
                         f'({len(coco["images"])} images)')
    names = {category['id']: category['name'] for category in coco['categories']}
    gt_boxes, gt_labels, ignore, skipped = [], [], [], Counter()
    for ann in coco['annotations']:
        if ann.get('image_id') != image['id'] or ann.get('ignore', False):
            continue
        if 'bbox' not in ann or len(ann['bbox']) != 4:
            raise ValueError(f'{path}: annotation {ann.get("id")} has no [x, y, w, h] bbox')
        x, y, w, h = ann['bbox']
        inter_w = max(0, min(x + w, image['width']) - max(x, 0))
        inter_h = max(0, min(y + h, image['height']) - max(y, 0))
        if inter_w * inter_h == 0 or ann.get('area', w * h) <= 0 or w < 1 or h < 1:
            continue
        name = names.get(ann['category_id'], f'category_id {ann["category_id"]}')
        if name not in class_names:
            skipped[name] += 1
            continue
        if ann.get('iscrowd', False):
            ignore.append([x, y, x + w, y + h])
        else:
            gt_boxes.append([x, y, x + w, y + h])
            gt_labels.append(list(class_names).index(name))
    return GroundTruth(make_instances(gt_boxes, gt_labels),
                       make_instances(ignore, [-1] * len(ignore)), dict(skipped),
                       f'{path}, image {image["id"]}')


def read_kitti_label(path: str, class_names: Sequence[str]) -> GroundTruth:
    """A KITTI label file, read as :class:`KittiTinyDataset` reads it: the objects of
    other types are ignore regions, none is skipped."""
    with open(path) as f:
        objects = parse_kitti_label(f.read(), path)
    gt_boxes, gt_labels, ignore = [], [], []
    for name, box in objects:
        if name in class_names:
            gt_boxes.append(box)
            gt_labels.append(list(class_names).index(name))
        else:
            ignore.append(box)
    return GroundTruth(make_instances(gt_boxes, gt_labels),
                       make_instances(ignore, [-1] * len(ignore)), {}, path)


def read_ground_truth(class_names: Sequence[str], gt: Optional[str] = None,
                      gt_voc: Optional[str] = None, gt_coco: Optional[str] = None,
                      image_id: Optional[str] = None,
                      gt_kitti: Optional[str] = None) -> Optional[GroundTruth]:
    """Whichever one source is given (``None`` if none); ``ValueError`` if several."""
    given = [name for name, value in (('--gt', gt), ('--gt-voc', gt_voc),
                                      ('--gt-coco', gt_coco), ('--gt-kitti', gt_kitti))
             if value is not None]
    if len(given) > 1:
        raise ValueError(f'give one ground-truth source, got {" and ".join(given)}')
    if gt_coco is not None and image_id is None:
        raise ValueError('--gt-coco needs --image-id (the image\'s id or file_name)')
    if gt is not None:
        return parse_gt_text(gt, class_names)
    if gt_voc is not None:
        return read_voc_xml(gt_voc, class_names)
    if gt_coco is not None:
        return read_coco_json(gt_coco, image_id, class_names)
    if gt_kitti is not None:
        return read_kitti_label(gt_kitti, class_names)
    return None
