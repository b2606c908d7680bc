"""The cases of tools/benchmark.py: for each benchmark name, the inputs (seeded) and a pair
of zero-argument callables, ours and mmdet's (or mmcv's / torchvision's), doing the same
computation on them. Also the detector builders (the tutorials' loop-based anchor target
layer is in tools/benchmark_tutorial.py).

A builder ``name(quick) -> [Case, ...]`` per benchmark name; ``CASES`` lists them in order.
Inputs are made on the CPU from seeded generators and moved to ``DEVICE``
(``tools/benchmark.py --device``). On CUDA, mmdet's side of a case runs mmcv's CUDA
kernels, which an mmcv built with CPU ops only lacks: those cases are then left out
(``Case.needs_mmcv_cuda``), and NMS and RoIAlign are also timed against torchvision's
CUDA kernels (cases ending in ``_torchvision``).

``onnxruntime`` times a whole detector exported by tools/export.py in onnxruntime
("ours") against the same detector in PyTorch eager ("theirs"), with one thread and
with all cores on both sides; CPU only.
"""
import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mmcv.ops
import torch
import torchvision
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox2roi
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.structures import InstanceData
from torch.nn.modules.utils import _pair

import frcnn_plugin  # noqa: F401  registers the Scratch* types
from frcnn_plugin.ops import nms as scratch_nms
from frcnn_plugin.ops.roi_pool import ScratchRoIPool
from frcnn_plugin.utils.swap import MMDET_TYPES, SCRATCH_TYPES, TorchvisionRoIPool, retyped

REPO = Path(__file__).resolve().parents[1]
# Where the cases run; tools/benchmark.py --device sets it before building them.
DEVICE = torch.device('cpu')


def on_device(value):
    """A tensor, module or InstanceData (or a list / tuple of them) on ``DEVICE``; task
    modules (anchor generators, assigners, ...) hold no tensors and come back as they are."""
    if isinstance(value, (list, tuple)):
        return type(value)(on_device(v) for v in value)
    return value.to(DEVICE) if hasattr(value, 'to') else value


def mmcv_has_cuda_ops() -> bool:
    """Whether mmcv's ops run on CUDA: always with the mmcv-lite backend (torchvision's
    kernels); with compiled mmcv, where it was built with its CUDA kernels."""
    return mmcv.ops.get_compiling_cuda_version() != 'not available'


class TorchvisionRoIAlign(torchvision.ops.RoIAlign):
    """torchvision's RoIAlign (average only) with mmcv's arguments, for SingleRoIExtractor
    on CUDA where mmcv has no CUDA kernels."""

    def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=0, aligned=True,
                 pool_mode='avg'):
        if pool_mode != 'avg':
            raise ValueError(f"torchvision's RoIAlign averages only, got pool_mode={pool_mode!r}")
        super().__init__(_pair(output_size), spatial_scale, sampling_ratio, aligned)


@dataclass
class Case:
    """One timed comparison: ``heavy`` cases (whole detectors) get fewer repeats."""
    name: str
    ours: Callable[[], object]
    theirs: Callable[[], object]
    heavy: bool = False
    needs_mmcv_cuda: bool = False  # theirs runs mmcv's kernels: on CUDA, only if compiled


def r50_model():
    """mmdet's Faster R-CNN R50-FPN model config (the reference of every FPN case)."""
    model = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    model.backbone.init_cfg = None
    return model


def vgg_model():
    """Our config of the tutorials' VGG16 model (all components ours), no pretrained
    weights."""
    model = Config.fromfile(str(REPO / 'configs/_base_/models/faster-rcnn_vgg16.py')).model
    model.backbone.init_cfg = None
    return model


def random_boxes(n, h, w, g, min_size=2.):
    """``(n, 4)`` boxes inside an ``h x w`` image."""
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    wh = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3]) + min_size
    return torch.minimum(torch.cat([xy, xy + wh], 1), torch.tensor([w, h, w, h]) - 1.)


def gt_instances(n, h, w, g, num_classes=80):
    return InstanceData(bboxes=random_boxes(n, h, w, g, 8.),
                        labels=torch.randint(0, num_classes, (n,), generator=g))


def pair(build, cfg):
    """(ours, theirs): ``cfg`` built as mmdet's and retyped to ours."""
    theirs_cfg = retyped(cfg, MMDET_TYPES)
    return on_device(build(retyped(theirs_cfg, SCRATCH_TYPES))), on_device(build(theirs_cfg))


# ------------------------------------------------------------------ task modules
def anchor_generator(quick):
    fpn = dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
               strides=[4, 8, 16, 32, 64])
    vgg = dict(type='AnchorGenerator', scales=[8, 16, 32], ratios=[0.5, 1.0, 2.0],
               strides=[16], center_offset=0.5)
    cases = []
    for case, cfg, sizes in (('fpn_800x1344', fpn, [(200, 336), (100, 168), (50, 84),
                                                    (25, 42), (13, 21)]),
                             ('vgg_50x84', vgg, [(50, 84)])):
        ours, theirs = pair(TASK_UTILS.build, cfg)
        cases.append(Case(case, lambda g=ours, s=sizes: g.grid_priors(s, device=DEVICE),
                          lambda g=theirs, s=sizes: g.grid_priors(s, device=DEVICE)))
    return cases


def assign_inputs(num_priors, num_gts, seed=0):
    g = torch.Generator().manual_seed(seed)
    return on_device((InstanceData(priors=random_boxes(num_priors, 800, 1333, g)),
                      gt_instances(num_gts, 800, 1333, g)))


def rpn_and_rcnn_assigners():
    """The R50-FPN train_cfg's two assigners, IoU calculator spelled out to be retyped."""
    train = r50_model().train_cfg
    out = []
    for stage, num in (('rpn', 200_000), ('rcnn', 2000)):
        cfg = copy.deepcopy(train[stage])
        cfg.assigner.iou_calculator = dict(type='BboxOverlaps2D')
        out.append((stage, num, cfg))
    return out


def assigner(quick):
    cases = []
    for stage, num, cfg in rpn_and_rcnn_assigners():
        ours, theirs = pair(TASK_UTILS.build, cfg.assigner)
        priors, gts = assign_inputs(num, 30)
        cases.append(Case(f'{stage}_{num}x30', lambda a=ours, p=priors, t=gts: a.assign(p, t),
                          lambda a=theirs, p=priors, t=gts: a.assign(p, t)))
    return cases


def seeded(fn, seed=0):
    """``fn`` run after seeding torch, so both samplers draw the same numbers."""
    def run():
        torch.manual_seed(seed)
        return fn()
    return run


def sampler(quick):
    cases = []
    for stage, num, cfg in rpn_and_rcnn_assigners():
        priors, gts = assign_inputs(num, 30)
        assign = TASK_UTILS.build(cfg.assigner).assign(priors, gts)
        ours, theirs = pair(TASK_UTILS.build, cfg.sampler)
        # A fresh copy each call: with add_gt_as_proposals the sampler adds the gts to it.
        cases.append(Case(f'{stage}_{cfg.sampler.num}_of_{num}',
                          seeded(lambda s=ours, a=assign, p=priors, t=gts:
                                 s.sample(copy.deepcopy(a), p, t)),
                          seeded(lambda s=theirs, a=assign, p=priors, t=gts:
                                 s.sample(copy.deepcopy(a), p, t))))
    return cases


def coder(quick):
    g = torch.Generator().manual_seed(0)
    boxes, gts, deltas = on_device((random_boxes(200_000, 800, 1333, g),
                                    random_boxes(200_000, 800, 1333, g),
                                    torch.randn(200_000, 4, generator=g)))
    ours, theirs = pair(TASK_UTILS.build, dict(type='DeltaXYWHBBoxCoder',
                                               target_stds=[0.1, 0.1, 0.2, 0.2]))
    return [Case('encode_200k', lambda: ours.encode(boxes, gts), lambda: theirs.encode(boxes, gts)),
            Case('decode_200k', lambda: ours.decode(boxes, deltas, max_shape=(800, 1333)),
                 lambda: theirs.decode(boxes, deltas, max_shape=(800, 1333)))]


# ------------------------------------------------------------------------- ops
def nms(quick):
    cases = []
    for n in (2000, 6000, 12000):
        g = torch.Generator().manual_seed(n)
        boxes, scores = on_device((random_boxes(n, 800, 1333, g), torch.rand(n, generator=g)))
        cases.append(Case(str(n), lambda b=boxes, s=scores: scratch_nms(b, s, 0.7),
                          lambda b=boxes, s=scores: mmcv.ops.nms(b, s, 0.7),
                          needs_mmcv_cuda=True))
        if DEVICE.type == 'cuda':
            cases.append(Case(f'{n}_torchvision', lambda b=boxes, s=scores: scratch_nms(b, s, 0.7),
                              lambda b=boxes, s=scores: torchvision.ops.nms(b, s, 0.7)))
    return cases


def forward_backward(layer, feats, rois):
    """``layer(feats, rois)`` and the gradient of its sum w.r.t. ``feats``."""
    def run():
        inputs = [f.detach().requires_grad_() for f in feats]
        layer(inputs, rois).sum().backward()
    return run


def fpn_rois(num=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    return bbox2roi([random_boxes(num, 800, 1333, g, 4.)])


def roi_align(quick):
    """Our ScratchRoIExtractor vs mmdet's SingleRoIExtractor (level mapping included), 512
    RoIs over the 4 FPN levels of an 800x1344 batch, 256 channels, forward + backward, in
    the avg mode detectors use (the max mode runs the plain algorithm: not timed here)."""
    g = torch.Generator().manual_seed(0)
    feats = on_device([torch.randn(1, 256, h, w, generator=g) for h, w in
                       ((200, 336), (100, 168), (50, 84), (25, 42))])
    rois = on_device(fpn_rois())
    cfg = copy.deepcopy(r50_model().roi_head.bbox_roi_extractor)
    ours, theirs = pair(MODELS.build, cfg)
    cases = [Case('fpn_512_avg_fwd_bwd', forward_backward(ours, feats, rois),
                  forward_backward(theirs, feats, rois), needs_mmcv_cuda=True)]
    if DEVICE.type == 'cuda':
        theirs = on_device(MODELS.build(dict(cfg, roi_layer=dict(cfg.roi_layer,
                                                                 type=TorchvisionRoIAlign))))
        ours = on_device(MODELS.build(retyped(cfg, SCRATCH_TYPES)))
        cases.append(Case('fpn_512_avg_fwd_bwd_torchvision', forward_backward(ours, feats, rois),
                          forward_backward(theirs, feats, rois)))
    return cases


def roi_pool(quick):
    """ScratchRoIPool vs torchvision's RoIPool on the VGG16 model's map (600x1000 image,
    stride 16, 512 channels): 128 training RoIs forward + backward, 300 test RoIs forward."""
    g = torch.Generator().manual_seed(0)
    feat = on_device(torch.randn(1, 512, 38, 63, generator=g))
    ours, theirs = ScratchRoIPool(7, 1 / 16), TorchvisionRoIPool(7, 1 / 16)
    train_rois = on_device(bbox2roi([random_boxes(128, 600, 1000, g, 16.)]))
    test_rois = on_device(bbox2roi([random_boxes(300, 600, 1000, g, 16.)]))

    def fwd_bwd(layer):
        return forward_backward(lambda f, r: layer(f[0], r), [feat], train_rois)

    def forward(layer):
        return lambda: layer(feat, test_rois)
    return [Case('vgg_128_fwd_bwd', fwd_bwd(ours), fwd_bwd(theirs)),
            Case('vgg_300_fwd', forward(ours), forward(theirs))]


# ----------------------------------------------------------------------- heads
def img_metas(h, w, pad):
    return dict(img_shape=(h, w), pad_shape=pad, ori_shape=(h, w), scale_factor=(1., 1.))


def rpn_head(quick):
    """loss_by_feat (+ backward to the maps) and predict_by_feat on random head outputs
    (the head's convs are the same nn.Conv2d on both sides, so they are left out)."""
    vgg = retyped(vgg_model(), MMDET_TYPES)
    return (rpn_head_cases('fpn', r50_model(), (800, 1333), (800, 1344),
                           [(200, 336), (100, 168), (50, 84), (25, 42), (13, 21)])
            + rpn_head_cases('vgg', vgg, (600, 1000), (608, 1008), [(38, 63)]))


def rpn_head_cases(arch, model, img_shape, pad, levels):
    cfg = dict(model.rpn_head, train_cfg=model.train_cfg.rpn, test_cfg=model.test_cfg.rpn)
    cfg['train_cfg'].assigner.setdefault('iou_calculator', dict(type='BboxOverlaps2D'))
    cfg['in_channels'] = cfg['feat_channels'] = 8
    ours, theirs = pair(MODELS.build, cfg)
    g = torch.Generator().manual_seed(0)
    a = ours.num_base_priors
    scores = on_device([torch.randn(1, a, *s, generator=g) for s in levels])
    deltas = on_device([torch.randn(1, 4 * a, *s, generator=g) * 0.1 for s in levels])
    gts, metas = on_device([gt_instances(30, *img_shape, g, 1)]), [img_metas(*img_shape, pad)]
    gts[0].labels.zero_()  # the detector hands the RPN class-agnostic gts

    def loss(head):
        def run():
            s = [x.detach().requires_grad_() for x in scores]
            d = [x.detach().requires_grad_() for x in deltas]
            losses = head.loss_by_feat(s, d, gts, metas)
            sum(sum(v) for v in losses.values()).backward()
        return seeded(run)

    def predict(head):
        return lambda: head.predict_by_feat(scores, deltas, batch_img_metas=metas,
                                            cfg=head.test_cfg)
    return [Case(f'{arch}_loss', loss(ours), loss(theirs)),
            Case(f'{arch}_predict', predict(ours), predict(theirs), needs_mmcv_cuda=True)]


def bbox_head(quick):
    """loss_and_target (+ backward to the head outputs) of sampled RoIs, and
    predict_by_feat of test RoIs, on random head outputs (the FCs are left out)."""
    return (bbox_head_cases('fpn', r50_model(), (800, 1333), 1000)
            + bbox_head_cases('vgg', retyped(vgg_model(), MMDET_TYPES), (600, 1000), 300))


def bbox_head_cases(arch, model, img_shape, num_test):
    ours, theirs = pair(MODELS.build, model.roi_head.bbox_head)
    train = copy.deepcopy(model.train_cfg.rcnn)
    g = torch.Generator().manual_seed(0)
    proposals = on_device(InstanceData(priors=random_boxes(2000, *img_shape, g)))
    gts = on_device(gt_instances(30, *img_shape, g, theirs.num_classes))
    torch.manual_seed(0)
    result = TASK_UTILS.build(train.sampler).sample(
        TASK_UTILS.build(train.assigner).assign(proposals, gts), proposals, gts)
    rois = bbox2roi([result.priors])
    n, k = rois.size(0), theirs.num_classes
    cls_score, bbox_pred, test_rois, test_scores, test_deltas = on_device((
        torch.randn(n, k + 1, generator=g), torch.randn(n, 4 * k, generator=g) * 0.1,
        bbox2roi([random_boxes(num_test, *img_shape, g)]),
        torch.randn(num_test, k + 1, generator=g) * 3,
        torch.randn(num_test, 4 * k, generator=g) * 0.1))
    metas = [img_metas(*img_shape, img_shape)]

    def loss(head):
        def run():
            s, d = cls_score.detach().requires_grad_(), bbox_pred.detach().requires_grad_()
            losses = head.loss_and_target(s, d, rois, [result], train)['loss_bbox']
            sum(losses.values()).backward()
        return run

    def predict(head):
        return lambda: head.predict_by_feat((test_rois,), (test_scores,), (test_deltas,),
                                            metas, model.test_cfg.rcnn)
    return [Case(f'{arch}_loss', loss(ours), loss(theirs)),
            Case(f'{arch}_predict', predict(ours), predict(theirs), needs_mmcv_cuda=True)]


# ------------------------------------------------------------------- detectors
def detector_pair(arch):
    """(ours, theirs) whole detectors with the same weights: R50-FPN from our config and
    from mmdet's, or the tutorials' VGG16 model and its retyping to mmdet's components."""
    if arch == 'r50_fpn':
        ours_cfg = Config.fromfile(
            str(REPO / 'configs/_base_/models/faster-rcnn_r50_fpn_scratch.py')).model
        ours_cfg.backbone.init_cfg = None
        theirs_cfg = r50_model()
    else:
        ours_cfg = vgg_model()
        theirs_cfg = retyped(ours_cfg, MMDET_TYPES)
    torch.manual_seed(0)
    ours, theirs = MODELS.build(ours_cfg), MODELS.build(theirs_cfg)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return on_device(ours), on_device(theirs)


def detector_batch(model, h, w, num_gts=4, training=True, seed=0):
    """One random ``h x w`` image with ``num_gts`` gt boxes, through ``model``'s
    data_preprocessor (the same for ours and theirs): (inputs, data_samples)."""
    g = torch.Generator().manual_seed(seed)
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                         scale_factor=(1., 1.)))
    sample.gt_instances = gt_instances(num_gts, h, w, g, model.roi_head.bbox_head.num_classes)
    batch = dict(inputs=on_device([torch.randint(0, 256, (3, h, w), generator=g,
                                                 dtype=torch.uint8)]),
                 data_samples=[sample.to(DEVICE)])
    data = model.data_preprocessor(batch, training=training)
    return data['inputs'], data['data_samples']


def train_losses(model, inputs, samples, seed=0):
    """Forward loss and backward (no optimizer step: the weights stay, so every repeat
    is the same computation); returns the losses as floats."""
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    losses = model.loss(inputs, copy.deepcopy(samples))
    total, log_vars = model.parse_losses(losses)
    total.backward()
    return {key: value.item() for key, value in log_vars.items()}


def predict(model, inputs, samples):
    model.eval()
    with torch.no_grad():
        return model.predict(inputs, copy.deepcopy(samples))


DETECTOR_SIZES = {'r50_fpn': ((800, 1333), (320, 512)), 'vgg16': ((600, 1000), (320, 512))}


def detector_cases(run, training):
    def build(quick):
        cases = []
        for arch, sizes in DETECTOR_SIZES.items():
            ours, theirs = detector_pair(arch)
            inputs, samples = detector_batch(ours, *sizes[quick], training=training)
            cases.append(Case(arch, lambda m=ours, i=inputs, s=samples: run(m, i, s),
                              lambda m=theirs, i=inputs, s=samples: run(m, i, s), heavy=True,
                              needs_mmcv_cuda=True))
        return cases
    return build


# ------------------------------------------------------------------ deployment
# (config, padded input (h, w), resized image (h, w)): the Shapes demo's 192 x 192 images,
# and KittiTiny's 1224 x 370 resized to 1000 x 302 (padded to 16).
ONNX_MODELS = {'shapes': ('configs/frcnn_shapes.py', (192, 192), (192, 192)),
               'kitti_vgg16': ('configs/frcnn_kitti_tiny.py', (304, 1008), (302, 1000))}


def with_torch_threads(threads, fn):
    """``fn`` run with ``threads`` torch threads (the previous number restored)."""
    def run():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(previous)
    return run


def onnxruntime(quick):
    """Each model of ``ONNX_MODELS`` (random weights) exported to a temporary file;
    onnxruntime's session and PyTorch's predict with 1 thread and with all cores."""
    from frcnn_plugin.deploy.export import export_detector
    from frcnn_plugin.deploy.onnx_runtime_detector import ScratchOnnxRuntimeDetector

    if DEVICE.type != 'cpu':
        return []
    cases = []
    folder = tempfile.mkdtemp(prefix='frcnn_onnx_benchmark_')
    for arch, (config, pad, img_shape) in ONNX_MODELS.items():
        cfg = Config.fromfile(str(REPO / config))
        cfg.model.backbone.init_cfg = None
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.eval()
        path = os.path.join(folder, f'{arch}.onnx')
        export_detector(model, path)
        image = torch.randn(1, 3, *pad, generator=torch.Generator().manual_seed(0))
        samples = [DetDataSample(metainfo=dict(img_shape=img_shape, pad_shape=pad,
                                               ori_shape=img_shape, scale_factor=(1., 1.)))]
        for threads, label in ((1, '1_thread'), (os.cpu_count(), 'all_cores')):
            session = ScratchOnnxRuntimeDetector(path, num_threads=threads)
            cases.append(Case(f'{arch}_{label}',
                              lambda s=session, i=image, shape=img_shape: s.run(i, shape),
                              with_torch_threads(
                                  threads, lambda m=model, i=image, d=samples: predict(m, i, d)),
                              heavy=True))
    return cases


train_iter = detector_cases(train_losses, training=True)
inference = detector_cases(predict, training=False)

CASES = {fn.__name__: fn for fn in (anchor_generator, assigner, sampler, coder, nms, roi_align,
                                    roi_pool, rpn_head, bbox_head)}
CASES.update(train_iter=train_iter, inference=inference, onnxruntime=onnxruntime)
