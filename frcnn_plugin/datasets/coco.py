"""COCO-format (JSON) data of your own: mmdet's ``CocoDataset``, with every defect of
the file found and named.

mmdet's ``CocoDataset`` reads ``ann_file`` with pycocotools (``images``,
``annotations`` with ``bbox = [x, y, w, h]``, ``area``, ``category_id``, ``iscrowd``,
and ``categories``) and images from ``data_prefix['img']``. It numbers the labels in
the order of the JSON's ``categories`` whatever the order of ``classes``, judges boxes
against the JSON's ``width`` / ``height``, and skips without a word the annotations of
other categories or marked ``"ignore"``, boxes under one pixel and boxes outside their
image. :class:`ScratchCocoDataset` loads the same data list and:

Errors (the file, the annotation id and the image): a file that is not JSON (with its
line and column; one that starts with a UTF-8 byte-order mark, which pycocotools cannot
read), ``classes`` not all among the JSON's category names (a name that differs from a
category's only by spaces or case is pointed out), in another order, listed twice, or a
name with several ids, an image entry without ``file_name`` / ``width`` / ``height`` or
whose ``width`` / ``height`` are not positive numbers (a string, ``"2048"``; a float,
``2048.0``, is a number), a missing or unreadable image file, a JPEG cut short
(``check_images``), an annotation without a 4-number ``bbox`` or ``area``, a negative
width or height, a ``category_id`` that is no category.

Image sizes: with ``check_images`` each image's size is read from its file's header
(no decoding; quarter-turned by its EXIF orientation, as the pipeline decodes it). A
JSON ``width`` / ``height`` other than the file's (half of it, swapped...) is a
warning naming the file and both sizes, and the file's size is used: it is the image
the pipeline loads and the boxes are drawn on, so its boxes are judged against it
(the boxes that reach beyond the JSON's size are counted).

Counted and skipped as mmdet does (warnings): annotations of categories not in
``classes`` (one warning line per name, with the count and an example), boxes under
one pixel or with zero ``area``, boxes entirely outside their image, annotations
marked ``"ignore": true``. A box reaching partly outside is kept (the pipeline clips
it) and is a warning. Each box or image warning is also counted in the log at load,
one line per kind with its count and an example, so that a training log accounts for
every annotation; a class of ``classes`` without objects is a warning logged too.

Errors are collected, then raised together as one :class:`DatasetError`
(``raise_on_defects=True``), or kept in ``self.defects`` for
``tools/check_dataset.py``; an image with an error is left out of the data list.
"""
import json
import logging
import math
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Tuple

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from .defects import CollectsDefects, image_size


@DATASETS.register_module()
class ScratchCocoDataset(CollectsDefects, CocoDataset):
    """mmdet's ``CocoDataset`` that names every defect of its JSON (see the module's
    docstring for what is an error and what is counted).

    Args:
        raise_on_defects (bool): as :class:`CollectsDefects`.
        check_images (bool): read every image's header (without decoding it) to find
            missing images and sizes other than the JSON's. Default: True.
        Everything else as :class:`mmdet.datasets.CocoDataset`.
    """

    @property
    def label_names(self) -> Tuple[str, ...]:
        """The category name of each label: mmdet numbers the categories whose names
        are in ``classes`` in the JSON's order, whatever the order or spelling of
        ``classes``."""
        if not getattr(self, 'category_names', None):  # nothing read (yet)
            return super().label_names
        return tuple(self.category_names[cat_id] for cat_id in self.cat_ids)

    def load_data_list(self) -> List[dict]:
        """mmdet's ``CocoDataset.load_data_list``; images with an error left out."""
        self.defects = []
        self.counted = {}
        self.category_names: Optional[Dict[int, str]] = None  # id -> name, at 1st image
        self.skipped_names = Counter()
        self.skipped_example: Dict[str, str] = {}
        try:
            data_list = [d for d in super().load_data_list() if d is not None]
        except json.JSONDecodeError as e:
            if e.msg.startswith('Unexpected UTF-8 BOM'):
                self._defect('starts with a UTF-8 byte-order mark, which pycocotools (and '
                             'CocoMetric) cannot read: save the file as UTF-8 without it',
                             line=1)
            else:
                self._defect(f'not JSON: {e.msg} (column {e.colno})', line=e.lineno)
            data_list = []
        except FileNotFoundError:
            self._defect('annotation file not found')
            data_list = []

        for name, count in sorted(self.skipped_names.items()):
            message = (f'{count} annotation(s) of category {name!r} skipped: not in '
                       f'classes {tuple(self.metainfo["classes"])} '
                       f'(e.g. {self.skipped_example[name]})')
            self._defect(message, error=False)
            print_log(f'{type(self).__name__}: {self.ann_file}: {message}',
                      logger='current', level=logging.WARNING)
        self.report_defects(data_list)
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> Optional[dict]:
        """mmdet's ``CocoDataset.parse_data_info`` on the annotations without errors;
        None for an image with an error."""
        if self.category_names is None:
            self._check_classes()
        img_info = raw_data_info['raw_img_info']
        missing = [k for k in ('file_name', 'width', 'height') if k not in img_info]
        if missing:
            name = f' ({img_info["file_name"]})' if 'file_name' in img_info else ''
            self._defect(f'image {img_info["img_id"]}{name} has no {", ".join(missing)}')
            return None
        json_size = img_info['width'], img_info['height']
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                   for v in json_size):
            self._defect(f'image {img_info["img_id"]} ({img_info["file_name"]}): width and '
                         f'height must be positive numbers, not {json_size[0]!r} x '
                         f'{json_size[1]!r}')
            return None
        img_path = osp.join(self.data_prefix['img'], img_info['file_name'])
        if self.check_images:
            try:
                size = image_size(img_path, self.backend_args)
            except FileNotFoundError:
                self._defect(f'image {img_info["img_id"]}: file not found: {img_path}')
                return None
            except OSError as e:
                self._defect(f'image {img_info["img_id"]}: unreadable image {img_path}: {e}')
                return None
            img_info = dict(img_info, width=size[0], height=size[1])
        anns = [ann for ann in raw_data_info['raw_ann_info']
                if self._usable(ann, img_info)]
        if json_size != (img_info['width'], img_info['height']):
            self._size_mismatch(img_info, json_size, img_path, anns)
        return super().parse_data_info(dict(raw_img_info=img_info, raw_ann_info=anns))

    def _size_mismatch(self, img_info: dict, json_size: Tuple[int, int], img_path: str,
                       anns: List[dict]) -> None:
        """A warning for an image whose JSON size is not its file's (``img_info``
        has the file's), and the count of its boxes, among ``anns``, that reach beyond
        the JSON's size: mmdet would have skipped or clipped them."""
        (json_w, json_h), size = json_size, (img_info['width'], img_info['height'])
        beyond = [ann for ann in anns if ann['bbox'][0] + ann['bbox'][2] > json_w
                  or ann['bbox'][1] + ann['bbox'][3] > json_h]
        swapped = ' (width and height swapped)' if size == (json_h, json_w) else ''
        self._defect(f'image {img_info["img_id"]} ({img_info["file_name"]}): the JSON says '
                     f'{json_w}x{json_h}, the file {img_path} is {size[0]}x{size[1]}'
                     f"{swapped}: the file's size is used ({len(beyond)} box(es) reach "
                     "beyond the JSON's)", error=False)
        self.count("image(s) whose JSON width x height is not the file's, the file's used",
                   f'{img_info["file_name"]}: JSON {json_w}x{json_h}, file '
                   f'{size[0]}x{size[1]}')
        for ann in beyond:
            self.count("box(es) reaching beyond their image's JSON width x height, judged "
                       "against the file's size", self._where(ann, img_info))

    def _check_classes(self) -> None:
        """``classes`` against the JSON's categories: mmdet matches them by name and
        numbers the labels in the categories' order (``COCO.get_cat_ids``), and
        ``CocoMetric`` maps the labels back the same way."""
        self.category_names = {c['id']: c['name']
                               for c in self.coco.dataset.get('categories', [])}
        names = list(self.category_names.values())
        classes = list(self.metainfo['classes'])
        listed_twice = sorted(n for n, k in Counter(classes).items() if k > 1)
        repeated = sorted(n for n, k in Counter(names).items() if k > 1 and n in classes)
        absent = [c for c in classes if c not in names]
        in_json_order = [n for n in names if n in classes]
        if listed_twice:
            self._defect(f'classes {listed_twice} are listed more than once in classes')
        elif repeated:
            self._defect(f'categories {repeated} have several ids')
        elif absent:
            near = [f'{c!r} is {n!r} but for spaces or case' for c in absent for n in names
                    if c.strip().casefold() == n.strip().casefold()]
            self._defect(f'classes {absent} are not among the categories {names}'
                         + (f' ({"; ".join(near)})' if near else ''))
        elif in_json_order != classes:
            self._defect(f'classes must be in the order of the categories, '
                         f'{tuple(in_json_order)}: mmdet numbers the labels that way, so '
                         'in any other order the class names would name the wrong boxes')

    def _usable(self, ann: dict, img_info: dict) -> bool:
        """Whether mmdet's ``parse_data_info`` may see ``ann``; its defect recorded."""
        where = self._where(ann, img_info)
        bbox = ann.get('bbox')
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
            self._defect(f'{where}: bbox is not [x, y, w, h] numbers: {bbox!r}')
            return False
        if 'area' not in ann:
            self._defect(f'{where}: no area (CocoMetric needs it)')
            return False
        if ann.get('category_id') not in self.category_names:
            self._defect(f'{where}: category_id {ann.get("category_id")!r} is no category')
            return False
        x, y, w, h = bbox
        if w < 0 or h < 0:
            self._defect(f'{where}: negative width or height: {bbox}')
            return False
        name = self.category_names[ann['category_id']]
        if ann['category_id'] not in self.cat2label:
            self.skipped_names[name] += 1
            self.skipped_example.setdefault(name, where)
            return False
        width, height = img_info['width'], img_info['height']
        if ann.get('ignore', False):
            message, kind = ('marked "ignore", skipped',
                             'annotation(s) marked "ignore", skipped as mmdet does')
        elif w < 1 or h < 1 or ann['area'] <= 0:
            message, kind = ('box under one pixel or of zero area, skipped',
                             'box(es) under one pixel or of zero area, skipped as mmdet '
                             'does')
        elif min(x + w, width) <= max(x, 0) or min(y + h, height) <= max(y, 0):
            message, kind = (f'box outside the {width}x{height} image, skipped',
                             'box(es) outside their image, skipped as mmdet does')
        elif x < 0 or y < 0 or x + w > width or y + h > height:
            message, kind = (f'box reaches outside the {width}x{height} image',
                             'box(es) reaching outside their image, kept (the pipeline '
                             'clips them)')
        else:
            return True
        self._defect(f'{where}: {message}: {bbox}', error=False)
        self.count(kind, where)
        return True

    @staticmethod
    def _where(ann: dict, img_info: dict) -> str:
        return f'annotation {ann.get("id")} (image {img_info["file_name"]})'

    def _defect(self, message: str, line: Optional[int] = None,
                error: bool = True) -> None:
        """A defect of ``ann_file``, the one file of a COCO dataset's annotations."""
        self.add_defect(self.ann_file, line, message, error)
