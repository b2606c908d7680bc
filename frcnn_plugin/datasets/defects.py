"""Defects of a dataset's files: what loading found wrong, where, and how bad.

Our datasets (:class:`ScratchVOCDataset`, :class:`ScratchCocoDataset`, both
:class:`CollectsDefects`) collect every defect while they load, then raise one
:class:`DatasetError` listing the errors (``raise_on_defects=True``, the default, so
training stops before its first step) or keep them in ``dataset.defects``
(``raise_on_defects=False``, which ``tools/check_dataset.py`` uses to print all of them
beside the dataset's statistics).
A warning is a documented, counted accept (a box clipped to its image, the objects of a
class that is not in ``classes``, a class without objects); an error is something the
loader cannot use as it is. Warnings of one kind are also counted in the log at load,
one line per kind with its count and an example (:meth:`CollectsDefects.count`), so
that a training log accounts for every box skipped or changed. Any other dataset is
checked from what it loaded by :func:`instance_defects`.
"""
import logging
import math
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from mmengine.fileio import get_local_path
from mmengine.logging import print_log
from PIL import Image

#: EXIF orientations that turn the image a quarter (transposed, rotated 90 or 270).
QUARTER_TURNS = (5, 6, 7, 8)

#: The marker that ends a complete file of each format, after its pixel data: JPEG's
#: end-of-image. (PIL reads a PNG to its end for its EXIF, and raises when it is cut.)
END_MARKERS = {'JPEG': b'\xff\xd9', 'MPO': b'\xff\xd9'}

#: How many errors a :class:`DatasetError` message lists.
MAX_SHOWN = 20


class Defect(NamedTuple):
    """One defect: ``path:line: message`` (``path: message`` without a line)."""
    path: str
    line: Optional[int]
    message: str
    error: bool = True

    def __str__(self) -> str:
        where = self.path if self.line is None else f'{self.path}:{self.line}'
        return f'{where}: {self.message}'


class DatasetError(ValueError):
    """A dataset's files have errors: the first ``max_shown`` of them, one a line.

    The message starts with the first error's ``path:line:``; ``defects`` holds them all.
    """

    def __init__(self, defects: Sequence[Defect], max_shown: int = MAX_SHOWN) -> None:
        self.defects = list(defects)
        lines = [str(d) for d in self.defects[:max_shown]]
        if len(self.defects) > max_shown:
            lines.append(f'... {len(self.defects)} errors in all, the first {max_shown} '
                         'shown; python tools/check_dataset.py CONFIG lists every one')
        super().__init__('\n'.join(lines))


def raise_for_errors(defects: Sequence[Defect]) -> None:
    """Raise :class:`DatasetError` if any of ``defects`` is an error."""
    errors = [d for d in defects if d.error]
    if errors:
        raise DatasetError(errors)


class CollectsDefects:
    """The defect reporting of our datasets, a mixin before the mmdet dataset class.

    Args:
        raise_on_defects (bool): after loading, raise :class:`DatasetError` listing the
            errors (default). False keeps them in ``self.defects`` and loads what is
            usable (``tools/check_dataset.py``).
        check_images (bool): check each image file at load (what is checked is the
            dataset's to say). Default: True.
    """

    def __init__(self, *args, raise_on_defects: bool = True, check_images: bool = True,
                 **kwargs) -> None:
        self.raise_on_defects = raise_on_defects
        self.check_images = check_images
        self.defects: List[Defect] = []
        # kind -> [count, example] of the warnings counted in the log (see count())
        self.counted: Dict[str, list] = {}
        super().__init__(*args, **kwargs)

    def add_defect(self, path: str, line: Optional[int], message: str,
                   error: bool = True) -> None:
        self.defects.append(Defect(path, line, message, error))

    @property
    def label_names(self) -> Tuple[str, ...]:
        """The name of each label, as the annotation files spell it (``bbox_label``
        ``k`` is ``label_names[k]``): ``classes`` here, as mmdet's ``XMLDataset``
        numbers them; a dataset that numbers labels otherwise says so."""
        return tuple(self.metainfo['classes'])

    def count(self, kind: str, example: str) -> None:
        """One more warning of ``kind`` (e.g. ``'box(es) outside their image, skipped'``)
        for the log at load; ``example`` names the first one."""
        if kind not in self.counted:
            self.counted[kind] = [0, example]
        self.counted[kind][0] += 1

    def report_defects(self, data_list: List[dict]) -> None:
        """At the end of ``load_data_list``: the classes without objects, and one log
        line per counted kind of warning; then raise for the errors if told to, or if
        nothing could be loaded (mmengine cannot hold an empty dataset)."""
        self._check_empty_classes(data_list)
        for kind, (number, example) in self.counted.items():
            print_log(f'{type(self).__name__}: {self.ann_file}: {number} {kind} '
                      f'(e.g. {example})', logger='current', level=logging.WARNING)
        if not data_list and not any(d.error for d in self.defects):
            self.add_defect(self.ann_file, None, 'no images')
        if self.raise_on_defects or not data_list:
            raise_for_errors(self.defects)

    def filter_data(self) -> List[dict]:
        """The dataset's ``filter_cfg`` filtering; an error when it leaves no image
        (mmengine cannot hold an empty dataset, and would fail with a traceback)."""
        data_list = super().filter_data()
        if self.data_list and not data_list:
            raise DatasetError([Defect(
                self.ann_file, None, f'filter_cfg {self.filter_cfg} leaves none of the '
                f'{len(self.data_list)} images: none has an object of classes '
                f'{tuple(self.metainfo["classes"])} (or every image is under min_size)')])
        return data_list

    def _check_empty_classes(self, data_list: List[dict]) -> None:
        """A warning, logged, for each class of ``classes`` that labels no object of
        ``data_list`` (ignore regions are no object): the head would learn a class
        that is never a positive. A class that labels nothing at all (no category of
        that name), or a dataset without images, has its error already."""
        if not data_list:
            return
        names = self.label_names
        objects = Counter(names[inst['bbox_label']] for info in data_list
                          for inst in info.get('instances', []) if not inst['ignore_flag'])
        for name in self.metainfo['classes']:
            if name in names and not objects[name]:
                message = (f'class {name!r} has no objects: the head would learn a class '
                           'that is never a positive')
                self.add_defect(self.ann_file, None, message, error=False)
                print_log(f'{type(self).__name__}: {self.ann_file}: {message}',
                          logger='current', level=logging.WARNING)


def image_size(img_path: str, backend_args: Optional[dict] = None) -> Tuple[int, int]:
    """``(width, height)`` of an image as the pipeline decodes it, read from its header
    without decoding the pixels (0.2 ms for a 45 kB JPEG, 5 ms for a 2.5 MB one: a JPEG
    is read to its end for its end marker): the header's size, turned a
    quarter when its EXIF orientation says so, as OpenCV's decoder (mmcv's
    ``LoadImageFromFile``) turns the pixels. Raises ``FileNotFoundError``, or
    ``OSError`` (``PIL.UnidentifiedImageError`` among them) for a file that is no image
    or a JPEG / PNG cut short (a JPEG without its end-of-image marker after the pixel
    data: OpenCV cannot decode it, and ``LoadImageFromFile`` would stop training at
    that image).
    """
    with get_local_path(img_path, backend_args=backend_args) as local:
        with Image.open(local) as img:
            width, height = img.size
            if img.getexif().get(0x0112) in QUARTER_TURNS:  # 0x0112: Orientation
                width, height = height, width
            end_marker = END_MARKERS.get(img.format)
            data_start = img.tile[0][2] if img.tile else 0  # offset of the pixel data
        if end_marker is not None:
            with open(local, 'rb') as f:
                f.seek(data_start)
                if end_marker not in f.read():
                    raise OSError(f'truncated {img.format} file: no end marker after its '
                                  'pixel data')
    return width, height


def box_defect(bbox: Sequence[float], width: int, height: int
               ) -> Optional[Tuple[str, bool]]:
    """What is wrong with a 0-based ``[x1, y1, x2, y2]`` box in a ``width x height``
    image, as ``(message, is_error)``, or None.

    Errors: a coordinate that is not a finite number, an inverted box (x2 < x1 or
    y2 < y1), zero width or height (it overlaps no anchor: a target never learnt).
    Warning: a box reaching outside the image (the pipeline's Resize clips it).
    """
    if len(bbox) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v)
                                 for v in bbox):
        return f'box is not 4 finite numbers: {list(bbox)}', True
    x1, y1, x2, y2 = bbox
    if x2 < x1 or y2 < y1:
        return f'inverted box (x2 < x1 or y2 < y1): {list(bbox)}', True
    if x2 == x1 or y2 == y1:
        return f'zero-size box: {list(bbox)}', True
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        return f'box reaches outside the {width}x{height} image: {list(bbox)}', False
    return None


def instance_defects(dataset) -> List[Defect]:
    """Defects of the instances of any mmdet detection dataset, read back through
    ``get_data_info``: its boxes (:func:`box_defect`) and labels that are no class.

    The dataset loaded them already, so each defect names the image (``img_path``).
    """
    num_classes = len(dataset.metainfo['classes'])
    defects = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        for inst in info.get('instances', []):
            defect = box_defect(inst['bbox'], info['width'], info['height'])
            label = inst['bbox_label']
            if defect is None and not inst.get('ignore_flag') and not (
                    0 <= label < num_classes):
                defect = f'label {label} is not a class index (0..{num_classes - 1})', True
            if defect is not None:
                defects.append(Defect(info['img_path'], None, *defect))
    return defects
