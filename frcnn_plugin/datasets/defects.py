"""Defects of a dataset's files: what loading found wrong, where, and how bad.

Our datasets (:class:`ScratchVOCDataset`, :class:`ScratchCocoDataset`, both
:class:`CollectsDefects`) collect every defect while they load, then raise one
:class:`DatasetError` listing the errors (``raise_on_defects=True``, the default, so
training stops before its first step) or keep them in ``dataset.defects``
(``raise_on_defects=False``, which ``tools/check_dataset.py`` uses to print all of them
beside the dataset's statistics).
A warning is a documented, counted accept (a box clipped to its image, the objects of a
class that is not in ``classes``); an error is something the loader cannot use as it
is. Any other dataset is checked from what it loaded by :func:`instance_defects`.
"""
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

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
        super().__init__(*args, **kwargs)

    def add_defect(self, path: str, line: Optional[int], message: str,
                   error: bool = True) -> None:
        self.defects.append(Defect(path, line, message, error))

    def report_defects(self, data_list: List[dict]) -> None:
        """At the end of ``load_data_list``: raise for the errors if told to, or if
        nothing could be loaded (mmengine cannot hold an empty dataset)."""
        if not data_list and not any(d.error for d in self.defects):
            self.add_defect(self.ann_file, None, 'no images')
        if self.raise_on_defects or not data_list:
            raise_for_errors(self.defects)


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
