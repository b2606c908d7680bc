"""KittiTiny: KITTI object-detection labels as an MMDetection 3.x dataset.

The MMDetection KittiTiny tutorial ('Train A Detector on A Customized Dataset';
docs/references.md) wrote this as an mmdet 2.x ``CustomDataset``; this is the same
reading for mmdet 3.x's ``BaseDetDataset``.

Layout (the official ``kitti_tiny.zip``)::

    data_root/
        train.txt, val.txt          one image id per line ("000000")
        training/image_2/ID.jpeg
        training/label_2/ID.txt     KITTI label lines, 15 space-separated fields:
            type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y

Each label line becomes one instance. Types in ``metainfo['classes']`` (Car,
Pedestrian, Cyclist by default) are ground truth; every other type (DontCare, Van,
Truck, ...) is kept as an ignore region (``ignore_flag=1``, ``bbox_label=-1`` as in
the tutorial) so the pipeline hands it to the heads as ``ignored_instances``; the counts of
each are logged when the dataset loads. Blank lines are skipped. Zero-width or
zero-height boxes (x2 == x1) are kept as given; anything else malformed raises an
error naming the file and line.
"""
import os.path as osp
from collections import Counter
from typing import List, Tuple

from mmdet.datasets import BaseDetDataset, XMLDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path, get_text, list_from_file
from mmengine.logging import print_log
from PIL import Image

#: Number of fields in a KITTI training label line.
KITTI_LABEL_FIELDS = 15


def parse_kitti_label(text: str, path: str) -> List[Tuple[str, List[float]]]:
    """Parse a KITTI ``label_2`` file into ``[(type, [x1, y1, x2, y2]), ...]``.

    Raises:
        ValueError: ``path:line: reason`` for a wrong field count, a non-numeric
            box coordinate, or a box with x2 < x1 or y2 < y1.
    """
    objects = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != KITTI_LABEL_FIELDS:
            raise ValueError(f'{path}:{lineno}: expected {KITTI_LABEL_FIELDS} '
                             f'fields (KITTI label), got {len(fields)}: {line!r}')
        try:
            x1, y1, x2, y2 = (float(v) for v in fields[4:8])
        except ValueError:
            raise ValueError(f'{path}:{lineno}: box fields 5-8 must be numbers, '
                             f'got {fields[4:8]}') from None
        if x2 < x1 or y2 < y1:
            raise ValueError(f'{path}:{lineno}: box has x2 < x1 or y2 < y1: '
                             f'{[x1, y1, x2, y2]}')
        objects.append((fields[0], [x1, y1, x2, y2]))
    return objects


@DATASETS.register_module()
class KittiTinyDataset(BaseDetDataset):
    """KITTI-format detection dataset (KittiTiny, the MMDetection KittiTiny tutorial's).

    Args:
        img_suffix (str): image file extension; ``.jpeg`` in KittiTiny, ``.png`` in
            the full KITTI release. Default: ``'.jpeg'``.
        data_prefix (dict): ``img`` is the image folder; ``ann`` the label folder,
            by default the ``label_2`` folder beside ``img``.
        Everything else as :class:`mmdet.datasets.BaseDetDataset`
        (``filter_cfg`` as :class:`mmdet.datasets.XMLDataset`).
    """

    METAINFO = {
        'classes': ('Car', 'Pedestrian', 'Cyclist'),
        'palette': [(106, 0, 228), (119, 11, 32), (165, 42, 42)],
    }

    # mmdet's own filter for datasets like this one (filter_empty_gt, min_size).
    filter_data = XMLDataset.filter_data

    def __init__(self, *args, img_suffix: str = '.jpeg', **kwargs) -> None:
        self.img_suffix = img_suffix
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix['img']
        label_dir = self.data_prefix.get('ann') or osp.join(
            osp.dirname(img_dir.rstrip('/')), 'label_2')
        cat2label = {name: i for i, name in enumerate(self.metainfo['classes'])}
        ids = list_from_file(self.ann_file, backend_args=self.backend_args)

        counts = Counter()
        data_list = []
        for lineno, img_id in enumerate(ids, start=1):
            img_id = img_id.strip()
            if not img_id:
                continue
            where = f'{self.ann_file}:{lineno}'
            img_path = osp.join(img_dir, img_id + self.img_suffix)
            label_path = osp.join(label_dir, img_id + '.txt')
            width, height = self._image_size(img_path, where)
            try:
                text = get_text(label_path, backend_args=self.backend_args)
            except FileNotFoundError:
                raise FileNotFoundError(f'{where}: label file of image {img_id!r} '
                                        f'not found: {label_path}') from None

            instances = []
            for obj_type, bbox in parse_kitti_label(text, label_path):
                label = cat2label.get(obj_type, -1)
                instances.append(dict(bbox=bbox, bbox_label=label,
                                      ignore_flag=int(label < 0)))
                counts[obj_type] += 1
            data_list.append(dict(img_id=img_id, img_path=img_path,
                                  width=width, height=height, instances=instances))

        self.type_counts = counts
        ignored = {t: n for t, n in sorted(counts.items()) if t not in cat2label}
        kept = {t: counts[t] for t in cat2label}
        print_log(f'{type(self).__name__}({self.ann_file}): {len(data_list)} images, '
                  f'ground truth {kept}, ignore regions {ignored}', logger='current')
        return data_list

    def _image_size(self, img_path: str, where: str) -> Tuple[int, int]:
        """(width, height) read from the image header, without decoding the pixels."""
        try:
            with get_local_path(img_path, backend_args=self.backend_args) as local:
                with Image.open(local) as img:
                    return img.size
        except FileNotFoundError:
            raise FileNotFoundError(f'{where}: image not found: {img_path}') from None
