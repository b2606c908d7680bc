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
