"""What each step of Faster R-CNN does to one image, as the tutorials walk through it:
the logic of ``tools/explain.py``.

The tutorials and their short names are those of docs/references.md; the numbers
compared come from the step-by-step PyTorch tutorial, the Korean walkthrough (its zebra
image, its sections '1. Feature extraction by pre-trained VGG16' to '8. Fast R-CNN' and
its figures 1 to 9) and the PyTorch practice notebook.
Every number and box comes from the detector the config builds, run on the image as
the test pipeline prepares it: :mod:`.stages` calls its modules, :mod:`.drawing` draws
what they return, and :class:`Report` collects the lines of ``summary.txt`` and the
pictures. :func:`explain` runs the steps in order; each ``step_*`` function is one
section of the summary.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch
from mmdet.structures.bbox import bbox2roi
from mmengine.config import Config, ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from ..utils.dataset_wrappers import leaves
from ..utils.detector import load_detector
from ..utils.pipelines import inference_pipeline
from . import drawing, stages
from .ground_truth import GroundTruth, read_ground_truth

#: The tutorials' setting (``--tutorial-setting``): 800 x 800, VGG16 conv5_3, 9 anchors.
TUTORIAL_IMAGE_SIZE = (800, 800)
TUTORIAL_ANCHORS = dict(strides=[16], scales=[8, 16, 32], ratios=[0.5, 1.0, 2.0],
                        center_offset=0.5)
#: The Korean walkthrough's zebra boxes in the 800 x 800 frame and the torchvision
#: practice notebook's best anchor IoUs for them.
ZEBRA_BOXES = '89,469,249,644;238,417,415,630;435,419,580,634;617,462,765,637'
ZEBRA_BEST_IOUS = (0.5851, 0.5753, 0.5255, 0.6326)


@dataclass
class Options:
    """What ``tools/explain.py`` draws and how (its flags)."""
    top_n: int = 50           # proposals drawn
    num_rois: int = 4         # RoIs in the feature grids
    num_channels: int = 8     # channels per RoI in the feature grid
    score_thr: float = 0.3    # detections drawn
    seed: int = 0             # torch's random seed for the init and the samplers


# ----------------------------------------------------------------------- setup
def apply_tutorial_setting(cfg: Config) -> None:
    """The tutorials' setting as config overrides of the model and the test pipeline:
    VGG16 conv5_3 (stride 16, 512 channels; the config's VGG16 weights and freezing if
    it has one), anchors of scales 8 / 16 / 32 and ratios 0.5 / 1 / 2 centred in their
    cell, cross-boundary anchors ignored, the image resized to 800 x 800 without
    keeping its aspect ratio (in every dataset of the test dataloader)."""
    model = cfg.model
    backbone = model.backbone
    if backbone.type.split('.')[-1] == 'ScratchVGG16':  # the config's weights and freezing
        model.backbone = ConfigDict(type='ScratchVGG16', init_cfg=backbone.get('init_cfg'),
                                    frozen_stages=backbone.get('frozen_stages', -1))
    else:  # another backbone: a VGG16 with torchvision's random initialisation
        model.backbone = ConfigDict(type='ScratchVGG16')
    model.pop('neck', None)
    model.data_preprocessor.pad_size_divisor = 16
    model.rpn_head.in_channels = 512
    model.rpn_head.anchor_generator = ConfigDict(
        type=model.rpn_head.anchor_generator.type, **TUTORIAL_ANCHORS)
    model.train_cfg.rpn.allowed_border = 0
    model.roi_head.bbox_roi_extractor.featmap_strides = [16]
    model.roi_head.bbox_roi_extractor.out_channels = 512
    model.roi_head.bbox_head.in_channels = 512
    for dataset in leaves(cfg.test_dataloader.dataset):
        pipeline = [t for t in dataset.pipeline if str(t['type']).split('.')[-1] != 'Resize']
        pipeline.insert(1, dict(type='Resize', scale=TUTORIAL_IMAGE_SIZE, keep_ratio=False))
        dataset.pipeline = pipeline


def load_config(config: str, tutorial_setting: bool = False,
                cfg_options: Optional[dict] = None) -> Config:
    """The config file, with the tutorials' setting if asked, then ``cfg_options``."""
    cfg = Config.fromfile(config)
    if tutorial_setting:
        apply_tutorial_setting(cfg)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


@dataclass
class Sample:
    """The image as the detector sees it."""
    inputs: Tensor          # (1, 3, H_pad, W_pad) normalised
    data_samples: list      # [DetDataSample] with the image's metainfo
    picture: np.ndarray     # (H, W, 3) RGB uint8 resized image, for drawing
    img_meta: dict

    @property
    def pad_shape(self):
        return tuple(self.inputs.shape[-2:])

    @property
    def frame(self) -> drawing.Frame:
        return drawing.Frame(self.picture, self.pad_shape)


def prepare(cfg, model, image: str) -> Sample:
    """Test pipeline (without annotations) + the model's data preprocessor."""
    from mmcv.transforms import Compose
    packed = Compose(inference_pipeline(cfg))(dict(img_path=image, img_id=0))
    data = model.data_preprocessor(
        dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]), False)
    picture = packed['inputs'][[2, 1, 0]].permute(1, 2, 0).numpy()  # BGR -> RGB
    return Sample(data['inputs'], data['data_samples'], picture,
                  data['data_samples'][0].metainfo)


class Report:
    """``summary.txt`` lines and the pictures written to ``out_dir``."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.lines: List[str] = []
        self.pictures: List[str] = []

    def add(self, key: str, value) -> None:
        self.lines.append(f'{key}: {value}')

    def section(self, title: str) -> None:
        self.lines.append(f'\n== {title}')

    def save(self, fig, name: str) -> None:
        fig.savefig(osp.join(self.out_dir, name), dpi=80, bbox_inches='tight')
        self.pictures.append(name)

    def write(self) -> str:
        """Write ``summary.txt`` (the pictures listed last); returns its text."""
        self.add('pictures', ', '.join(self.pictures))
        text = '\n'.join(self.lines).lstrip('\n') + '\n'
        with open(osp.join(self.out_dir, 'summary.txt'), 'w') as f:
            f.write(text)
        return text


@dataclass
class Walk:
    """What the steps share: the model, the image, its gt and the report."""
    model: object
    cfg: Config
    sample: Sample
    names: tuple
    report: Report
    options: Options
    gt: Optional[InstanceData] = None        # in the resized image
    ignored: Optional[InstanceData] = None
    numbers: dict = field(default_factory=dict)  # for the comparison with the tutorials

    @property
    def frame(self) -> drawing.Frame:
        return self.sample.frame


# ------------------------------------------------------------------ the steps
def shape(size) -> str:
    return ' x '.join(str(s) for s in size)


def step_image(walk: Walk, header: dict, feats, skipped: Optional[str]) -> None:
    """The image, its sizes through the pipeline, the feature maps, the gt."""
    report, sample, gt = walk.report, walk.sample, walk.gt
    report.section("image and feature map (the Korean walkthrough, '1. Feature extraction "
                   "by pre-trained VGG16')")
    for key, value in header.items():
        report.add(key, value)
    report.add('image size (h x w)', shape(sample.img_meta['ori_shape']))
    report.add('resized size (h x w)', shape(sample.img_meta['img_shape']))
    report.add('padded size (h x w)', shape(sample.pad_shape))
    report.add('input tensor', tuple(sample.inputs.shape))
    report.add('feature maps', ', '.join(str(tuple(f.shape)) for f in feats))
    report.add('feature map sizes (h x w)', ', '.join(shape(f.shape[-2:]) for f in feats))
    if gt is None:
        report.add('gt boxes', 'none given')
    else:
        report.add('gt boxes', f'{len(gt)} (+ {len(walk.ignored)} ignore regions)')
        if skipped:
            report.add('ground truth', skipped)
        for i, (box, label) in enumerate(zip(gt.bboxes.tolist(), gt.labels.tolist())):
            report.add(f'gt {i} (resized image)',
                       f'label {label} [{", ".join(f"{v:.1f}" for v in box)}]')
    report.save(drawing.fig_input_gt(walk.frame, gt, walk.names), '01_input_gt.png')
    report.save(drawing.fig_feature_map(feats), '02_feature_map.png')


def step_anchors(walk: Walk, featmap_sizes, allowed_border):
    """Anchors: the numbers and pictures 03-05. Returns all anchors ``(N, 4)`` and the
    ``(N,)`` mask of those inside the image."""
    report, generator = walk.report, walk.model.rpn_head.prior_generator
    report.section("anchors (the Korean walkthrough, '2. Anchor Generation Layer'; the "
                   "step-by-step PyTorch tutorial, 'Anchor boxes': anchor_base)")
    per_level, inside = stages.image_anchors(generator, featmap_sizes, walk.sample.img_meta,
                                             allowed_border)
    anchors = torch.cat(per_level)
    report.add('strides', generator.strides)
    report.add('anchors per location', generator.num_base_priors)
    for level, base in enumerate(generator.base_anchors):
        rows = '; '.join('[' + ', '.join(f'{v:.2f}' for v in row) + ']' for row in base.tolist())
        report.add(f'anchor_base level {level} ({shape(base.shape)}, x1 y1 x2 y2)', rows)
    report.add('total anchors', anchors.size(0))
    report.add(f'inside-image anchors (allowed_border={allowed_border})', int(inside.sum()))
    walk.numbers.update(featmap=shape(featmap_sizes[0]), anchors=anchors.size(0),
                        inside=int(inside.sum()),
                        anchor_base=shape(generator.base_anchors[0].shape))
    frame = walk.frame
    report.save(drawing.fig_anchor_centres(frame, per_level, generator),
                '03_anchor_centres.png')
    report.save(drawing.fig_anchors_one_location(frame, per_level, featmap_sizes, generator,
                                                 walk.gt, walk.names),
                '04_anchors_one_location.png')
    report.save(drawing.fig_anchors_all(frame, anchors, inside, allowed_border),
                '05_anchors_all.png')
    return anchors, inside


def step_anchor_target(walk: Walk, anchors, inside, featmap_sizes) -> None:
    """The Korean walkthrough's '3. Anchor Target Layer': IoUs, labels, sampling,
    deltas; picture 06."""
    report, rpn_head = walk.report, walk.model.rpn_head
    report.section("anchor target layer (the Korean walkthrough, '3. Anchor Target Layer')")
    gt = stages.rpn_ground_truth(walk.gt)
    best, reach = stages.best_anchor_ious(rpn_head.assigner.iou_calculator, gt.bboxes,
                                          anchors[inside])
    report.add('best anchor IoU per gt', ', '.join(f'{v:.4f}' for v in best.tolist()))
    report.add('anchors reaching it per gt', ', '.join(str(v) for v in reach.tolist()))
    report.add('anchors reaching a gt\'s best IoU (all gts)', int(reach.sum()))
    assign = stages.assign_anchors(rpn_head.assigner, anchors[inside], gt, walk.ignored)
    report.add('RPN assigned', f'{int((assign.gt_inds > 0).sum())} positive, '
               f'{int((assign.gt_inds == 0).sum())} negative, '
               f'{int((assign.gt_inds < 0).sum())} neither (between the IoU thresholds '
               'or in an ignore region), of the inside anchors')
    torch.manual_seed(walk.options.seed)
    targets = stages.rpn_targets(rpn_head, featmap_sizes, gt, walk.ignored,
                                 walk.sample.img_meta, anchors.device)
    report.add('RPN sampled', f'positives {int(targets.positive.sum())}, '
               f'negatives {int(targets.negative.sum())}')
    for i, delta in enumerate(targets.bbox_targets[targets.positive][:5].tolist()):
        report.add(f'positive anchor {i} deltas (dx, dy, dw, dh)',
                   ', '.join(f'{v:.4f}' for v in delta))
    walk.numbers['best_ious'] = ' '.join(f'{v:.4f}' for v in best.tolist())
    report.save(drawing.fig_rpn_targets(walk.frame, anchors[targets.positive],
                                        anchors[targets.negative], walk.gt, walk.names),
                '06_rpn_targets.png')


def report_proposals(report: Report, found: stages.Proposals, cfg, name: str) -> None:
    """The Korean walkthrough's '5. Proposal Layer' with ``cfg``: boxes after each step."""
    counts = found.counts
    if counts:
        report.add(f'{name}: after the pre-NMS top-N (nms_pre={cfg.get("nms_pre", -1)} per '
                   'level)', counts['top_n'])
        report.add(f'{name}: after the min-size filter (min_bbox_size='
                   f'{cfg.get("min_bbox_size", -1)})', counts['min_size'])
        report.add(f'{name}: after NMS ({cfg["nms"]["iou_threshold"]})', counts['nms'])
    report.add(f'{name}: kept (max_per_img={cfg["max_per_img"]})', len(found.proposals))


def step_test_proposals(walk: Walk, feats) -> InstanceData:
    """The proposal layer with ``test_cfg.rpn``; picture 07. Returns the proposals."""
    report, cfg = walk.report, walk.cfg.model.test_cfg.rpn
    report.section('proposal layer at test time (test_cfg.rpn)')
    found = stages.rpn_proposals(walk.model.rpn_head, feats, walk.sample.img_meta, cfg)
    report_proposals(report, found, cfg, 'test proposals')
    report.add('RPN proposals kept (test_cfg.rpn, after NMS)', len(found.proposals))
    report.save(drawing.fig_proposals(walk.frame, found.proposals, walk.options.top_n),
                '07_proposals.png')
    return found.proposals


def step_rcnn_targets(walk: Walk, feats):
    """The Korean walkthrough's '6. Proposal Target Layer' (the step-by-step PyTorch
    tutorial, 'Proposal targets'): the training proposals, assigned and sampled;
    pictures 08-10. Returns the ``SamplingResult``."""
    report, train_cfg = walk.report, walk.cfg.model.train_cfg
    report.section('proposal layer in training (train_cfg.rpn_proposal) and proposal target layer')
    found = stages.rpn_proposals(walk.model.rpn_head, feats, walk.sample.img_meta,
                                 train_cfg.rpn_proposal)
    report_proposals(report, found, train_cfg.rpn_proposal, 'training proposals')
    torch.manual_seed(walk.options.seed)
    sampling = stages.sample_rois(walk.model.roi_head, found.proposals, walk.gt, walk.ignored,
                                  feats)
    report.add('RoIs sampled', f'positives {len(sampling.pos_inds)}, '
               f'negatives {len(sampling.neg_inds)} (gt boxes joined the proposals: '
               f'{bool(train_cfg.rcnn.sampler.get("add_gt_as_proposals", False))})')
    frame, gt, names = walk.frame, walk.gt, walk.names
    report.save(drawing.fig_rcnn_samples(frame, sampling, names), '08_rcnn_samples.png')
    report.save(drawing.fig_rois(frame, sampling.pos_priors, gt, names, positive=True),
                '09_rois_positive.png')
    report.save(drawing.fig_rois(frame, sampling.neg_priors, gt, names, positive=False),
                '10_rois_negative.png')
    return sampling


def step_head(walk: Walk, feats, proposals: InstanceData, sampling) -> None:
    """The Korean walkthrough's '7. RoI Pooling' and '8. Fast R-CNN': the shapes through
    the RoI head (:func:`.stages.bbox_forward`, the head's own path) for the sampled
    RoIs (else the test proposals); pictures 11 and 12."""
    report, roi_head, options = walk.report, walk.model.roi_head, walk.options
    report.section("RoI pooling and Fast R-CNN head (the Korean walkthrough, '7. RoI "
                   "Pooling', '8. Fast R-CNN')")
    rois = bbox2roi([sampling.priors if sampling is not None else proposals.bboxes])
    pooled = stages.pooled_features(roi_head, feats, rois)
    head = stages.bbox_forward(roi_head, feats, rois)
    report.add('RoIs (image index, x1, y1, x2, y2)', tuple(rois.shape))
    report.add('pooled', tuple(pooled.shape))
    if getattr(roi_head, 'with_shared_head', False):
        report.add('shared head output', tuple(head['bbox_feats'].shape))
    report.add('flattened', tuple(head['bbox_feats'].flatten(1).shape))
    report.add('head output: class scores', tuple(head['cls_score'].shape))
    report.add('head output: box deltas', tuple(head['bbox_pred'].shape))

    first = bbox2roi([proposals.bboxes[:options.num_rois]])
    report.save(drawing.fig_roi_features(
        walk.sample.picture, first, stages.pooled_features(roi_head, feats, first),
        type(roi_head.bbox_roi_extractor).__name__, options.num_channels),
        '11_roi_features.png')
    if sampling is not None:
        count = min(options.num_rois * 2, rois.size(0))
        background = sampling.pos_gt_labels.new_full((len(sampling.neg_inds),),
                                                     len(walk.names))
        labels = torch.cat([sampling.pos_gt_labels, background])
        report.save(drawing.fig_pooled_crops(walk.sample.picture, rois[:count], pooled[:count],
                                             labels[:count].tolist(), walk.names),
                    '12_pooled_crops.png')


def step_detections(walk: Walk, feats, proposals: InstanceData) -> None:
    """``roi_head.predict`` on the test proposals; picture 13."""
    report, score_thr = walk.report, walk.options.score_thr
    report.section('detections (roi_head.predict on the test proposals, test_cfg.rcnn)')
    found = stages.detections(walk.model.roi_head, feats, proposals, walk.sample.data_samples)
    keep = found.scores >= score_thr
    report.add('detections', f'{len(found)} (test_cfg.rcnn), {int(keep.sum())} '
               f'with score >= {score_thr} drawn')
    report.save(drawing.fig_detections(walk.frame, found, score_thr, walk.names),
                '13_detections.png')


def step_losses(walk: Walk) -> None:
    """The Korean walkthrough's '4.1 Multi-task Loss' and the Fast R-CNN loss, for this
    image (``model.loss`` with ``train_cfg``)."""
    walk.report.section('losses of this image (model.loss, train_cfg)')
    data_sample = walk.sample.data_samples[0].clone()
    data_sample.gt_instances = walk.gt
    data_sample.ignored_instances = walk.ignored
    torch.manual_seed(walk.options.seed)
    for key, value in stages.image_losses(walk.model, walk.sample.inputs, data_sample).items():
        walk.report.add(key, f'{value:.4f}')


TUTORIAL_NOTES = (
    'anchors reaching the best IoU: the Korean walkthrough lists 45 for the zebras (6 / 24 '
    '/ 12 / 3): it computes IoUs in float64 and stores them in float32, which rounds the '
    'nearly equal IoUs of shifted anchors to one value; ours (and mmdet) compute in float32, '
    'where the zebras get 6 / 15 / 6 / 3 = 30, hence 30 positive anchors instead of 45',
    'RPN sampled negatives: the Korean walkthrough computes n_neg = n_sample * n_pos (a typo '
    'for n_sample - n_pos) and so keeps every negative; the step-by-step PyTorch tutorial '
    'and ours sample 256 in all',
    'proposals: the Korean walkthrough and the step-by-step PyTorch tutorial filter min_size '
    '(>= 16) over all 22500 boxes first, then take the top 12000; ours (mmdet) takes the top '
    'nms_pre per level first, then drops boxes not wider and higher than min_bbox_size',
    'proposals after NMS: the Korean walkthrough and the step-by-step PyTorch tutorial sort '
    'the kept boxes by anchor index instead of score before NMS (order = '
    'order.argsort()[::-1], a bug), so other boxes survive (the step-by-step PyTorch '
    'tutorial: 1031 of 12000); they also add 1 to widths and heights in the areas',
    'sampled RoIs: the Korean walkthrough 32 / 96, the step-by-step PyTorch tutorial 23 / '
    '105, from random RPN proposals; ours adds the gt boxes to the proposals '
    '(py-faster-rcnn), so positives never lack',
    'head output: the step-by-step PyTorch tutorial 21 / 84 columns (20 VOC classes + '
    'background), the Korean walkthrough 2 / 8; ours num_classes + 1 and 4 x num_classes',
    'losses: the Korean walkthrough and the step-by-step PyTorch tutorial print rpn_cls_loss '
    '0.6945 / 0.6931 (untrained: ln 2 = 0.6931, as ours untrained); their box losses are '
    'summed smooth L1 (sigma 1) x lambda 10 / positives, ours mmdet\'s smooth L1 (beta 1/9 '
    'RPN, 1 R-CNN) averaged over the sampled anchors / RoIs, so they are not comparable',
)


def step_tutorial_comparison(report: Report, tutorial_setting: bool, numbers: dict) -> None:
    """The tutorials' printed numbers beside ours, and why some differ."""
    report.section('compared with the tutorials')
    if not tutorial_setting:
        report.add('setting', 'the config\'s, not the tutorials\' (800 x 800, stride 16, 9 '
                   'anchors): sizes and counts differ; run with --tutorial-setting to compare')
        return
    rows = [
        ('feature map (the tutorials: 50 x 50)', numbers.get('featmap'), '50 x 50', ''),
        ('anchors (the tutorials: 22500)', numbers.get('anchors'), 22500, ''),
        ('inside anchors (the tutorials: 8940)', numbers.get('inside'), 8940,
         'the Korean walkthrough keeps x2 <= 800, mmdet x2 < 800; no anchor ends exactly '
         'on 800'),
        ('anchor_base (the step-by-step PyTorch tutorial: 9 x 4)',
         numbers.get('anchor_base'), '9 x 4',
         'the step-by-step PyTorch tutorial prints rows as [y1, x1, y2, x2], ours are '
         '[x1, y1, x2, y2]'),
    ]
    if numbers.get('best_ious') is not None:
        rows.append(('zebra best anchor IoUs (the PyTorch practice notebook: 0.5851 0.5753 '
                     '0.5255 0.6326)', numbers['best_ious'],
                     ' '.join(f'{v:.4f}' for v in ZEBRA_BEST_IOUS),
                     'only with the Korean walkthrough\'s zebra boxes (--gt "'
                     + ZEBRA_BOXES + '")'))
    for what, ours, theirs, note in rows:
        verdict = 'same' if str(ours) == str(theirs) else 'differs'
        report.add(what, f'ours {ours}: {verdict}' + (f' ({note})' if note else ''))
    for i, note in enumerate(TUTORIAL_NOTES, start=1):
        report.add(f'note {i}', note)


# ------------------------------------------------------------------------ run
class InputError(Exception):
    """Input :func:`explain` cannot use (a missing file, bad ground truth), in one line."""


def check_paths(*paths: Optional[str]) -> None:
    """:class:`InputError` for the first given path that is not a file."""
    for path in paths:
        if path and not osp.isfile(path):
            raise InputError(f'no such file: {path}')


def explain(config: str, image: str, out_dir: str, checkpoint: Optional[str] = None,
            gt: Optional[str] = None, gt_voc: Optional[str] = None,
            gt_coco: Optional[str] = None, image_id: Optional[str] = None,
            gt_kitti: Optional[str] = None, tutorial_setting: bool = False,
            cfg_options: Optional[dict] = None, options: Optional[Options] = None) -> str:
    """Run every step on ``image`` and write the pictures and ``summary.txt`` to
    ``out_dir``; returns the summary's text.

    The model is ``config``'s (with the tutorials' setting if ``tutorial_setting``, then
    ``cfg_options``), with ``checkpoint``'s weights or untrained (see
    :func:`..utils.detector.load_detector`). The ground truth is whichever of ``gt``,
    ``gt_voc``, ``gt_coco`` (+ ``image_id``) or ``gt_kitti`` is given (see
    :func:`.ground_truth.read_ground_truth`); without, the target steps are skipped.
    A missing file or bad ground truth is an :class:`InputError`, raised before any
    picture is written.
    """
    options = options or Options()
    check_paths(config, image, checkpoint, gt_voc, gt_coco, gt_kitti)
    cfg = load_config(config, tutorial_setting, cfg_options)
    torch.manual_seed(options.seed)
    model = load_detector(cfg, checkpoint)
    names = tuple(model.dataset_meta['classes'])
    sample = prepare(cfg, model, image)
    try:
        read: Optional[GroundTruth] = read_ground_truth(
            names, gt=gt, gt_voc=gt_voc, gt_coco=gt_coco, image_id=image_id,
            gt_kitti=gt_kitti)
    except ValueError as error:
        raise InputError(str(error)) from None
    os.makedirs(out_dir, exist_ok=True)
    walk = Walk(model, cfg, sample, names, Report(out_dir), options)
    if read is not None:
        read = read.resized(sample.img_meta['scale_factor'])
        walk.gt, walk.ignored = read.gt, read.ignored
    header = {'config': config, 'image': image,
              'checkpoint': checkpoint or 'none (untrained: random scores)',
              'setting': ('the tutorials\' (--tutorial-setting)' if tutorial_setting
                          else 'the config\'s')}
    train_cfg, sampling = cfg.model.train_cfg, None

    with torch.no_grad():
        feats = model.extract_feat(sample.inputs)
        featmap_sizes = [tuple(f.shape[-2:]) for f in feats]
        step_image(walk, header, feats, read.skipped_note() if read is not None else None)
        anchors, inside = step_anchors(walk, featmap_sizes,
                                       train_cfg.rpn.get('allowed_border', 0))
        if walk.gt is not None:
            step_anchor_target(walk, anchors, inside, featmap_sizes)
        else:
            walk.report.add('RPN / RoI targets', 'skipped (no gt; pass --gt, --gt-voc, '
                            '--gt-coco or --gt-kitti)')
        proposals = step_test_proposals(walk, feats)
        if walk.gt is not None:
            sampling = step_rcnn_targets(walk, feats)
        step_head(walk, feats, proposals, sampling)
        step_detections(walk, feats, proposals)

    if walk.gt is not None:
        step_losses(walk)
    step_tutorial_comparison(walk.report, tutorial_setting, walk.numbers)
    return walk.report.write()
