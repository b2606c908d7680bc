"""The anchor fit of tools/check_dataset.py against mmdet itself: the boxes as the real
pipeline resizes the decoded image, the feature maps as the backbone makes them, the
best IoU and the positives as mmdet's own anchor generator and assigner give them."""
import copy

import pytest
import torch
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.structures import InstanceData
from PIL import Image

from frcnn_plugin.analysis.anchor_fit import AnchorFit, fit_lines, resize_steps

#: A photo of 330 x 250 resized (keep_ratio) to fit 200 x 120: 158 x 120.
SIZE = (330, 250)
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(200, 120), keep_ratio=True),
            dict(type='RandomFlip', prob=0.5), dict(type='PackDetInputs')]
INSTANCES = [dict(bbox=[10, 12, 60, 50], bbox_label=0, ignore_flag=0),
             dict(bbox=[100, 40, 300, 240], bbox_label=1, ignore_flag=0),
             dict(bbox=[200, 20, 330, 90], bbox_label=1, ignore_flag=1),   # difficult
             dict(bbox=[150, 150, 172, 160], bbox_label=0, ignore_flag=0),
             dict(bbox=[5, 200, 60, 249], bbox_label=1, ignore_flag=0)]


@pytest.fixture(scope='module')
def cfg(repo):
    """The paper's model with anchors of 16, 32 and 64 pixels (the image is small)."""
    cfg = Config.fromfile(repo / 'configs/frcnn_voc.py')
    cfg.model.rpn_head.anchor_generator.scales = [1, 2, 4]
    return cfg


@pytest.fixture
def data_info(tmp_path):
    path = tmp_path / 'photo.jpg'
    Image.new('RGB', SIZE, (90, 100, 110)).save(path)
    return dict(img_path=str(path), img_id=0, width=SIZE[0], height=SIZE[1],
                instances=copy.deepcopy(INSTANCES))


def fit_of(cfg, **kwargs):
    rpn = cfg.model.train_cfg.rpn
    return AnchorFit(PIPELINE, cfg.model.rpn_head.anchor_generator, rpn.assigner,
                     rpn.allowed_border, cfg.model.data_preprocessor.pad_size_divisor,
                     **kwargs)


def test_resize_steps():
    assert resize_steps(PIPELINE) == PIPELINE[1:3]
    random = [PIPELINE[0], PIPELINE[1], dict(type='mmdet.RandomChoiceResize', scales=[1]),
              PIPELINE[2]]
    assert resize_steps(random) == random[1:3]
    assert resize_steps([PIPELINE[0], PIPELINE[1], PIPELINE[4]]) == PIPELINE[1:2]


def test_resize_is_the_pipeline_on_the_decoded_image(cfg, data_info):
    """The stand-in gives the boxes and size the real pipeline gives the real image."""
    real = Compose(PIPELINE[:3])(copy.deepcopy(data_info))
    ours = fit_of(cfg).resize(data_info)
    assert ours['img_shape'] == real['img_shape'] == (120, 158)
    assert torch.equal(ours['gt_bboxes'].tensor, real['gt_bboxes'].tensor)
    assert ours['gt_ignore_flags'].tolist() == [False, False, True, False, False]


def test_anchors_and_positives_are_mmdet_s(cfg, data_info):
    """Feature maps as VGG16 makes them from the padded image; best IoU and positives as
    mmdet's AnchorGenerator, anchor_inside_flags and MaxIoUAssigner give them."""
    fit = fit_of(cfg)
    image = fit.image(data_info)
    assert image.img_meta == dict(img_shape=(120, 158), pad_shape=(128, 160))
    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg.init_cfg = None
    with torch.no_grad():
        feats = MODELS.build(backbone_cfg)(torch.zeros(1, 3, 128, 160))
    assert image.featmap_sizes == [tuple(f.shape[-2:]) for f in feats] == [(8, 10)]

    anchor_cfg = dict(cfg.model.rpn_head.anchor_generator, type='mmdet.AnchorGenerator')
    generator = TASK_UTILS.build(anchor_cfg)
    anchors = generator.grid_priors(image.featmap_sizes, device='cpu')[0]
    valid = generator.valid_flags(image.featmap_sizes, (128, 160), device='cpu')[0]
    inside = anchor_inside_flags(anchors, valid, (120, 158), allowed_border=0)
    assigner_cfg = dict(cfg.model.train_cfg.rpn.assigner, type='mmdet.MaxIoUAssigner')
    assigner = TASK_UTILS.build(assigner_cfg)
    resized = Compose(PIPELINE[:3])(copy.deepcopy(data_info))
    boxes = resized['gt_bboxes'].tensor
    keep = ~torch.as_tensor(resized['gt_ignore_flags'])
    gt = InstanceData(bboxes=boxes[keep], labels=torch.zeros(int(keep.sum()), dtype=torch.long))
    ignored = InstanceData(bboxes=boxes[~keep], labels=torch.zeros(1, dtype=torch.long))
    ious = TASK_UTILS.build(dict(type='mmdet.BboxOverlaps2D'))(gt.bboxes, anchors[inside])
    assert torch.equal(image.best_anchor_iou, ious.max(dim=1).values)
    result = assigner.assign(InstanceData(priors=anchors[inside]), gt, ignored)
    positive = torch.zeros(len(gt), dtype=torch.bool)
    positive[result.gt_inds[result.gt_inds > 0] - 1] = True
    assert torch.equal(image.has_positive_anchor, positive)
    # The test means something: the small boxes have none, the large one has one.
    assert positive.tolist() == [False, True, False, True]


class Items:
    """A dataset of data infos (``get_data_info``, ``len``)."""

    def __init__(self, infos):
        self.infos = infos

    def __len__(self):
        return len(self.infos)

    def get_data_info(self, i):
        return self.infos[i]


def test_sampled_counts_and_report(cfg, data_info):
    fit = fit_of(cfg, max_images=3)
    assert fit.sample(3) == [0, 1, 2] and fit.sample(9) == [0, 4, 8]
    assert fit.sample(1000) == [0, 500, 999]
    assert fit_of(cfg, max_images=1).sample(5) == [0]  # --anchor-fit-images 1
    result = fit(Items([data_info] * 7))
    assert (result['num_images'], result['measured_images'], result['num_boxes']) == (7, 3, 12)
    assert result['no_positive_anchor'] == 6 and result['below_pos_iou_thr'] == 12
    # Anchors were looked for; on the stride-16 grid none added helps these two boxes
    # (tests/tools/test_check_dataset_roboflow.py shows suggestions that do).
    assert result['suggested'] and result['suggestion'] is None
    lines = fit_lines(result, ('cat', 'dog'), ('cat', 'bird', 'dog'))
    assert lines[:5] == [
        "anchor fit at the train pipeline's resize (3 of 7 images, evenly spaced "
        '(--anchor-fit-images)):',
        '  class  shorter side after resize: min / median / max px',
        '  cat    5 / 12 / 18',
        '  bird   -',
        '  dog    24 / 60 / 96']
    # x 158/330 and x 120/250: cats 10.5 x 4.8 and 23.9 x 18.2, dogs 95.8 x 96 and
    # 26.3 x 23.5 (the difficult dog left out), three times each.
    assert lines[5:7] == [
        '  best anchor IoU under pos_iou_thr 0.7: 12 of 12 boxes (100.0%) (they get at most '
        'their best anchor(s) as positives, from min_pos_iou 0.3)',
        '  no positive anchor at all (the assigner as in training): 6 of 12 boxes (50.0%)']
    assert lines[7:] == ['  no added anchor scale or ratio gives more boxes a positive anchor']
    # Fewer boxes under pos_iou_thr than suggest_above: nothing suggested.
    assert fit_of(cfg, suggest_above=1.0)(Items([data_info]))['suggested'] is False


def real_featmap_sizes(cfg, pad_shape):
    """The config's backbone (and neck) on a blank padded image."""
    nets = [MODELS.build(dict(copy.deepcopy(c), init_cfg=None))
            for c in (cfg.model.backbone, cfg.model.get('neck')) if c]
    with torch.no_grad():
        feats = nets[0](torch.zeros(1, 3, *pad_shape))
        if len(nets) > 1:
            feats = nets[1](feats)
    return [tuple(f.shape[-2:]) for f in feats]


@pytest.mark.parametrize('config', ['configs/frcnn_voc.py',
                                    'configs/examples/faster-rcnn_r50_fpn_scratch_kitti_tiny.py'])
def test_featmap_sizes_are_the_backbone_s_at_any_padding(repo, data_info, config):
    """Without pad_size_divisor (1) the padded image is 120 x 158, a multiple of no
    stride: VGG16's max-pools round its maps down (7 x 9 at stride 16, where ceil says
    8 x 10), ResNet-FPN's stride-2 convolutions up; the sizes are the backbone's."""
    cfg = Config.fromfile(repo / config)
    cfg.model.data_preprocessor.pad_size_divisor = 1
    cfg.train_dataloader.dataset.pipeline = PIPELINE
    image = AnchorFit.from_config(cfg).image(data_info)
    assert image.img_meta['pad_shape'] == (120, 158)
    real = real_featmap_sizes(cfg, (120, 158))
    assert image.featmap_sizes == real
    # Control: ceil at every level is right for ResNet-FPN only.
    rpn = cfg.model.train_cfg.rpn
    ceil = AnchorFit(PIPELINE, cfg.model.rpn_head.anchor_generator, rpn.assigner,
                     rpn.allowed_border, 1).image(data_info).featmap_sizes
    assert (ceil == real) == ('fpn' in config)
    assert ('fpn' in config) or real == [(7, 9)]


def test_random_resize_is_said(cfg, data_info):
    """A random resize is measured at one draw per image, and the report says so."""
    pipeline = [PIPELINE[0], PIPELINE[1],
                dict(type='RandomResize', scale=[(200, 100), (200, 140)], keep_ratio=True)]
    rpn = cfg.model.train_cfg.rpn
    fit = AnchorFit(pipeline, cfg.model.rpn_head.anchor_generator, rpn.assigner,
                    rpn.allowed_border, 16)
    lines = fit_lines(fit(Items([data_info])), ('cat', 'dog'), ('cat', 'dog'))
    assert lines[0] == ("anchor fit at the train pipeline's RandomResize (all 1 images; "
                        'one random draw of its scales per image, another run draws '
                        'others):')
    # Control: a fixed Resize is not called random.
    assert fit_lines(fit_of(cfg)(Items([data_info])), ('cat', 'dog'),
                     ('cat', 'dog'))[0] == \
        "anchor fit at the train pipeline's resize (all 1 images):"
