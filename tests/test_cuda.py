"""On a CUDA device: our ops against torchvision's CUDA kernels (and mmcv's, where mmcv
was built with them), both heads and a whole detector against mmdet's, in float32 and
under autocast (float16, bfloat16).

Every test here is marked ``cuda``: without a CUDA device they are deselected
(tests/conftest.py), never skipped or passed; ``tools/gpu_check.sh`` runs them.

Tolerances: float32 results of different kernels agree to rounding (their sums run in
different orders). Under autocast both sides compute in float32 and round the result to
the low-precision dtype once, so they differ by at most one unit in the last place of
that dtype where the float32 values straddle a rounding boundary: ``rtol`` is the dtype's
``eps`` (2^-10 for float16, 2^-7 for bfloat16, whose 8-bit significand is the coarse one).
"""
import copy

import mmcv.ops
import pytest
import torch
import torchvision
from detector_parity import detector_batch
from mmdet.registry import MODELS, OPTIM_WRAPPERS
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

from frcnn_plugin.ops import ScratchRoIAlign, ScratchRoIPool, batched_nms, nms
from frcnn_plugin.utils.swap import SCRATCH_TYPES, retyped

pytestmark = pytest.mark.cuda

LOW = [torch.float16, torch.bfloat16]


def mmcv_has_cuda_ops():
    return mmcv.ops.get_compiling_cuda_version() != 'not available'


def oracle_device(dtype):
    """Where mmdet's predict (mmcv's NMS) runs: the GPU if mmcv has CUDA ops, else the
    CPU, in float32 only: its low-precision path needs mmcv's CUDA kernels."""
    if mmcv_has_cuda_ops():
        return 'cuda'
    if dtype in LOW:
        pytest.skip("mmdet's predict under CUDA autocast needs mmcv's CUDA NMS "
                    '(compiled mmcv without CUDA kernels here: MMCV_CUDA_OPS=0)')
    return 'cpu'


def ulp_close(ours, theirs, dtype, atol=1e-4):
    """Equal up to float32 rounding, plus one unit in the last place of ``dtype``."""
    assert ours.dtype == theirs.dtype == dtype
    rtol = torch.finfo(dtype).eps if dtype in LOW else 1e-5
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=rtol, atol=atol)


def random_rois(num, h, w, images=2, seed=0):
    """``(num, 5)`` RoIs in an ``h x w`` image, some partly outside, some tiny."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=g) * torch.tensor([w * 1.2, h * 1.2]) - 0.1 * w
    wh = torch.rand(num, 2, generator=g) ** 2 * torch.tensor([w * 0.6, h * 0.6])
    batch = torch.randint(0, images, (num, 1), generator=g).float()
    return torch.cat([batch, xy, xy + wh], 1).cuda()


def feature_map(dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 16, 30, 40, generator=g).to('cuda', dtype)


def forward_backward(layer, feats, rois):
    feats = feats.clone().requires_grad_()
    out = layer(feats, rois)
    g = torch.Generator().manual_seed(2)
    out.backward(torch.randn(out.shape, generator=g).to(out))
    return out.detach(), feats.grad


# --------------------------------------------------------------------------- ops
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('dtype', [torch.float32, *LOW])
def test_roi_align_matches_torchvision(aligned, sampling_ratio, dtype):
    feats, rois = feature_map(dtype), random_rois(200, 480, 640)
    ours = ScratchRoIAlign(7, 1 / 16, sampling_ratio, 'avg', aligned)
    with torch.autocast('cuda', dtype=dtype, enabled=dtype in LOW):
        mine, my_grad = forward_backward(ours, feats, rois)
        ref, ref_grad = forward_backward(
            lambda f, r: torchvision.ops.roi_align(f, r, 7, 1 / 16, sampling_ratio, aligned),
            feats, rois)
    ulp_close(mine, ref, dtype)
    ulp_close(my_grad, ref_grad, dtype)


@pytest.mark.parametrize('dtype', [torch.float32, *LOW])
def test_roi_align_max_mode_matches_mmcv(dtype):
    """torchvision has no max mode: mmcv's kernel is the oracle, on the GPU when mmcv
    has its CUDA ops, else on the CPU (float32, then rounded to ``dtype``, which is
    what the autocast rule computes)."""
    feats, rois = feature_map(dtype), random_rois(200, 480, 640)
    with torch.autocast('cuda', dtype=dtype, enabled=dtype in LOW):
        mine = ScratchRoIAlign(7, 1 / 16, 2, 'max', True)(feats, rois)
    theirs = mmcv.ops.RoIAlign(7, 1 / 16, 2, 'max', True)
    if mmcv_has_cuda_ops():
        ref = theirs(feats.float(), rois)
    else:
        ref = theirs(feats.float().cpu(), rois.cpu()).cuda()
    ulp_close(mine, ref.to(dtype), dtype)


@pytest.mark.parametrize('dtype', [torch.float32, *LOW])
def test_roi_pool_matches_torchvision(dtype):
    """Max pooling picks elements: equal values; the gradient goes to the same cells."""
    feats, rois = feature_map(dtype), random_rois(200, 480, 640)
    with torch.autocast('cuda', dtype=dtype, enabled=dtype in LOW):
        mine, my_grad = forward_backward(ScratchRoIPool(7, 1 / 16), feats, rois)
        ref, ref_grad = forward_backward(
            lambda f, r: torchvision.ops.roi_pool(f, r, 7, 1 / 16), feats, rois)
    assert mine.dtype == ref.dtype == dtype
    assert torch.equal(mine, ref)
    ulp_close(my_grad, ref_grad, dtype, atol=1e-6)


def random_boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 800
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 200 + 1], 1)
    return boxes.cuda(), torch.rand(n, generator=g).cuda()


@pytest.mark.parametrize('n', [500, 6000])
@pytest.mark.parametrize('dtype', [torch.float32, *LOW])
def test_nms_matches_torchvision(n, dtype):
    """Under autocast the boxes arrive in ``dtype``; both sides compare them in float32."""
    boxes, scores = random_boxes(n, n)
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    with torch.autocast('cuda', dtype=dtype, enabled=dtype in LOW):
        keep = nms(boxes, scores, 0.7)
        assert torch.equal(keep, torchvision.ops.nms(boxes, scores, 0.7))
        if mmcv_has_cuda_ops():
            assert torch.equal(keep, mmcv.ops.nms(boxes.float(), scores.float(), 0.7)[1])


@pytest.mark.parametrize('dtype', [torch.float32, *LOW])
def test_batched_nms_matches_torchvision(dtype):
    boxes, scores = random_boxes(3000, 1)
    idxs = torch.randint(0, 20, (3000,), generator=torch.Generator().manual_seed(2)).cuda()
    boxes = boxes.to(dtype)
    with torch.autocast('cuda', dtype=dtype, enabled=dtype in LOW):
        dets, keep = batched_nms(boxes, scores, idxs, dict(iou_threshold=0.5))
        assert torch.equal(keep, torchvision.ops.batched_nms(boxes, scores, idxs, 0.5))
    assert dets.dtype == dtype
    assert torch.equal(dets[:, :4], boxes[keep]) and torch.equal(dets[:, 4], scores[keep].to(dtype))
    if mmcv_has_cuda_ops():
        ref_dets, ref_keep = mmcv.ops.batched_nms(boxes.float(), scores, idxs,
                                                  dict(iou_threshold=0.5))
        assert torch.equal(keep, ref_keep)


# ------------------------------------------------------------------------- heads
def r50_heads():
    model = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    rpn = dict(model.rpn_head, in_channels=8, feat_channels=8,
               train_cfg=ConfigDict(model.train_cfg.rpn), test_cfg=ConfigDict(model.test_cfg.rpn))
    rpn['train_cfg'].assigner.iou_calculator = dict(type='BboxOverlaps2D')
    return model, rpn


def rpn_samples(num_gts=(5, 2)):
    g = torch.Generator().manual_seed(0)
    out = []
    for (h, w), n in zip(((128, 160), (100, 120)), num_gts):
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.4, h * 0.4]) + 6
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), pad_shape=(128, 160),
                                             scale_factor=(1., 1.), ori_shape=(h, w)))
        sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                           labels=torch.zeros(n, dtype=torch.long))
        out.append(sample.to('cuda'))
    return out


@pytest.mark.parametrize('dtype', [torch.float32, *LOW])
def test_rpn_head_loss_and_proposals_match_mmdet(dtype):
    """Loss on the GPU against mmdet's RPNHead on the GPU (no mmcv kernel in its loss);
    proposals against mmdet's from the same head outputs (see :func:`oracle_device`)."""
    _, cfg = r50_heads()
    torch.manual_seed(0)
    theirs = MODELS.build(dict(cfg, type='RPNHead')).cuda()
    ours = MODELS.build(retyped(dict(cfg, type='ScratchRPNHead'), SCRATCH_TYPES)).cuda()
    ours.load_state_dict(theirs.state_dict())
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, h, w, generator=g).cuda()
             for h, w in ((32, 40), (16, 20), (8, 10), (4, 5), (2, 3))]
    data = rpn_samples()
    with torch.autocast('cuda', dtype=dtype, enabled=dtype in LOW):
        losses = []
        for head in (ours, theirs):
            torch.manual_seed(0)
            losses.append(head.loss(feats, data))
        outs = ours(feats)
    for key in losses[1]:
        for mine, ref in zip(losses[0][key], losses[1][key]):
            torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-6)
    metas = [s.metainfo for s in data]
    device = oracle_device(dtype)
    theirs.to(device)
    with torch.no_grad(), torch.autocast('cuda', dtype=dtype, enabled=dtype in LOW):
        mine = ours.predict_by_feat(*outs, batch_img_metas=metas)
        ref = theirs.predict_by_feat(*[[o.detach().to(device) for o in out] for out in outs],
                                     batch_img_metas=metas)
    for a, b in zip(mine, ref):
        assert len(a) == len(b)
        torch.testing.assert_close(a.bboxes.cpu(), b.bboxes.cpu(), rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(a.scores.cpu(), b.scores.float().cpu(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('dtype', [torch.float32, *LOW])
def test_bbox_head_loss_and_detections_match_mmdet(dtype):
    cfg = dict(in_channels=8, fc_out_channels=64, roi_feat_size=7, num_classes=5)
    torch.manual_seed(0)
    theirs = MODELS.build(dict(type='Shared2FCBBoxHead', **cfg)).cuda()
    ours = MODELS.build(dict(type='ScratchBBoxHead', **cfg)).cuda()
    ours.load_state_dict(theirs.state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 8, 7, 7, generator=g).cuda()
    rois = random_rois(60, 96, 128, images=1)
    rois[:, 0] = 0
    labels = torch.randint(0, 6, (60,), generator=g).cuda()
    targets = (labels, torch.ones(60, device='cuda'),
               torch.randn(60, 4, generator=g).cuda(),
               (labels < 5).float()[:, None].expand(60, 4).contiguous())
    test_cfg = ConfigDict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                          max_per_img=100)
    meta = dict(img_shape=(96, 128), scale_factor=(1., 1.))
    with torch.autocast('cuda', dtype=dtype, enabled=dtype in LOW):
        outs = [head(x) for head in (ours, theirs)]
        losses = [head.loss(*out, rois, *targets) for head, out in zip((ours, theirs), outs)]
    for key in losses[1]:
        torch.testing.assert_close(losses[0][key], losses[1][key], rtol=1e-5, atol=1e-6)
    device = oracle_device(dtype)
    with torch.no_grad(), torch.autocast('cuda', dtype=dtype, enabled=dtype in LOW):
        mine = ours.predict_by_feat((rois,), (outs[0][0],), (outs[0][1],), [meta], test_cfg)
        ref = theirs.to(device).predict_by_feat(
            (rois.to(device),), (outs[1][0].detach().to(device),),
            (outs[1][1].detach().to(device),), [meta], test_cfg)
    assert torch.equal(mine[0].labels.cpu(), ref[0].labels.cpu())
    torch.testing.assert_close(mine[0].bboxes.cpu(), ref[0].bboxes.float().cpu(),
                               rtol=1e-5, atol=1e-3)


# ---------------------------------------------------------------------- detector
@pytest.mark.parametrize('amp', [False, True])
def test_all_scratch_detector_trains_on_cuda(repo, amp):
    """The tutorials' VGG16 detector, every component ours, trains on the GPU through
    mmengine's wrappers (with --amp's ScratchAmpOptimWrapper, which is mmengine's
    AmpOptimWrapper here: float16 and a loss scaler), and its weights move."""
    model_cfg = Config.fromfile(repo / 'configs/frcnn_kitti_tiny.py').model
    model_cfg.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).cuda()
    before = copy.deepcopy(model.roi_head.bbox_head.fc_cls.weight.detach())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    wrapper = (OPTIM_WRAPPERS.build(dict(type='ScratchAmpOptimWrapper', optimizer=optimizer))
               if amp else OptimWrapper(optimizer))
    batch = detector_batch(sizes=((320, 480, 4), (288, 512, 2)), num_classes=3)
    for step in range(2):
        losses = model.train_step(copy.deepcopy(batch), wrapper)
        assert all(torch.isfinite(v) for v in losses.values())
    assert not torch.equal(before, model.roi_head.bbox_head.fc_cls.weight)
    model.eval()
    with torch.no_grad():
        predictions = model.test_step(copy.deepcopy(batch))
    assert all(p.pred_instances.bboxes.is_cuda for p in predictions)
