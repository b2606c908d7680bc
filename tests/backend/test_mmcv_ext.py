"""backend/mmcv_ext.py (``mmcv._ext`` for mmcv-lite) against compiled mmcv's kernels.

Everywhere: against the kernels' C++ / CUDA source ported scalar by scalar
(``mmcv_kernels``) and against torchvision's kernels, bit for bit, outputs and gradients,
on random and edge-case inputs. Where compiled mmcv is installed (``compiled_mmcv``, as
``MMCV_OPS=compiled make env`` builds it): against its own ``mmcv._ext``.
"""
import importlib.util
import sys
from pathlib import Path

import mmcv
import mmcv.ops
import mmcv_kernels
import numpy as np
import pytest
import torch
import torchvision
from conftest import REPO

SPEC = importlib.util.spec_from_file_location('mmcv_ext_backend', REPO / 'backend' / 'mmcv_ext.py')
backend = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(backend)


def random_boxes(num, seed, ties=False):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=gen) * 60
    boxes = torch.cat([xy, xy + torch.rand(num, 2, generator=gen) * 40 + 0.5], 1)
    boxes[::7, 2:] = boxes[::7, :2]  # zero-size boxes: 0 / 0 IoU, never suppressing
    boxes[1::11] = boxes[0]  # duplicates: IoU 1
    scores = torch.rand(num, generator=gen)
    if ties:
        scores = (scores * 4).round() / 4  # five score values: many ties
    return boxes, scores


def random_rois(num, seed, scale, height=12, width=16, negative=False):
    """RoIs from sub-cell to larger than the map, partly and fully outside it, zero-size
    ones, and (``negative``) inverted ones."""
    gen = torch.Generator().manual_seed(seed)
    extent = torch.tensor([width / scale, height / scale])
    corner = torch.rand(num, 2, generator=gen) * extent * 1.6 - extent * 0.3
    size = torch.rand(num, 2, generator=gen) ** 2 * extent
    size[0::9] = 0
    size[1::9, 0] = 0.2 / scale
    if negative:
        size[2::9] *= -1
    batch = torch.randint(0, 2, (num, 1), generator=gen).float()
    return torch.cat([batch, corner, corner + size], 1)


def features(seed=1, channels=3, height=12, width=16):
    return torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(seed))


def assert_same(ours, theirs):
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert torch.equal(ours, theirs), (ours - theirs).abs().max()


# ------------------------------------------------------------------------------ NMS
@pytest.mark.parametrize('offset', [0, 1])
@pytest.mark.parametrize('iou_threshold', [0.3, 0.5, 0.7])
@pytest.mark.parametrize('ties', [False, True])
def test_nms_equals_the_kernel(offset, iou_threshold, ties):
    boxes, scores = random_boxes(80, seed=offset + 3 * ties, ties=ties)
    keep = backend.nms(boxes, scores, iou_threshold=iou_threshold, offset=offset)
    assert_same(keep, mmcv_kernels.nms(boxes, scores, iou_threshold, offset))


def test_nms_compares_the_threshold_as_a_float():
    # A threshold a quarter float32 step under the pair's IoU: as a C float (mmcv) it is
    # the IoU itself, which is not above it; as a double (torchvision) it is below it.
    boxes, scores = torch.tensor([[0., 0., 10., 10.], [3., 2., 13., 12.]]), torch.tensor([.9, .8])
    inter = torch.tensor(7. * 8.)
    iou = (inter / (100. + 100. - inter)).item()
    threshold = iou - float(np.spacing(np.float32(iou))) / 4
    assert np.float32(threshold) == np.float32(iou)
    assert backend.nms(boxes, scores, threshold, 0).tolist() == [0, 1]
    assert mmcv_kernels.nms(boxes, scores, threshold, 0).tolist() == [0, 1]
    assert torchvision.ops.nms(boxes, scores, threshold).tolist() == [0]


def test_nms_of_no_boxes():
    keep = backend.nms(torch.zeros(0, 4), torch.zeros(0), 0.5, 0)
    assert keep.dtype == torch.long and keep.shape == (0,)


def test_mmcv_nms_and_batched_nms_run_on_the_backend_in_this_environment():
    boxes, scores = random_boxes(60, seed=5)
    dets, keep = mmcv.ops.nms(boxes, scores, 0.5)
    assert_same(keep, mmcv_kernels.nms(boxes, scores, 0.5, 0))
    assert_same(dets, torch.cat([boxes[keep], scores[keep, None]], 1))
    idxs = torch.arange(60) % 3
    _, keep = mmcv.ops.batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=0.5))
    shifted = boxes + idxs[:, None] * (boxes.max() + 1)
    assert_same(keep, mmcv_kernels.nms(shifted, scores, 0.5, 0))


# ------------------------------------------------------------------------------ RoIAlign
def roi_align(ops, feats, rois, size, scale, ratio, mode, aligned, grad_seed=2):
    """Forward and backward through ``ops`` (a module with mmcv's ``_ext`` functions)."""
    shape = (rois.size(0), feats.size(1), *size)
    out, arg_y, arg_x = feats.new_zeros(shape), feats.new_zeros(shape), feats.new_zeros(shape)
    pool_mode = 0 if mode == 'max' else 1
    if pool_mode:
        arg_y, arg_x = feats.new_zeros(0), feats.new_zeros(0)
    ops.roi_align_forward(feats, rois, out, arg_y, arg_x, aligned_height=size[0],
                          aligned_width=size[1], spatial_scale=scale, sampling_ratio=ratio,
                          pool_mode=pool_mode, aligned=aligned)
    grad_out = torch.randn(shape, generator=torch.Generator().manual_seed(grad_seed))
    grad = torch.zeros_like(feats)
    ops.roi_align_backward(grad_out, rois, arg_y, arg_x, grad, aligned_height=size[0],
                           aligned_width=size[1], spatial_scale=scale, sampling_ratio=ratio,
                           pool_mode=pool_mode, aligned=aligned)
    return out, arg_y, arg_x, grad_out, grad


ALIGN_CASES = [((3, 2), 0.25, 0, 'max', True), ((3, 2), 0.25, 2, 'max', False),
               ((2, 3), 1.0, 0, 'max', False), ((3, 3), 0.5, 1, 'max', True),
               ((3, 2), 0.25, 0, 'avg', True), ((2, 3), 0.5, 2, 'avg', False)]


@pytest.mark.parametrize('size,scale,ratio,mode,aligned', ALIGN_CASES)
def test_roi_align_equals_the_kernel(size, scale, ratio, mode, aligned):
    feats = features()
    rois = random_rois(24, seed=ratio + 7 * aligned, scale=scale, negative=not aligned)
    out, arg_y, arg_x, grad_out, grad = roi_align(backend, feats, rois, size, scale, ratio,
                                                  mode, aligned)
    pool_mode = 0 if mode == 'max' else 1
    ref_out, ref_y, ref_x = mmcv_kernels.roi_align_forward(feats, rois, *size, scale, ratio,
                                                           pool_mode, aligned)
    assert_same(out, ref_out)
    if mode == 'max':
        assert_same(arg_y, ref_y)
        assert_same(arg_x, ref_x)
    ref_grad = mmcv_kernels.roi_align_backward(grad_out, rois, ref_y, ref_x, feats.shape,
                                               scale, ratio, pool_mode, aligned)
    assert_same(grad, ref_grad)


def test_roi_align_max_mode_marks_bins_without_samples():
    # A zero-size aligned RoI has no sample: -10000 and no argmax, as the kernel's scan starts.
    feats = features()
    rois = torch.tensor([[0., 4., 4., 4., 4.]])
    out, arg_y, arg_x, _, grad = roi_align(backend, feats, rois, (2, 2), 1.0, 0, 'max', True)
    assert (out == -10000).all() and (arg_y == -1).all() and (arg_x == -1).all()
    assert (grad == 0).all()


def test_roi_align_avg_is_torchvisions_kernel():
    feats, rois = features(seed=3, channels=8, height=30, width=40), random_rois(
        200, seed=4, scale=1 / 16, height=30, width=40)
    out, _, _, grad_out, grad = roi_align(backend, feats, rois, (7, 7), 1 / 16, 0, 'avg', True)
    x = feats.clone().requires_grad_()
    ref = torchvision.ops.roi_align(x, rois, 7, 1 / 16, 0, True)
    ref.backward(grad_out)
    assert_same(out, ref.detach())
    assert_same(grad, x.grad)


def test_roi_align_refuses_negative_sizes_when_aligned():
    feats, rois = features(), torch.tensor([[0., 5., 5., 4., 8.]])
    with pytest.raises(RuntimeError, match='ROIs in ROIAlign cannot have non-negative size'):
        mmcv.ops.RoIAlign(2, 1.0, 0, 'avg', True)(feats, rois)
    out = mmcv.ops.RoIAlign(2, 1.0, 0, 'avg', False)(feats, rois)  # legacy: 1 x 1 at least
    assert out.shape == (1, 3, 2, 2)


def test_roi_align_layer_runs_on_the_backend_in_this_environment():
    feats, rois = features().requires_grad_(), random_rois(20, seed=9, scale=0.5)
    out = mmcv.ops.RoIAlign((3, 2), 0.5, 0, 'max', True)(feats, rois)
    out.backward(torch.ones_like(out))
    ref_out, ref_y, ref_x = mmcv_kernels.roi_align_forward(feats.detach(), rois, 3, 2, 0.5, 0,
                                                           0, True)
    assert_same(out.detach(), ref_out)
    ref_grad = mmcv_kernels.roi_align_backward(torch.ones_like(out), rois, ref_y, ref_x,
                                               feats.shape, 0.5, 0, 0, True)
    assert_same(feats.grad, ref_grad)


# ------------------------------------------------------------------------------ RoIPool
@pytest.mark.parametrize('size,scale', [((3, 2), 0.25), ((2, 3), 1.0), ((4, 4), 0.5)])
def test_roi_pool_equals_the_kernel(size, scale):
    feats = features(seed=6)
    feats[0, 0, :3] = feats[0, 0, 0, 0]  # tied maxima: the first in row order wins
    rois = random_rois(30, seed=int(8 * scale), scale=scale, negative=True)
    out = feats.new_zeros((30, 3, *size))
    argmax = torch.zeros(out.shape, dtype=torch.int)
    backend.roi_pool_forward(feats, rois, out, argmax, pooled_height=size[0],
                             pooled_width=size[1], spatial_scale=scale)
    ref_out, ref_argmax = mmcv_kernels.roi_pool_forward(feats, rois, *size, scale)
    assert_same(out, ref_out)
    assert_same(argmax, ref_argmax)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    grad = torch.zeros_like(feats)
    backend.roi_pool_backward(grad_out, rois, argmax, grad, pooled_height=size[0],
                              pooled_width=size[1], spatial_scale=scale)
    assert_same(grad, mmcv_kernels.roi_pool_backward(grad_out, rois, ref_argmax, feats.shape))


@pytest.mark.lite_mmcv  # compiled mmcv's RoIPool has no CPU kernel
def test_roi_pool_layer_runs_on_the_backend_in_this_environment():
    feats, rois = features().requires_grad_(), random_rois(10, seed=2, scale=0.5)
    out = mmcv.ops.RoIPool((2, 2), 0.5)(feats, rois)
    out.sum().backward()
    ref, argmax = mmcv_kernels.roi_pool_forward(feats.detach(), rois, 2, 2, 0.5)
    assert_same(out.detach(), ref)
    assert_same(feats.grad, mmcv_kernels.roi_pool_backward(torch.ones_like(ref), rois, argmax,
                                                           feats.shape))


# ------------------------------------------------------------------------------ the rest
def test_other_ops_say_they_need_compiled_mmcv():
    with pytest.raises(NotImplementedError) as error:
        backend.deform_conv_forward(torch.zeros(1))
    message = str(error.value)
    assert "'deform_conv_forward'" in message and 'MMCV_OPS=compiled' in message
    assert '\n' not in message


def test_info_functions():
    assert backend.get_compiling_cuda_version() == (torch.version.cuda or 'not available')
    assert 'torchvision' in backend.get_compiler_version()


@pytest.mark.lite_mmcv
def test_the_installed_extension_is_this_backend():
    """tools/setup_env.sh copies backend/mmcv_ext.py to mmcv/_ext.py; ``import mmcv.ops``
    loads every op module, each checking that its names exist."""
    import mmcv._ext
    assert mmcv._ext.__file__.endswith('_ext.py')
    with open(mmcv._ext.__file__) as installed:
        assert installed.read() == (REPO / 'backend' / 'mmcv_ext.py').read_text(), \
            f'{mmcv._ext.__file__} is not backend/mmcv_ext.py: run make env'
    assert mmcv.ops.get_compiling_cuda_version() == backend.get_compiling_cuda_version()


def test_no_component_imports_the_backend():
    """The backend serves mmdet's layers and the oracles; our components implement their
    algorithms themselves."""
    for path in (REPO / 'frcnn_plugin').rglob('*.py'):
        text = path.read_text()
        assert 'mmcv_ext' not in text and 'mmcv._ext' not in text, path


@pytest.mark.parametrize(
    'ops', ['backend', pytest.param('compiled', marks=pytest.mark.compiled_mmcv)])
def test_dtypes_the_kernels_refuse(ops):
    """The kernels read NMS boxes as C floats and dispatch RoIAlign for float, double
    and half: bfloat16 is refused with compiled mmcv's errors."""
    if ops == 'compiled':
        import mmcv._ext as ops
    else:
        ops = backend
    boxes, scores = random_boxes(10, seed=1)
    with pytest.raises(RuntimeError, match='expected scalar type Float but found BFloat16'):
        ops.nms(boxes.bfloat16(), scores.bfloat16(), iou_threshold=0.5, offset=0)
    feats, rois = features().bfloat16(), random_rois(5, seed=1, scale=1.0).bfloat16()
    with pytest.raises(NotImplementedError,
                       match='"ROIAlign_forward" not implemented for \'BFloat16\''):
        roi_align(ops, feats, rois, (2, 2), 1.0, 0, 'avg', True)


# ------------------------------------------------------------------------------ compiled
@pytest.mark.compiled_mmcv
@pytest.mark.parametrize('offset', [0, 1])
@pytest.mark.parametrize('ties', [False, True])
def test_nms_equals_compiled_mmcv(offset, ties):
    import mmcv._ext as compiled
    for seed in range(5):
        boxes, scores = random_boxes(400, seed=seed, ties=ties)
        for threshold in (0.3, 0.5, 0.7, 0.9):
            assert_same(backend.nms(boxes, scores, iou_threshold=threshold, offset=offset),
                        compiled.nms(boxes, scores, iou_threshold=threshold, offset=offset))


@pytest.mark.compiled_mmcv
@pytest.mark.parametrize('size,scale,ratio,mode,aligned',
                         ALIGN_CASES + [((7, 7), 1 / 16, 0, 'avg', True),
                                        ((7, 7), 1 / 16, 0, 'max', True),
                                        ((7, 7), 1 / 16, 2, 'avg', False)])
def test_roi_align_equals_compiled_mmcv(size, scale, ratio, mode, aligned):
    import mmcv._ext as compiled
    feats = features(seed=ratio, channels=8, height=30, width=40)
    rois = random_rois(300, seed=ratio + 2, scale=scale, height=30, width=40,
                       negative=not aligned)
    ours = roi_align(backend, feats, rois, size, scale, ratio, mode, aligned)
    theirs = roi_align(compiled, feats, rois, size, scale, ratio, mode, aligned)
    for a, b in zip(ours, theirs):
        assert_same(a, b)


@pytest.mark.compiled_mmcv
def test_roi_align_negative_size_error_equals_compiled_mmcv():
    import mmcv._ext as compiled
    feats, rois = features(), torch.tensor([[0., 5., 5., 4., 8.]])
    for ops in (backend, compiled):
        with pytest.raises(RuntimeError, match='ROIs in ROIAlign cannot have non-negative size'):
            roi_align(ops, feats, rois, (2, 2), 1.0, 0, 'avg', True)


@pytest.mark.compiled_mmcv
def test_stock_mmdet_detector_trains_and_predicts_the_same_on_the_backend(monkeypatch):
    """mmdet's own Faster R-CNN R50-FPN (mmcv's NMS and RoIAlign inside): two seeded SGD
    steps and a prediction on compiled mmcv's kernels, then on the backend's."""
    import mmdet
    from detector_parity import detector_batch, load_random_weights, train_and_predict
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(Path(mmdet.__file__).parent
                          / '.mim/configs/_base_/models/faster-rcnn_r50_fpn.py').model
    cfg.backbone.init_cfg = None
    cfg.test_cfg.rcnn.score_thr = 0  # random weights: detections of every score
    model = MODELS.build(cfg)
    load_random_weights(model, model, seed=0, scale=0.02)
    state, batch = model.state_dict(), detector_batch()
    compiled = train_and_predict(cfg, state, batch)
    for name in ('mmcv.ops.nms', 'mmcv.ops.roi_align', 'mmcv.ops.roi_pool'):
        monkeypatch.setattr(sys.modules[name], 'ext_module', backend)
    lite = train_and_predict(cfg, state, batch)
    for theirs, ours in zip(compiled[0], lite[0]):
        assert {k: v.item() for k, v in ours.items()} == {k: v.item() for k, v in theirs.items()}
    for theirs, ours in zip(compiled[1], lite[1]):
        assert len(theirs) > 0
        for key in ('bboxes', 'scores', 'labels'):
            assert_same(ours[key], theirs[key])
