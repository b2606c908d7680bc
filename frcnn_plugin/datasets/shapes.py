"""Shapes: a synthetic detection set that the tutorials' model learns from scratch on a CPU.

The classic sanity check for a two-stage detector (matterport's Mask R-CNN ships one as
its first sample): coloured circles, squares and triangles on textured backgrounds, in
PASCAL VOC layout so that mmdet's own ``VOCDataset`` and ``VOCMetric`` read it, exactly
as the custom-VOC recipe (``configs/examples/frcnn_custom_voc.py``) reads your data::

    <out>/JPEGImages/<id>.jpg              192 x 192 RGB, JPEG quality 90
    <out>/Annotations/<id>.xml             VOC XML, one <object> per shape
    <out>/ImageSets/Main/{train,val}.txt   the ids of each split

Each image holds 0 to 8 shapes (about one image in ten none; 4 on average, as the
visibility rules below turn some away). A shape is a circle, a square or an
equilateral-ish triangle, stretched to an aspect ratio between 1:2 and 2:1
(so circles include ellipses and squares rectangles), rotated by any angle, sized from
16 to 96 pixels (the geometric mean of its sides, log-uniform: one stride-16 cell to half
the image), in a colour that stands out from the background under it. Shapes may
overlap (a later one covers an earlier one) and may leave the image. Backgrounds are a
two-colour gradient with low-frequency blotches, a few clutter lines and pixel noise.

The annotations follow the VOC guidelines:

- ``bndbox``: the extent of the shape's *visible* pixels, 1-based and inclusive
  (mmdet's ``VOCDataset`` subtracts 1);
- ``truncated``: 1 when the shape extends past the image border;
- ``occluded``: 1 when a later shape covers part of it;
- ``difficult``: 1 when less than ``DIFFICULT_VISIBLE`` of the shape is visible (cut by
  the border and covered together); mmdet turns these into ignore regions, neither
  trained on nor counted by the metric, as in VOC.

A shape that would leave an earlier one (or itself) less than ``MIN_VISIBLE`` visible is
placed again. Every image is drawn from its own random stream, seeded by ``(seed, split,
index)``: the same seed gives byte-identical files, the first ``n`` images of a split do
not depend on how many are asked for, and another seed gives fresh images of the same
distribution.
"""
import math
import multiprocessing
from pathlib import Path
from typing import List, Sequence

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ('circle', 'square', 'triangle')
IMAGE_SIZE = 192  # square images: 12 x 12 cells at stride 16
MIN_SIZE, MAX_SIZE = 16, 96  # shape size: sqrt(width * height) before rotation
MAX_ASPECT = 2.0  # width / height between 1 / MAX_ASPECT and MAX_ASPECT
# Up to 8 shapes: twice the objects that 4 give for the same compute, which is what
# makes the tutorials' model learn the shapes from scratch in minutes (docs/learning.md).
MAX_SHAPES = 8
EMPTY_FRACTION = 0.1  # images with no shape
MIN_VISIBLE = 0.4  # a shape keeps at least this fraction of its pixels visible
DIFFICULT_VISIBLE = 0.6  # below this visible fraction a shape is `difficult`
OCCLUDED_FRACTION = 0.02  # covered beyond this: `occluded`
MIN_BOX_SIDE = 8  # each side of a visible box, in pixels
MIN_CONTRAST = 80.0  # RGB distance between a shape's colour and the background under it
SUPERSAMPLE = 4  # shapes are drawn at 4x and averaged down: anti-aliased edges
JPEG_QUALITY = 90
# Bumped whenever the same seed starts giving other files (tools/prepare_data.py keeps
# it in the data's stamp, so that data of an older generator is not taken for current).
VERSION = 2
SPLITS = ('train', 'val')


def shape_polygon(label: int, width: float, height: float, angle: float,
                  cx: float, cy: float) -> np.ndarray:
    """``(K, 2)`` vertices (x, y) of a shape of ``CLASSES[label]`` of size ``width x
    height``, rotated by ``angle`` radians about its centre ``(cx, cy)``."""
    if CLASSES[label] == 'circle':
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        unit = np.stack([np.cos(t), np.sin(t)], 1)
    elif CLASSES[label] == 'square':
        unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    else:  # triangle: apex up, base down; centred on its box
        unit = np.array([[0, -1], [1, 1], [-1, 1]], dtype=float)
    points = unit * [width / 2, height / 2]  # [K, 2]
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    return points @ rotation.T + [cx, cy]


def shape_alpha(polygon: np.ndarray, size: int) -> np.ndarray:
    """Coverage in [0, 1] of each pixel of a ``size x size`` image by ``polygon``:
    drawn at ``SUPERSAMPLE`` times the resolution and averaged down (only within the
    polygon's bounding box: the rest is 0)."""
    alpha = np.zeros((size, size))
    x0, y0 = np.clip(np.floor(polygon.min(0)).astype(int), 0, size)
    x1, y1 = np.clip(np.ceil(polygon.max(0)).astype(int) + 1, 0, size)
    if x1 <= x0 or y1 <= y0:
        return alpha  # wholly outside the image
    big = Image.new('L', (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    ImageDraw.Draw(big).polygon([tuple(p) for p in polygon * SUPERSAMPLE], fill=255)
    box = big.crop((x0 * SUPERSAMPLE, y0 * SUPERSAMPLE, x1 * SUPERSAMPLE, y1 * SUPERSAMPLE))
    small = box.resize((x1 - x0, y1 - y0), Image.Resampling.BOX)
    alpha[y0:y1, x0:x1] = np.asarray(small, dtype=np.float64) / 255.0
    return alpha


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size, 3)`` float RGB: a two-colour gradient at a random angle, plus
    low-frequency blotches and a few clutter lines."""
    c0, c1 = rng.uniform(0, 255, (2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys)
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)  # [H, W] in [0, 1]
    img = c0 + (c1 - c0) * ramp[..., None]  # [H, W, 3]
    # Blotches: a coarse random grid, upsampled smoothly.
    cells = int(rng.integers(3, 9))
    coarse = rng.normal(0, rng.uniform(5, 30), (cells, cells, 3))
    for channel in range(3):
        layer = Image.fromarray(coarse[..., channel].astype(np.float32), mode='F')
        img[..., channel] += np.asarray(layer.resize((size, size), Image.Resampling.BICUBIC))
    # Clutter: thin lines that are not objects.
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 4))):
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 4)))
    return np.asarray(canvas, dtype=np.float64)


def contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random RGB colour at least ``MIN_CONTRAST`` from ``under`` (the mean background
    colour beneath the shape), or the farthest of 20 tries."""
    best, best_distance = None, -1.0
    for _ in range(20):
        colour = rng.uniform(0, 255, 3)
        distance = float(np.linalg.norm(colour - under))
        if distance >= MIN_CONTRAST:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best


def visible_fractions(masks: List[np.ndarray], full_areas: List[float]) -> List[float]:
    """For each mask (drawing order, later on top): its uncovered pixels over its full
    area (out-of-image parts included)."""
    fractions = []
    for i, mask in enumerate(masks):
        covered = np.zeros_like(mask)
        for later in masks[i + 1:]:
            covered |= later
        fractions.append(float((mask & ~covered).sum()) / full_areas[i])
    return fractions


def random_image(rng: np.random.Generator, size: int = IMAGE_SIZE):
    """One image and its objects: ``(uint8 [size, size, 3] RGB, objects)``, each object
    a dict of ``name, box (x1, y1, x2, y2 exclusive, pixels), truncated, occluded,
    difficult``."""
    img = background(rng, size)
    num_shapes = 0 if rng.uniform() < EMPTY_FRACTION else int(rng.integers(1, MAX_SHAPES + 1))
    labels, alphas, masks, full_areas, truncated = [], [], [], [], []
    for _ in range(num_shapes):
        for _attempt in range(20):
            label = int(rng.integers(len(CLASSES)))
            side = math.exp(rng.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE)))
            aspect = math.exp(rng.uniform(-math.log(MAX_ASPECT), math.log(MAX_ASPECT)))
            width, height = side * math.sqrt(aspect), side / math.sqrt(aspect)
            angle = rng.uniform(0, 2 * np.pi)
            cx, cy = rng.uniform(0, size, 2)
            polygon = shape_polygon(label, width, height, angle, cx, cy)
            # Its full area, in pixels, counting what lies outside the image.
            x, y = polygon[:, 0], polygon[:, 1]
            full_area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
            alpha = shape_alpha(polygon, size)
            mask = alpha > 0.5
            if mask.sum() < MIN_VISIBLE * full_area:
                continue  # mostly outside the image
            fractions = visible_fractions(masks + [mask], full_areas + [full_area])
            if min(fractions) < MIN_VISIBLE:
                continue  # it would hide an earlier shape (too much)
            labels.append(label)
            alphas.append(alpha)
            masks.append(mask)
            full_areas.append(full_area)
            truncated.append(int(polygon.min() < 0 or polygon.max() > size))
            break
    for alpha, mask in zip(alphas, masks):
        colour = contrasting_colour(rng, img[mask].mean(0))
        # Blended where the shape covers anything: elsewhere alpha = 0 leaves img as is.
        rows, cols = np.nonzero(alpha.any(1))[0], np.nonzero(alpha.any(0))[0]
        window = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        a = alpha[window][..., None]  # [h, w, 1]
        img[window] = img[window] * (1 - a) + colour * a
    img += rng.normal(0, rng.uniform(2, 12), img.shape)  # pixel noise, shapes included

    objects = []
    for i, (label, mask) in enumerate(zip(labels, masks)):
        covered = np.zeros_like(mask)
        for later in masks[i + 1:]:
            covered |= later
        visible = mask & ~covered
        ys, xs = np.nonzero(visible)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        if min(box[2] - box[0], box[3] - box[1]) < MIN_BOX_SIDE:
            continue  # a sliver: not annotated, and too small to be seen
        fraction = visible.sum() / full_areas[i]
        objects.append(dict(
            name=CLASSES[label], box=box,
            truncated=truncated[i],
            occluded=int((mask & covered).sum() > OCCLUDED_FRACTION * mask.sum()),
            difficult=int(fraction < DIFFICULT_VISIBLE)))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), objects


def voc_xml(image_id: str, size: int, objects: Sequence[dict]) -> str:
    """The VOC annotation of one image (1-based inclusive pixel boxes)."""
    lines = ['<annotation>', '\t<folder>shapes</folder>',
             f'\t<filename>{image_id}.jpg</filename>',
             f'\t<size><width>{size}</width><height>{size}</height><depth>3</depth></size>',
             '\t<segmented>0</segmented>']
    for obj in objects:
        x1, y1, x2, y2 = obj['box']
        lines += ['\t<object>', f"\t\t<name>{obj['name']}</name>",
                  '\t\t<pose>Unspecified</pose>',
                  f"\t\t<truncated>{obj['truncated']}</truncated>",
                  f"\t\t<occluded>{obj['occluded']}</occluded>",
                  f"\t\t<difficult>{obj['difficult']}</difficult>",
                  f'\t\t<bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>'
                  f'<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>',
                  '\t</object>']
    lines.append('</annotation>')
    return '\n'.join(lines) + '\n'


def write_image(out: Path, seed: int, split_index: int, index: int) -> int:
    """Draw image ``index`` of split ``SPLITS[split_index]`` from its own random stream
    and write its JPEG and VOC XML under ``out``; returns its number of objects."""
    rng = np.random.default_rng([seed, split_index, index])
    image, objects = random_image(rng)
    image_id = f'{SPLITS[split_index]}_{index:06d}'
    Image.fromarray(image).save(out / 'JPEGImages' / f'{image_id}.jpg', quality=JPEG_QUALITY)
    (out / 'Annotations' / f'{image_id}.xml').write_text(voc_xml(image_id, IMAGE_SIZE, objects))
    return len(objects)


def write_shapes(out: Path, seed: int = 0, num_train: int = 2500, num_val: int = 300,
                 processes: int = 1) -> dict:
    """Write the set under ``out`` (created) in VOC layout; returns the number of images
    and objects per split. Ids are ``<split>_<index>``, e.g. ``train_000041``.

    ``processes > 1`` draws the images in that many forked processes: the same files,
    as each image has its own random stream."""
    out = Path(out)
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
        (out / sub).mkdir(parents=True, exist_ok=True)
    numbers = (num_train, num_val)
    jobs = [(out, seed, split_index, index)
            for split_index, number in enumerate(numbers) for index in range(number)]
    if processes > 1:
        with multiprocessing.get_context('fork').Pool(processes) as pool:
            num_objects = pool.starmap(write_image, jobs, chunksize=16)
    else:
        num_objects = [write_image(*job) for job in jobs]
    counts = {}
    for split_index, (split, number) in enumerate(zip(SPLITS, numbers)):
        ids = [f'{split}_{index:06d}' for index in range(number)]
        (out / 'ImageSets' / 'Main' / f'{split}.txt').write_text(''.join(i + '\n' for i in ids))
        first = sum(numbers[:split_index])
        counts[split] = dict(images=number, objects=sum(num_objects[first:first + number]))
    return counts
