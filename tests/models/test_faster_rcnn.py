"""Whole-detector parity: Faster R-CNN built from our components trains and predicts as
the same detector built from mmdet's, given the same weights and seeds."""
import torch
from detector_parity import (
    assert_same_gradients,
    assert_same_training,
    detector_batch,
    loss_and_gradients,
    recorded,
    retyped,
    train_and_predict,
)
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.structures import InstanceData

import frcnn_plugin  # noqa: F401  registers the Scratch* types
from frcnn_plugin.utils.swap import MMDET_TYPES, SCRATCH_TYPES


def spell_out_iou_calculators(model_cfg):
    """Name the assigners' default IoU calculator, so it is retyped with the rest."""
    for stage in ('rpn', 'rcnn'):
        model_cfg.train_cfg[stage].assigner.iou_calculator = dict(type='BboxOverlaps2D')


def test_r50_fpn_with_all_our_components_is_mmdets_detector(repo):
    ours = Config.fromfile(repo / 'configs/_base_/models/faster-rcnn_r50_fpn_scratch.py').model
    theirs = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    spell_out_iou_calculators(theirs)
    # Our config is mmdet's model with every component retyped, nothing else changed
    # (but the scope mmengine notes on what a config inherits with `mmdet::`).
    mapped_back = retyped(ours, MMDET_TYPES)
    assert mapped_back.pop('_scope_') == 'mmdet'
    assert mapped_back == theirs
    assert not any(f"'{name}'" in str(ours) for name in SCRATCH_TYPES)
    ours.backbone.init_cfg = theirs.backbone.init_cfg = None

    torch.manual_seed(0)
    state_dict = MODELS.build(theirs).state_dict()  # loads strictly into ours too
    batch = detector_batch()
    assert_same_training(train_and_predict(ours, state_dict, batch),
                         train_and_predict(theirs, state_dict, batch), rel=1e-4)


def test_tutorials_vgg16_model_is_its_mmdet_counterpart(repo):
    ours = Config.fromfile(repo / 'configs/_base_/models/faster-rcnn_vgg16.py').model
    ours.backbone.init_cfg = None
    theirs = retyped(ours, MMDET_TYPES)
    assert 'Scratch' not in str(theirs).replace('ScratchVGG16', '')  # mmdet has no VGG

    torch.manual_seed(0)
    state_dict = MODELS.build(theirs).state_dict()
    # Anchors of 128-512 pixels and allowed_border 0: images large enough to hold some.
    batch = detector_batch(sizes=((208, 256, 3), (192, 224, 2)), num_classes=20)
    assert_same_training(train_and_predict(ours, state_dict, batch),
                         train_and_predict(theirs, state_dict, batch), rel=1e-4)


def vgg16_twins(repo, **assigner):
    """The tutorials' VGG16 model (ours), its mmdet twin and one state dict for both;
    ``assigner``: settings for both stages' assigners."""
    ours = Config.fromfile(repo / 'configs/_base_/models/faster-rcnn_vgg16.py').model
    ours.backbone.init_cfg = None
    for stage in ('rpn', 'rcnn'):
        ours.train_cfg[stage].assigner.update(assigner)
    theirs = retyped(ours, MMDET_TYPES)
    torch.manual_seed(0)
    return ours, theirs, MODELS.build(theirs).state_dict()


def watch_targets(model, seen):
    """Keep the RPN's and the R-CNN head's targets of the next forward in ``seen``."""
    seen['rpn'] = recorded(model.rpn_head, 'get_targets')
    seen['rcnn'] = recorded(model.roi_head.bbox_head, 'get_targets')


def targets_per_image(seen):
    """(RPN targets, R-CNN targets), each ``[labels, label_weights, bbox_weights]`` with
    one tensor per image: the RPN's over all its anchors, the R-CNN's over its RoIs."""
    (_, _, rpn), = seen['rpn']
    # RPN: per level, (images, anchors of the level).
    rpn = [torch.cat(rpn[k], dim=1).unbind(0) for k in (0, 1, 3)]
    (args, _, rcnn), = seen['rcnn']
    counts = [len(result.priors) for result in args[0]]  # the sampled RoIs of each image
    rcnn = [rcnn[k].split(counts) for k in (0, 1, 3)]
    return rpn, rcnn


def test_image_without_objects_gives_only_negatives(repo):
    """A batch with an image without objects (filter_empty_gt=False): that image's
    sampled anchors and RoIs are all background with zero box weights, and our
    detector's targets, losses and gradients are mmdet's."""
    ours, theirs, state_dict = vgg16_twins(repo)
    batch = detector_batch(sizes=((208, 256, 3), (192, 224, 0)), num_classes=20)
    # Boxes the 128-512 px anchors can match, so that the other image has positives.
    batch['data_samples'][0].gt_instances.bboxes = torch.tensor(
        [[20., 20., 150., 160.], [100., 40., 240., 190.], [10., 90., 130., 200.]])
    assert len(batch['data_samples'][1].gt_instances) == 0
    runs = {}
    for name, cfg in (('ours', ours), ('mmdet', theirs)):
        seen = {}
        step = loss_and_gradients(cfg, state_dict, batch, lambda m: watch_targets(m, seen))
        runs[name] = step, targets_per_image(seen)
    assert_same_gradients(runs['ours'][0], runs['mmdet'][0])

    for name, (_, (rpn, rcnn)) in runs.items():
        # RPN (one class): label 1 is background. The empty image: every sampled anchor
        # (those inside the image, up to 256) is a negative, with no box weight.
        (labels, label_weights, bbox_weights) = (t[1] for t in rpn)
        assert (labels == 1).all() and label_weights.sum() > 0, name
        assert not bbox_weights.any(), name
        assert (rpn[0][0] == 0).any(), name  # the other image does have positives
        # R-CNN (20 classes): label 20 is background; 128 RoIs, all negatives.
        (labels, label_weights, bbox_weights) = (t[1] for t in rcnn)
        assert len(labels) == 128 and (labels == 20).all() and (label_weights == 1).all(), name
        assert not bbox_weights.any(), name
        assert (rcnn[0][0] < 20).any(), name
    for mine, ref in zip(runs['ours'][1], runs['mmdet'][1]):
        for our_t, their_t in zip(mine, ref):
            for a, b in zip(our_t, their_t):
                assert torch.equal(a, b)


def with_ignore_regions(batch, regions):
    """``batch`` with ``regions`` (a list of (k, 4) boxes per image) as each image's
    ignored_instances (label -1, as KittiTinyDataset's DontCare)."""
    for sample, boxes in zip(batch['data_samples'], regions):
        boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        sample.ignored_instances = InstanceData(
            bboxes=boxes, labels=torch.full((len(boxes),), -1, dtype=torch.long))
    return batch


def watch_assigners(model, seen):
    """Keep each call of the RPN's and the R-CNN head's assigner in ``seen``."""
    seen['rpn'] = recorded(model.rpn_head.assigner, 'assign')
    seen['rcnn'] = recorded(model.roi_head.bbox_assigner, 'assign')


def test_ignore_regions_reach_both_assigners(repo):
    """With ignore_iof_thr=0.5, the ignored_instances of each image reach the RPN's and
    the R-CNN head's assigner (mmdet's two-stage detector passes them on), which leave
    the priors mostly inside them unassigned; losses and gradients are mmdet's."""
    regions = [[[120., 20., 250., 200.]], [[0., 0., 200., 100.], [150., 120., 220., 190.]]]
    batch = with_ignore_regions(
        detector_batch(sizes=((208, 256, 3), (192, 224, 2)), num_classes=20), regions)
    ours, theirs, state_dict = vgg16_twins(repo, ignore_iof_thr=0.5)
    runs = {}
    for name, cfg in (('ours', ours), ('mmdet', theirs)):
        seen = {}
        step = loss_and_gradients(cfg, state_dict, batch, lambda m: watch_assigners(m, seen))
        runs[name] = step, seen
    assert_same_gradients(runs['ours'][0], runs['mmdet'][0])
    for name, (_, seen) in runs.items():
        for stage in ('rpn', 'rcnn'):
            assert len(seen[stage]) == 2, (name, stage)  # one call per image
            for (args, _, result), boxes in zip(seen[stage], regions):
                # assign(pred_instances, gt_instances, gt_instances_ignore)
                assert torch.equal(args[2].bboxes, torch.tensor(boxes)), (name, stage)
                # IoU -1 marks the priors the regions took out; they are unassigned.
                ignored = result.max_overlaps == -1
                assert ignored.any() and (result.gt_inds[ignored] == -1).all(), (name, stage)

    # Control: without the threshold the same batch trains differently.
    ours_off, _, _ = vgg16_twins(repo, ignore_iof_thr=-1)
    losses_off, _ = loss_and_gradients(ours_off, state_dict, batch)
    assert losses_off['loss_rpn_cls'] != runs['ours'][0][0]['loss_rpn_cls']
