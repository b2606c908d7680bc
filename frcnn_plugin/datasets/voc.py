"""PASCAL VOC-format data as labelling tools write it: mmdet's ``VOCDataset``, with
every defect of the files found and named.

mmdet's ``VOCDataset`` (``XMLDataset``) reads the VOC layout::

    data_root/sub_data_root/
        ImageSets/Main/trainval.txt   one image id per line (``ann_file``)
        Annotations/<id>.xml          <size>, <object><name>, <difficult>, <bndbox>
        JPEGImages/<id>.jpg

:class:`ScratchVOCDataset` reads it the same way (same arguments, same data list, same
``filter_cfg``), and differs where mmdet fails late, deep in a library, or silently:

Accepted (documented):
    * id lists with Windows (CRLF) or old Mac (CR) line ends, a UTF-8 byte-order mark,
      spaces around an id and blank lines;
    * spaces around an object's ``<name>``;
    * a ``<size>`` of 0 x 0 or none (the image's header gives the size; mmdet
      decodes the whole image for it);
    * a box reaching outside its image (VOC pixels run from 1 to width / height, so
      ``xmax == width`` is inside): clipped to the image, and each one is a warning,
      counted in the log at load (one line: the count and an example);
    * objects whose ``<name>`` is not in ``classes`` are skipped as in mmdet, but
      counted: one warning line per name at load (count and an example file), so a
      misspelt class cannot silently lose its boxes (a class that is the name but for
      spaces or case is pointed out);
    * a class of ``classes`` without objects (ignore regions aside) in this split: a
      warning naming it, logged at load (the head would train a class that is never
      a positive).

Errors, each naming the file and line: a missing image-set file, annotation or image
(naming ``<id>.png`` or the like if there is one: ``img_suffix`` reads other
extensions, where mmdet reads ``.jpg`` only), an id with spaces inside (a per-class list
such as ``cat_trainval.txt``), malformed XML, an object without ``<name>`` or
``<bndbox>``, a missing or non-numeric coordinate, a non-integer ``<difficult>``, a
name listed twice in ``classes``, an inverted (``xmax < xmin``) or zero-size
(``xmax == xmin``) box, a box entirely outside its image, and a ``<size>`` that
disagrees with the image. All of them are collected, then raised together as one
:class:`DatasetError` (``raise_on_defects=True``), or kept in ``self.defects`` for
``tools/check_dataset.py``; an image with an error is left out of the data list.
"""
import glob
import logging
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple
from xml.parsers import expat

from mmdet.datasets import VOCDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get
from mmengine.logging import print_log

from .defects import CollectsDefects, image_size

BOX_TAGS = ('xmin', 'ymin', 'xmax', 'ymax')


def parse_xml_with_lines(data: bytes) -> Tuple[ET.Element, Dict[ET.Element, int]]:
    """The root of an XML document and the line on which each element starts.

    ``ElementTree`` keeps no line numbers, so expat's events build the tree here.
    Raises ``xml.parsers.expat.ExpatError`` (with ``lineno``, ``offset``) on bad XML.
    """
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    lines = {}

    def start(tag, attrib):
        lines[builder.start(tag, attrib)] = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.Parse(data, True)
    return builder.close(), lines


def element_text(parent: ET.Element, tag: str) -> Optional[str]:
    """Stripped text of ``parent``'s child ``tag``; '' when empty, None when absent."""
    child = parent.find(tag)
    return None if child is None else (child.text or '').strip()


@DATASETS.register_module()
class ScratchVOCDataset(CollectsDefects, VOCDataset):
    """mmdet's ``VOCDataset`` that takes real files and names every defect (see the
    module's docstring for what is accepted and what is an error).

    Args:
        raise_on_defects (bool): as :class:`CollectsDefects`.
        check_images (bool): read every image's header (without decoding it:
            :func:`image_size`, EXIF orientation included, a JPEG cut short found) to
            find missing and truncated images and ``<size>`` mismatches at load.
            False skips it; a missing image then fails in the data loader.
            Default: True.
        img_suffix (str): the images' file extension: ``JPEGImages/<id><img_suffix>``
            (mmdet: always ``.jpg``). Default: ``'.jpg'``.
        Everything else as :class:`mmdet.datasets.VOCDataset`.
    """

    def __init__(self, *args, img_suffix: str = '.jpg', **kwargs) -> None:
        self.img_suffix = img_suffix
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """mmdet's ``XMLDataset.load_data_list``, with ids read as described above."""
        assert self._metainfo.get('classes', None) is not None, \
            '`classes` in `XMLDataset` can not be None.'
        self.cat2label = {cat: i for i, cat in enumerate(self._metainfo['classes'])}
        self.defects = []
        self.counted = {}
        # name -> [count, (xml path, line) of the first] of objects not in classes
        self.skipped_names: Dict[str, list] = {}
        classes = list(self._metainfo['classes'])
        listed_twice = sorted(n for n in set(classes) if classes.count(n) > 1)
        if listed_twice:  # mmdet would give the name its last index, and none the first
            self.add_defect(self.ann_file, None,
                            f'classes {listed_twice} are listed more than once in classes')

        data_list = []
        for line, img_id in self._read_ids():
            data_info = self.parse_data_info(dict(
                img_id=img_id, file_name=osp.join(self.img_subdir, img_id + self.img_suffix),
                xml_path=osp.join(self.sub_data_root, self.ann_subdir, f'{img_id}.xml'),
                ann_file_line=line))
            if data_info is not None:
                data_list.append(data_info)

        for name, (count, example) in sorted(self.skipped_names.items()):
            path, line = example
            near = [c for c in classes if c.strip().casefold() == name.strip().casefold()]
            message = (f'{count} object(s) named {name!r} skipped: not in classes '
                       f'{tuple(classes)}' + ''.join(
                           f' ({c!r} in classes is {name!r} but for spaces or case)'
                           for c in near))
            self.add_defect(path, line, message, error=False)
            print_log(f'{type(self).__name__}: {path}:{line}: {message}',
                      logger='current', level=logging.WARNING)
        self.report_defects(data_list)
        return data_list

    def _read_ids(self) -> List[Tuple[int, str]]:
        """``(line, id)`` of each image id in ``ann_file``."""
        try:
            data = get(self.ann_file, backend_args=self.backend_args)
        except FileNotFoundError:
            self.add_defect(self.ann_file, None, 'image-set file not found')
            return []
        try:
            text = data.decode('utf-8-sig')
        except UnicodeDecodeError as e:
            self.add_defect(self.ann_file, data[:e.start].count(b'\n') + 1,
                            f'not UTF-8 text: {e.reason}')
            return []
        ids = []
        for line, img_id in enumerate(text.splitlines(), start=1):
            img_id = img_id.strip()
            if not img_id:
                continue
            if len(img_id.split()) > 1:
                self.add_defect(self.ann_file, line, f'expected one image id, got {img_id!r} '
                                '(a per-class list? use ImageSets/Main/<split>.txt)')
                continue
            ids.append((line, img_id))
        return ids

    def parse_data_info(self, img_info: dict) -> Optional[dict]:
        """mmdet's ``XMLDataset.parse_data_info``; None for an image with an error."""
        img_path = osp.join(self.sub_data_root, img_info['file_name'])
        xml_path = img_info['xml_path']
        id_line = (self.ann_file, img_info['ann_file_line'])
        try:
            data = get(xml_path, backend_args=self.backend_args)
        except FileNotFoundError:
            self.add_defect(*id_line, f'annotation of {img_info["img_id"]!r} not found: '
                            f'{xml_path}')
            return None
        try:
            root, lines = parse_xml_with_lines(data)
        except expat.ExpatError as e:
            self.add_defect(xml_path, e.lineno, f'malformed XML: {expat.ErrorString(e.code)} '
                            f'(column {e.offset + 1})')
            return None

        size = self._xml_size(root, lines, xml_path)
        if size is None or self.check_images:
            image_size = self._image_size(img_path, id_line)
            if image_size is None:
                return None
            if size is not None and size != image_size:
                self.add_defect(xml_path, lines[root.find('size')],
                                f'<size> says {size[0]}x{size[1]}, the image {img_path} is '
                                f'{image_size[0]}x{image_size[1]}')
                return None
            size = image_size
        width, height = size

        instances = []
        for obj in root.findall('object'):
            instance = self._parse_object(obj, lines, xml_path, width, height)
            if instance is not None:
                instances.append(instance)
        return dict(img_path=img_path, img_id=img_info['img_id'], xml_path=xml_path,
                    height=height, width=width, instances=instances)

    def _xml_size(self, root, lines, xml_path) -> Optional[Tuple[int, int]]:
        """(width, height) from ``<size>``; None when absent or 0 x 0 (not filled in)."""
        size = root.find('size')
        if size is None:
            return None
        try:
            width, height = (int(element_text(size, tag)) for tag in ('width', 'height'))
        except (TypeError, ValueError):
            self.add_defect(xml_path, lines[size], '<size> needs integer <width> and <height>')
            return None
        return None if width == height == 0 else (width, height)

    def _image_size(self, img_path, id_line) -> Optional[Tuple[int, int]]:
        """(width, height) from the image's header (:func:`image_size`), or None
        with its defect."""
        try:
            return image_size(img_path, self.backend_args)
        except FileNotFoundError:
            others = glob.glob(glob.escape(osp.splitext(img_path)[0]) + '.*')
            hint = (f' (there is {osp.basename(min(others))}: set img_suffix)'
                    if others else '')
            self.add_defect(*id_line, f'image not found: {img_path}{hint}')
        except OSError as e:
            self.add_defect(*id_line, f'unreadable image {img_path}: {e}')
        return None

    def _parse_object(self, obj, lines, xml_path, width, height) -> Optional[dict]:
        """One ``<object>`` as an mmdet instance (mmdet's ``_parse_instance_info``
        with ``minus_one=True``), or None when skipped or wrong."""
        name = element_text(obj, 'name')
        if not name:
            self.add_defect(xml_path, lines[obj], '<object> without a <name>')
            return None
        if name not in self.cat2label:
            skipped = self.skipped_names.setdefault(name, [0, (xml_path, lines[obj])])
            skipped[0] += 1
            return None
        difficult = element_text(obj, 'difficult')
        try:
            difficult = int(difficult) if difficult else 0
        except ValueError:
            self.add_defect(xml_path, lines[obj.find('difficult')],
                            f'<difficult> of {name!r} is not an integer: {difficult!r}')
            return None
        bndbox = obj.find('bndbox')
        if bndbox is None:
            self.add_defect(xml_path, lines[obj], f'object {name!r} has no <bndbox>')
            return None
        box = []
        for tag in BOX_TAGS:
            text = element_text(bndbox, tag)
            try:
                box.append(int(float(text)))  # as mmdet: truncated to whole pixels
            except (TypeError, ValueError):
                where = lines[bndbox if text is None else bndbox.find(tag)]
                self.add_defect(xml_path, where, f'<{tag}> of {name!r} is '
                                + ('missing' if text is None else f'not a number: {text!r}'))
                return None

        x1, y1, x2, y2 = box
        where = lines[bndbox]
        if x2 < x1 or y2 < y1:
            self.add_defect(xml_path, where, f'inverted box of {name!r} (xmax < xmin or '
                            f'ymax < ymin): {box}')
            return None
        if x2 == x1 or y2 == y1:
            self.add_defect(xml_path, where, f'zero-size box of {name!r}: {box}')
            return None
        clipped = [max(x1, 1), max(y1, 1), min(x2, width), min(y2, height)]
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            self.add_defect(xml_path, where, f'box of {name!r} lies outside the '
                            f'{width}x{height} image: {box}')
            return None
        if clipped != box:
            self.add_defect(xml_path, where, f'box of {name!r} reaches outside the '
                            f'{width}x{height} image (VOC pixels are 1..{width}, '
                            f'1..{height}): {box} clipped to {clipped}', error=False)
            self.count('box(es) reaching outside their image, clipped to it',
                       f'{xml_path}:{where}')

        bbox = [v - 1 for v in clipped]  # VOC's 1-based pixels, 0-based as mmdet's
        ignore = False
        if self.bbox_min_size is not None:  # mmdet's filter_cfg['bbox_min_size']
            assert not self.test_mode
            ignore = (bbox[2] - bbox[0] < self.bbox_min_size
                      or bbox[3] - bbox[1] < self.bbox_min_size)
        return dict(ignore_flag=int(bool(difficult) or ignore), bbox=bbox,
                    bbox_label=self.cat2label[name])
