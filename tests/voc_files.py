"""VOC-format datasets as a labelling tool writes them (LabelImg's XML layout, tabs,
Windows line ends, id lists with blank lines and a byte-order mark), for the tests of
ScratchVOCDataset, tools/check_dataset.py and the custom recipes; and a recipe config
copied and edited as a user does (``copy_recipe``).

Imported by the tests as ``voc_files`` (pytest puts tests/ on sys.path for its
conftest.py)."""
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from PIL import Image, ImageDraw

#: A published-style set: 4 own classes, 800x600 frames.
CLASSES = ('helmet', 'vest', 'person', 'forklift')
SIZE = (800, 600)
#: id -> objects (name, (xmin, ymin, xmax, ymax) 1-based pixels, difficult)
Objects = List[Tuple[str, Tuple[float, float, float, float], int]]
PUBLISHED: Dict[str, Objects] = {
    'frame_0001': [('person', (101, 81, 300, 560), 0), ('helmet', (150, 82, 240, 150), 0),
                   ('vest', (120, 200, 290, 380), 0)],
    'frame_0002': [('forklift', (400, 200, 790, 590), 0), ('person', (40, 300, 120, 600), 1)],
    'frame_0003': [('person', (500, 100, 700, 580), 0), ('vest', (520, 220, 680, 400), 0),
                   ('helmet', (560, 101, 640, 170), 0)],
    'frame_0004': [('forklift', (1, 1, 380, 420), 0), ('helmet', (600, 50, 660, 100), 0)],
}
SPLITS = {'trainval': ['frame_0001', 'frame_0002', 'frame_0003'], 'test': ['frame_0004']}

OBJECT = """\t<object>
\t\t<name>{name}</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>{difficult}</difficult>
\t\t<bndbox>
\t\t\t<xmin>{box[0]}</xmin>
\t\t\t<ymin>{box[1]}</ymin>
\t\t\t<xmax>{box[2]}</xmax>
\t\t\t<ymax>{box[3]}</ymax>
\t\t</bndbox>
\t</object>
"""


def labelimg_xml(img_id: str, size: Sequence[int], objects: Objects) -> str:
    """LabelImg's annotation of one image. Line 8 is ``<size>``; the first object's
    ``<object>`` is line 14, its ``<difficult>`` line 18, ``<bndbox>`` line 19,
    ``<xmin>`` line 20; each further object starts 12 lines later."""
    head = (f'<annotation>\n\t<folder>JPEGImages</folder>\n\t<filename>{img_id}.jpg'
            f'</filename>\n\t<path>C:\\Users\\labeller\\site\\JPEGImages\\{img_id}.jpg'
            '</path>\n\t<source>\n\t\t<database>Unknown</database>\n\t</source>\n'
            f'\t<size>\n\t\t<width>{size[0]}</width>\n\t\t<height>{size[1]}</height>\n'
            '\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n')
    body = ''.join(OBJECT.format(name=n, box=b, difficult=d) for n, b, d in objects)
    return head + body + '</annotation>\n'


def write_voc(root: Path, annotations: Dict[str, Objects] = PUBLISHED,
              splits: Dict[str, List[str]] = SPLITS, size: Sequence[int] = SIZE,
              newline: str = '\r\n', messy_lists: bool = True) -> Path:
    """A VOC folder as the tool writes it: ``newline`` line ends in every text file;
    with ``messy_lists`` the id lists have a UTF-8 byte-order mark, spaces around every
    other id and a trailing blank line (else one id a line, as mmdet reads them). Each
    image is ``size`` with its objects drawn as filled rectangles. Returns ``root``."""
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for img_id, objects in annotations.items():
        image = Image.new('RGB', tuple(size), (90, 110, 100))
        draw = ImageDraw.Draw(image)
        for k, (_, (x1, y1, x2, y2), _) in enumerate(objects):
            draw.rectangle([x1 - 1, y1 - 1, x2 - 1, y2 - 1], fill=(60 * k % 255, 200, 40))
        image.save(root / 'JPEGImages' / f'{img_id}.jpg')
        text = labelimg_xml(img_id, size, objects).replace('\n', newline)
        (root / 'Annotations' / f'{img_id}.xml').write_bytes(text.encode())
    for split, ids in splits.items():
        if messy_lists:
            lines = [f' {i}  ' if k % 2 else i for k, i in enumerate(ids)] + ['', '']
            text = b'\xef\xbb\xbf' + newline.join(lines).encode()
        else:
            text = ''.join(i + newline for i in ids).encode()
        (root / 'ImageSets/Main' / f'{split}.txt').write_bytes(text)
    return root


def copy_recipe(recipe: Path, dest: Path, edits: Dict[str, str]) -> Path:
    """Copy a config as a user does, editing lines: ``edits`` maps each original line
    (which must be there) to its new text; a relative ``_base_`` is made absolute."""
    text = recipe.read_text()
    base = next(line for line in text.splitlines() if line.startswith('_base_ = '))
    edits = {base: f"_base_ = '{(recipe.parent / base.split(chr(39))[1]).resolve()}'",
             **edits}
    for old, new in edits.items():
        assert old in text.splitlines(), old
        text = text.replace(old, new)
    dest.write_text(text)
    return dest
