"""COCO-format (JSON) datasets of one's own, as annotation tools export them, for the
tests of ScratchCocoDataset, tools/check_dataset.py and the custom-COCO recipe.

Imported by the tests as ``coco_files`` (pytest puts tests/ on sys.path for its
conftest.py)."""
import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from PIL import Image

CATEGORIES = ('cat', 'dog')
#: file_name -> annotations (category name, [x, y, w, h], iscrowd)
Annotations = Dict[str, List[Tuple[str, List[float], int]]]
TRAIN: Annotations = {
    'a.jpg': [('cat', [50, 60, 150, 240], 0), ('dog', [220, 40, 260, 310], 0)],
    'b.jpg': [('dog', [10, 10, 110, 80], 0), ('dog', [300, 200, 100, 100], 1)],
}
VAL: Annotations = {
    'c.jpg': [('cat', [100, 100, 200, 150], 0)],
    'd.jpg': [('dog', [20, 30, 400, 300], 0), ('cat', [450, 20, 40, 60], 0)],
}


def write_coco(root: Path, split: str = 'train', annotations: Annotations = TRAIN,
               categories: Sequence[str] = CATEGORIES, size=(640, 480),
               images: bool = True, extra: Sequence[dict] = ()) -> Path:
    """``root/annotations/<split>.json`` (category ids from 1, in ``categories``'
    order; ``area`` = w * h) and, with ``images``, ``root/images/<file_name>``.
    ``extra``: raw annotation dicts appended as they are. Returns the JSON's path."""
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    (root / 'images').mkdir(exist_ok=True)
    cat_ids = {name: k for k, name in enumerate(categories, start=1)}
    coco = dict(images=[], annotations=[],
                categories=[dict(id=i, name=n) for n, i in cat_ids.items()])
    for img_id, (file_name, anns) in enumerate(annotations.items(), start=1):
        coco['images'].append(dict(id=img_id, file_name=file_name, width=size[0],
                                   height=size[1]))
        if images:
            Image.new('RGB', tuple(size), (100, 120, 90)).save(root / 'images' / file_name)
        for name, bbox, iscrowd in anns:
            coco['annotations'].append(dict(
                id=len(coco['annotations']) + 1, image_id=img_id,
                category_id=cat_ids[name], bbox=bbox, area=bbox[2] * bbox[3],
                iscrowd=iscrowd))
    coco['annotations'].extend(extra)
    path = root / 'annotations' / f'{split}.json'
    path.write_text(json.dumps(coco, indent=1))
    return path


# ---------------------------------------------------------- a Roboflow-style export
#: Roboflow's categories: its superclass first, with id 0 (the project's name, its
#: supercategory 'none', the supercategory of every other), then the classes, and a
#: stray category of a few boxes.
SUPERCLASS = 'shapes-xyz'
ROBOFLOW_CATEGORIES = (SUPERCLASS, 'circle', 'square', 'triangle', 'star', 'stray')
ROBOFLOW_CLASSES = ('circle', 'square', 'triangle', 'star')
#: The exporter's photos: 2048 x 1371.
PHOTO = (2048, 1371)


def exporter_name(k: int) -> str:
    """A file name as the exporter writes it: the original name, its extension folded
    in, and a hash."""
    return f'img_{k:04d}_jpg.rf.{(k * 0x9E3779B1) % 16 ** 8:08x}.jpg'


def small_objects(k: int, counts: Dict[str, int]) -> List[Tuple[str, List[float], int]]:
    """Small objects (70 to 205 px a side on the photo) spread over photo ``k``:
    ``counts[name]`` of each, in rows."""
    objects = []
    for name, count in counts.items():
        for _ in range(count):
            n = len(objects)
            side = 70 + (17 * n + 29 * k) % 136
            objects.append((name, [110.0 + 290 * (n % 6), 100.0 + 300 * (n // 6),
                                   float(side), float(side + 10 * (n % 3))], 0))
    return objects


#: split folder -> file name -> objects (category name, [x, y, w, h], iscrowd). The
#: per-class counts differ in every split, so that a table shifted by one row is wrong.
ROBOFLOW: Dict[str, Annotations] = {
    'train': {
        exporter_name(1): small_objects(1, dict(circle=3, square=2, triangle=1, star=1)),
        exporter_name(2): small_objects(2, dict(circle=2, square=1, triangle=1, stray=1)),
        exporter_name(3): small_objects(3, dict(square=1, triangle=1, star=1))},
    'valid': {
        exporter_name(4): small_objects(4, dict(circle=2, square=1, star=4)),
        exporter_name(5): small_objects(5, dict(circle=1, triangle=2))},
    'test': {
        exporter_name(6): small_objects(6, dict(circle=1, square=2, triangle=3, star=4))},
}


def write_roboflow(root: Path, splits: Dict[str, Annotations] = ROBOFLOW,
                   json_sizes: Dict[str, Tuple[int, int]] = None) -> Path:
    """A COCO export as Roboflow writes it: ``root/<split>/_annotations.coco.json``
    beside the split's images (real JPEG photos of ``PHOTO`` size), ids from 0, the
    superclass category 0. ``json_sizes``: file name -> the (width, height) its JSON
    entry says instead of the photo's. Returns ``root``."""
    cat_ids = {name: k for k, name in enumerate(ROBOFLOW_CATEGORIES)}
    categories = [dict(id=k, name=name, supercategory='none' if k == 0 else SUPERCLASS)
                  for name, k in cat_ids.items()]
    for split, annotations in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        coco = dict(info=dict(description='Exported from roboflow.com', version='1'),
                    licenses=[dict(id=1, name='CC BY 4.0')], categories=categories,
                    images=[], annotations=[])
        for img_id, (file_name, anns) in enumerate(annotations.items()):
            width, height = (json_sizes or {}).get(file_name, PHOTO)
            coco['images'].append(dict(id=img_id, license=1, file_name=file_name,
                                       width=width, height=height,
                                       date_captured='2026-11-30T10:12:41+00:00'))
            Image.new('RGB', PHOTO, (70 + 20 * img_id, 110, 90)).save(
                root / split / file_name, quality=60)
            for name, bbox, iscrowd in anns:
                coco['annotations'].append(dict(
                    id=len(coco['annotations']), image_id=img_id, category_id=cat_ids[name],
                    bbox=bbox, area=bbox[2] * bbox[3], segmentation=[], iscrowd=iscrowd))
        (root / split / '_annotations.coco.json').write_text(json.dumps(coco))
    return root


def roboflow_config(recipe: Path, dest: Path, root: Path,
                    classes: Sequence[str] = ROBOFLOW_CLASSES) -> Path:
    """The custom-COCO recipe as a user adapts it to the export: ``classes``, and each
    split's JSON and image folder."""
    splits = dict(train='train', val='valid', test='test')
    loaders = '\n'.join(
        f"{loader}_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo, "
        f"ann_file='{folder}/_annotations.coco.json', data_prefix=dict(img='{folder}/')))"
        for loader, folder in splits.items())
    dest.write_text(f"""_base_ = '{recipe.resolve()}'
classes = {tuple(classes)}
metainfo = dict(classes=classes)
data_root = '{root}/'
model = dict(roi_head=dict(bbox_head=dict(num_classes=len(classes))))
{loaders}
val_evaluator = dict(ann_file=data_root + 'valid/_annotations.coco.json')
test_evaluator = dict(ann_file=data_root + 'test/_annotations.coco.json')
""")
    return dest
