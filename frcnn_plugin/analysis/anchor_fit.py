"""Whether a dataset's boxes fit the RPN's anchors, before any training: the boxes as the
train pipeline resizes them, against the config's own anchor generator and assigner.

For each (sampled) image of a dataset:

1. the config's train pipeline runs from the step after ``LoadImageFromFile`` up to
   and including its first resize (``Resize``, ``RandomResize``, ...) on the image's
   annotations, with a blank stand-in of the image's size for its pixels (no file is
   decoded): the boxes come out as mmdet's own transforms scale (and clip) them;
2. the anchors are the config's ``model.rpn_head.anchor_generator`` (built through
   the registry: ours or mmdet's, whatever the config says) on the feature maps of
   the resized image, padded as ``data_preprocessor.pad_size_divisor`` pads it, each
   map ``padded size / stride`` cells rounded as the config's backbone (and neck)
   round it: up for ResNet (its stride-2 convolutions) and FPN, down for VGG16 (its
   max-pools), measured once on a blank image (:func:`featmap_roundings`), so that the
   sizes are the backbone's whatever ``pad_size_divisor``; only the anchors the RPN
   trains on count (valid, inside the image by ``train_cfg.rpn.allowed_border``), as
   in ``tools/diagnose.py``;
3. each box's best IoU with them, and whether the config's
   ``model.train_cfg.rpn.assigner`` gives it a positive anchor
   (:func:`.stages.gts_with_positive_anchor`).

What the two numbers mean, for mmdet's ``MaxIoUAssigner`` (and ours): a box whose best
anchor IoU is at least ``pos_iou_thr`` has positive anchors; one below it gets only its
best anchor(s), and only when ``match_low_quality`` is on and that IoU is at least
``min_pos_iou``; otherwise it gets no positive anchor at all, and the RPN is never
trained to propose it. When many boxes are below ``pos_iou_thr``, the anchor scales /
ratios that would give the most of those without a positive anchor one are
suggested, by :func:`.diagnosis.suggest_anchors` (as ``tools/diagnose.py`` suggests
them).

Ignore regions (difficult, crowd) are left out of the counts and given to the assigner
as ignored boxes, as in training. A random resize (``RandomResize``,
``RandomChoiceResize``) is measured at one random draw of its scales per image, and
the report says so.
"""
import copy
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet.registry import MODELS, TASK_UTILS, TRANSFORMS
from mmdet.structures.bbox import get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor

from ..utils.dataset_wrappers import leaves
from ..utils.pipelines import is_load_annotations
from .diagnosis import suggest_anchors
from .stages import best_anchor_ious, gts_with_positive_anchor, image_anchors


@dataclass
class ResizedImage:
    """One image's boxes after the train pipeline's resize and their anchors' fit
    (the fields :func:`.diagnosis.suggest_anchors` re-assigns with)."""
    gt_boxes: Tensor                  # (G, 4) in the resized image
    gt_labels: Tensor                 # (G,)
    ignored: Optional[InstanceData]   # bboxes (I, 4), labels (I,): ignore regions
    featmap_sizes: List[tuple]        # (h, w) per level
    img_meta: dict                    # img_shape, pad_shape
    best_anchor_iou: Tensor           # (G,)
    has_positive_anchor: Tensor       # (G,) bool


def resize_steps(pipeline: Sequence[dict]) -> List[dict]:
    """The steps of a train pipeline after the image is loaded, up to and including
    its first resize (a transform whose type name contains ``Resize``); all of them
    up to ``LoadAnnotations`` when it has no resize."""
    steps = list(pipeline[1:])
    names = [str(t['type']).split('.')[-1] for t in steps]
    last = next((i for i, n in enumerate(names) if 'Resize' in n), None)
    if last is None:
        last = next(i for i, t in enumerate(steps) if is_load_annotations(t))
    return steps[:last + 1]


def featmap_roundings(backbone: dict, neck: Optional[dict],
                      strides: Sequence[tuple]) -> List[str]:
    """How the ``backbone`` (and ``neck``) configs round each feature map's size
    ``padded size / stride``: ``'ceil'`` or ``'floor'`` per level (of ``strides``,
    ``(w, h)`` each), from their output on a blank square image of ``2 * max stride
    + 1`` pixels (odd, so the two roundings differ at every stride). Raises
    ``ValueError`` when the outputs are not one map per stride, each rounded so."""
    size = 2 * max(max(stride) for stride in strides) + 1
    nets = [MODELS.build(dict(copy.deepcopy(cfg), init_cfg=None))
            for cfg in (backbone, neck) if cfg]
    with torch.no_grad():
        feats = nets[0](torch.zeros(1, 3, size, size))
        if len(nets) > 1:
            feats = nets[1](feats)
    if len(feats) != len(strides):
        raise ValueError(f'the backbone makes {len(feats)} feature map(s), the anchor '
                         f'generator has {len(strides)} strides')
    roundings = []
    for feat, (stride_w, stride_h) in zip(feats, strides):
        shape = tuple(feat.shape[-2:])
        if shape == (math.ceil(size / stride_h), math.ceil(size / stride_w)):
            roundings.append('ceil')
        elif shape == (size // stride_h, size // stride_w):
            roundings.append('floor')
        else:
            raise ValueError(f'on a {size}x{size} image the backbone makes a {shape} '
                             f'feature map, neither rounding of {size} / stride '
                             f'{(stride_h, stride_w)}')
    return roundings


class AnchorFit:
    """The anchor fit of a dataset's boxes (see the module's docstring).

    Args:
        pipeline (list[dict]): the train pipeline (its loading step first).
        anchor_generator (dict): ``model.rpn_head.anchor_generator``.
        assigner (dict): ``model.train_cfg.rpn.assigner``.
        allowed_border (float): ``model.train_cfg.rpn.allowed_border`` (-1: all
            anchors).
        pad_size_divisor (int): ``model.data_preprocessor.pad_size_divisor``.
        featmap_rounding (list[str], optional): per anchor level, ``'ceil'`` or
            ``'floor'`` of ``padded size / stride``, as the backbone rounds it
            (:func:`featmap_roundings`). Default: None, ``'ceil'`` at every level.
        max_images (int): at most this many images, evenly spaced through the
            dataset, are measured (all when it has no more). Default: 200.
        suggest_above (float): anchors are suggested when more than this share of the
            boxes have a best anchor IoU under ``pos_iou_thr``. Default: 0.25.
    """

    def __init__(self, pipeline: Sequence[dict], anchor_generator: dict, assigner: dict,
                 allowed_border: float = -1, pad_size_divisor: int = 1,
                 featmap_rounding: Optional[Sequence[str]] = None,
                 max_images: int = 200, suggest_above: float = 0.25) -> None:
        steps = resize_steps(pipeline)
        self.transforms = [TRANSFORMS.build(copy.deepcopy(t)) for t in steps]
        # the type of a random resize, measured at one draw per image; None if none
        names = [str(t['type']).split('.')[-1] for t in steps]
        self.random_resize = next(
            (n for n in names if n.startswith('Random') and 'Resize' in n), None)
        self.anchor_cfg = anchor_generator
        self.anchor_generator = TASK_UTILS.build(copy.deepcopy(anchor_generator))
        self.featmap_rounding = [
            {'ceil': math.ceil, 'floor': math.floor}[r]
            for r in featmap_rounding or ['ceil'] * len(self.anchor_generator.strides)]
        self.assigner = TASK_UTILS.build(copy.deepcopy(assigner))
        self.allowed_border = allowed_border
        self.pad_size_divisor = pad_size_divisor
        self.max_images = max_images
        self.suggest_above = suggest_above
        self._blank: Dict[tuple, np.ndarray] = {}  # stand-in pixels by shape

    @classmethod
    def from_config(cls, cfg, **kwargs) -> 'AnchorFit':
        """From a detector config: the pipeline of the train dataloader's (first)
        dataset, ``model.rpn_head.anchor_generator``, ``model.train_cfg.rpn``.
        Raises ``ValueError`` naming what the config lacks."""
        model = cfg.get('model') or {}
        rpn_head = model.get('rpn_head') or {}
        rpn_train = (model.get('train_cfg') or {}).get('rpn') or {}
        loader = cfg.get('train_dataloader')
        if 'anchor_generator' not in rpn_head or 'assigner' not in rpn_train:
            raise ValueError('the config has no model.rpn_head.anchor_generator and '
                             'model.train_cfg.rpn.assigner')
        if not loader:
            raise ValueError('the config has no train_dataloader')
        pipeline = leaves(loader['dataset'])[0].get('pipeline') or []
        if not any(is_load_annotations(t) for t in pipeline):
            raise ValueError('the train pipeline has no LoadAnnotations step')
        preprocessor = model.get('data_preprocessor') or {}
        strides = TASK_UTILS.build(copy.deepcopy(rpn_head['anchor_generator'])).strides
        rounding = featmap_roundings(model['backbone'], model.get('neck'), strides) \
            if model.get('backbone') else None
        return cls(pipeline, rpn_head['anchor_generator'], rpn_train['assigner'],
                   rpn_train.get('allowed_border', -1),
                   preprocessor.get('pad_size_divisor', 1), rounding, **kwargs)

    def sample(self, num_images: int) -> List[int]:
        """The indices measured: all, or ``max_images`` evenly spaced."""
        if num_images <= self.max_images:
            return list(range(num_images))
        return sorted({round(i * (num_images - 1) / max(self.max_images - 1, 1))
                       for i in range(self.max_images)})

    def resize(self, data_info: dict) -> dict:
        """The train pipeline's steps up to its resize on one data info (a stand-in
        for the pixels): ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``,
        ``img_shape`` as the pipeline makes them."""
        shape = (data_info['height'], data_info['width'], 3)
        if shape not in self._blank:
            self._blank[shape] = np.zeros(shape, np.uint8)
        results = dict(copy.deepcopy(data_info), img=self._blank[shape],
                       img_shape=shape[:2], ori_shape=shape[:2])
        for transform in self.transforms:
            results = transform(results)
        return results

    def image(self, data_info: dict) -> ResizedImage:
        """One image resized, and the fit of its boxes."""
        results = self.resize(data_info)
        boxes = get_box_tensor(results['gt_bboxes']).float().reshape(-1, 4)
        labels = torch.as_tensor(results['gt_bboxes_labels']).long()
        ignore = torch.as_tensor(results['gt_ignore_flags']).bool()
        height, width = results['img_shape'][:2]
        divisor = self.pad_size_divisor
        pad_shape = (math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor)
        featmap_sizes = [(rounded(pad_shape[0] / sh), rounded(pad_shape[1] / sw))
                         for (sw, sh), rounded in zip(self.anchor_generator.strides,
                                                      self.featmap_rounding)]
        img_meta = dict(img_shape=(height, width), pad_shape=pad_shape)
        per_level, inside = image_anchors(self.anchor_generator, featmap_sizes, img_meta,
                                          self.allowed_border)
        anchors = torch.cat(per_level)[inside]
        gt = InstanceData(bboxes=boxes[~ignore], labels=labels[~ignore])
        ignored = InstanceData(bboxes=boxes[ignore], labels=labels[ignore]) \
            if ignore.any() else None
        best, _ = best_anchor_ious(self.assigner.iou_calculator, gt.bboxes, anchors)
        return ResizedImage(
            gt_boxes=gt.bboxes, gt_labels=gt.labels, ignored=ignored,
            featmap_sizes=featmap_sizes, img_meta=img_meta, best_anchor_iou=best,
            has_positive_anchor=gts_with_positive_anchor(self.assigner, anchors, gt, ignored))

    def __call__(self, dataset) -> dict:
        """The fit of ``dataset``'s boxes (a plain mmdet dataset, its data infos in
        the original images' pixels)::

            num_images, measured_images, num_boxes,
            random_resize: the type of the pipeline's random resize (None: none),
            shorter_sides: {label: [shorter side of each box after the resize]},
            pos_iou_thr, min_pos_iou, match_low_quality (the assigner's; None if it
                has no such setting),
            below_pos_iou_thr: boxes whose best anchor IoU is under pos_iou_thr,
            no_positive_anchor: boxes the assigner gives no positive anchor,
            suggested: whether more than suggest_above of the boxes are under
                pos_iou_thr, so that anchors were looked for,
            suggestion: then suggest_anchors' result (None: no added scale or ratio
                gives more boxes a positive anchor, or all have one).
        """
        indices = self.sample(len(dataset))
        images = [self.image(dataset.get_data_info(i)) for i in indices]
        sides: Dict[int, List[float]] = {}
        for image in images:
            wh = image.gt_boxes[:, 2:] - image.gt_boxes[:, :2]  # (G, 2)
            for label, side in zip(image.gt_labels.tolist(), wh.min(dim=1).values.tolist()):
                sides.setdefault(label, []).append(side)
        best = torch.cat([i.best_anchor_iou for i in images]) if images else torch.zeros(0)
        positive = torch.cat([i.has_positive_anchor for i in images]) if images else \
            torch.zeros(0, dtype=torch.bool)
        pos_iou_thr = getattr(self.assigner, 'pos_iou_thr', None)
        below = int((best < pos_iou_thr).sum()) if pos_iou_thr is not None else None
        suggest = below is not None and below > self.suggest_above * len(best)
        suggestion = suggest_anchors(self.anchor_cfg, self.assigner, images,
                                     self.allowed_border) if suggest else None
        return dict(num_images=len(dataset), measured_images=len(images),
                    random_resize=self.random_resize,
                    num_boxes=len(best), shorter_sides=sides, pos_iou_thr=pos_iou_thr,
                    min_pos_iou=getattr(self.assigner, 'min_pos_iou', None),
                    match_low_quality=getattr(self.assigner, 'match_low_quality', None),
                    below_pos_iou_thr=below, no_positive_anchor=int((~positive).sum()),
                    suggested=suggest, suggestion=suggestion)


def share(count: int, total: int) -> str:
    return f'{count} of {total} boxes ({100 * count / total:.1f}%)' if total else \
        f'{count} of {total} boxes'


def fit_lines(fit: dict, label_names: Sequence[str], classes: Sequence[str]) -> List[str]:
    """The report of :meth:`AnchorFit.__call__`: per class of ``classes`` the
    min / median / max shorter side after the resize (``label_names[k]``: the name of
    label ``k``, as the files spell it), then the anchor-fit line and the suggestion."""
    sampled = (f'{fit["measured_images"]} of {fit["num_images"]} images, evenly spaced '
               '(--anchor-fit-images)' if fit['measured_images'] < fit['num_images']
               else f'all {fit["num_images"]} images')
    lines = [f"anchor fit at the train pipeline's resize ({sampled}):"]
    if fit['random_resize']:
        lines[0] = (f"anchor fit at the train pipeline's {fit['random_resize']} ({sampled}; "
                    'one random draw of its scales per image, another run draws others):')
    by_name: Dict[str, List[float]] = {}
    for label, values in fit['shorter_sides'].items():
        by_name.setdefault(label_names[label], []).extend(values)
    width = max(len(n) for n in list(classes) + ['class'])
    lines.append(f'  {"class":<{width}}  shorter side after resize: min / median / max px')
    for name in classes:
        values = by_name.get(name)
        text = (f'{min(values):.0f} / {np.median(values):.0f} / {max(values):.0f}'
                if values else '-')
        lines.append(f'  {name:<{width}}  {text}')
    total = fit['num_boxes']
    if fit['pos_iou_thr'] is None:
        lines.append(f'  no positive anchor: {share(fit["no_positive_anchor"], total)}')
        return lines
    low_quality = (f'at most their best anchor(s) as positives, from min_pos_iou '
                   f'{fit["min_pos_iou"]}' if fit['match_low_quality']
                   else 'no positive anchor (match_low_quality off)')
    lines.append(f'  best anchor IoU under pos_iou_thr {fit["pos_iou_thr"]}: '
                 f'{share(fit["below_pos_iou_thr"], total)} (they get {low_quality})')
    lines.append('  no positive anchor at all (the assigner as in training): '
                 f'{share(fit["no_positive_anchor"], total)}')
    suggestion = fit['suggestion']
    if fit['suggested'] and suggestion is None and fit['no_positive_anchor']:
        lines.append('  no added anchor scale or ratio gives more boxes a positive anchor')
    for step in (suggestion or {}).get('steps', []):
        lines.append(f'  suggested: add {step["add"]}: scales {step["scales"]}, ratios '
                     f'{step["ratios"]} -> no positive anchor: '
                     f'{share(step["no_positive_anchor"], total)}')
    return lines
