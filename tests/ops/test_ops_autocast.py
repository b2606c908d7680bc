"""The ops under ``torch.autocast('cpu', dtype=torch.bfloat16)``: computed in float32 and
returned in the input's dtype (frcnn_plugin/ops/autocast.py), against torchvision's
kernels under the same autocast (its roi_align and nms wrap themselves that way on the
CPU) and mmcv's on the float32 values (its CPU kernels take no bfloat16).

Tolerances: both sides compute in float32 and round the result to bfloat16 once, so a
value may differ by one bfloat16 unit in the last place where the two float32 results
straddle a rounding boundary: ``rtol = 2^-7`` (bfloat16 keeps 8 significant bits).
Max pooling and NMS select elements, so they agree exactly.
"""
import mmcv.ops
import pytest
import torch
import torchvision

from frcnn_plugin.ops import ScratchRoIAlign, ScratchRoIPool, batched_nms, nms
from frcnn_plugin.ops.autocast import float32_under_autocast

BF16 = torch.bfloat16
BF16_RTOL = 2 ** -7


def bf16_autocast(enabled=True):
    return torch.autocast('cpu', dtype=BF16, enabled=enabled)


def assert_bf16_close(ours, theirs, atol=1e-4):
    assert ours.dtype == theirs.dtype == BF16
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=BF16_RTOL, atol=atol)


def random_rois(num, seed=0, images=2, extent=(640., 480.)):
    """``(num, 5)`` RoIs over a 480 x 640 image, some partly outside, some tiny."""
    g = torch.Generator().manual_seed(seed)
    extent = torch.tensor(extent)
    xy = torch.rand(num, 2, generator=g) * extent * 1.2 - extent * 0.1
    wh = torch.rand(num, 2, generator=g) ** 2 * extent * 0.6
    batch = torch.randint(0, images, (num, 1), generator=g).float()
    return torch.cat([batch, xy, xy + wh], 1)


def bf16_features(seed=1):
    """What a conv gives under autocast: bfloat16 features (here of a 480 x 640 image
    at stride 16)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 16, 30, 40, generator=g).to(BF16)


def forward_backward(layer, feats, rois, autocast=True):
    """Output (the forward under bfloat16 autocast) and input gradient for a seeded
    upstream gradient in the output's dtype. The backward runs after autocast is left,
    as PyTorch recommends and mmengine's optimizer wrappers do."""
    feats = feats.clone().requires_grad_()
    with bf16_autocast(autocast):
        out = layer(feats, rois)
    g = torch.Generator().manual_seed(2)
    # bfloat16 values whatever the output's dtype: the oracle's float32 backward gets
    # the very upstream gradient the bfloat16 side gets.
    out.backward(torch.randn(out.shape, generator=g).to(BF16).to(out.dtype))
    return out.detach(), feats.grad


# ----------------------------------------------------------------------- the rule
def test_the_rule_float32_inside_the_input_dtype_outside():
    seen = []

    @float32_under_autocast
    def op(x, scale, y=None):
        seen.append((x.dtype, None if y is None else y.dtype, torch.is_autocast_enabled('cpu')))
        return x * scale, (x > 0).sum()

    x = torch.randn(4).to(BF16)
    with bf16_autocast():
        out, count = op(x, 2., y=torch.randn(4, dtype=torch.float16))
    assert seen[-1] == (torch.float32, torch.float32, False)
    assert out.dtype == BF16 and count.dtype == torch.int64
    # Without autocast, and for float64 under it, the op runs in the dtype it is given.
    assert op(x, 2.)[0].dtype == BF16 and seen[-1][0] == BF16
    with bf16_autocast():
        assert op(x.double(), 2.)[0].dtype == torch.float64 and seen[-1][0] == torch.float64


# --------------------------------------------------------------------------- ops
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_roi_align_matches_torchvision_under_autocast(aligned, sampling_ratio):
    feats, rois = bf16_features(), random_rois(200)
    mine, my_grad = forward_backward(
        ScratchRoIAlign(7, 1 / 16, sampling_ratio, 'avg', aligned), feats, rois)
    ref, ref_grad = forward_backward(
        lambda f, r: torchvision.ops.roi_align(f, r, 7, 1 / 16, sampling_ratio, aligned),
        feats, rois)
    assert_bf16_close(mine, ref)
    assert_bf16_close(my_grad, ref_grad)


@pytest.mark.parametrize('pool_mode', ['avg', 'max'])
def test_roi_align_is_mmcv_in_float32_rounded_to_bfloat16(pool_mode):
    """mmcv's CPU kernel has no bfloat16 ("ROIAlign_forward" not implemented for
    'BFloat16'): its float32 result on the same values, rounded, is the oracle."""
    feats, rois = bf16_features(), random_rois(200)
    mine, my_grad = forward_backward(ScratchRoIAlign(7, 1 / 16, 2, pool_mode), feats, rois)
    ref, ref_grad = forward_backward(mmcv.ops.RoIAlign(7, 1 / 16, 2, pool_mode),
                                     feats.float(), rois, autocast=False)
    assert_bf16_close(mine, ref.to(BF16))
    assert_bf16_close(my_grad, ref_grad.to(BF16))


def test_roi_pool_is_torchvision_in_float32():
    """torchvision registers no CPU autocast for roi_pool (bfloat16 features with
    float32 RoIs fail there): its float32 result is the oracle. The maxima are elements
    of the bfloat16 input, so equal exactly; so is the gradient each winner gets."""
    feats, rois = bf16_features(), random_rois(200)
    mine, my_grad = forward_backward(ScratchRoIPool(7, 1 / 16), feats, rois)
    ref, ref_grad = forward_backward(lambda f, r: torchvision.ops.roi_pool(f, r, 7, 1 / 16),
                                     feats.float(), rois, autocast=False)
    assert mine.dtype == my_grad.dtype == BF16
    assert torch.equal(mine, ref.to(BF16))
    assert_bf16_close(my_grad, ref_grad.to(BF16))


def random_boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 800
    return (torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 200 + 1], 1),
            torch.rand(n, generator=g))


def distinct_bf16_scores(n, seed):
    """``n <= 256`` scores without ties in bfloat16 (integers up to 256 are exact): with
    ties, which of two equal boxes survives depends on each kernel's sort."""
    return (torch.randperm(n, generator=torch.Generator().manual_seed(seed)) + 1).to(BF16)


@pytest.mark.parametrize('n, score_dtype', [(250, BF16), (3000, torch.float32)])
def test_nms_matches_torchvision_and_mmcv_under_autocast(n, score_dtype):
    """bfloat16 boxes (as a bfloat16 head would give them): compared in float32 on
    every side, so the same boxes are kept in the same order."""
    boxes, scores = random_boxes(n, n)
    boxes = boxes.to(BF16)
    scores = distinct_bf16_scores(n, n) if score_dtype == BF16 else scores
    with bf16_autocast():
        keep = nms(boxes, scores, 0.7)
        assert torch.equal(keep, torchvision.ops.nms(boxes, scores, 0.7))
    assert torch.equal(keep, mmcv.ops.nms(boxes.float(), scores.float(), 0.7)[1])


@pytest.mark.parametrize('box_dtype', [torch.float32, BF16])
def test_batched_nms_matches_mmcv_under_autocast(box_dtype):
    """As the heads call it under autocast: float32 boxes with bfloat16 scores (mmcv
    takes those and returns float32 ``dets``), or bfloat16 boxes (which mmcv's kernel
    refuses, so its float32 result is the oracle); ``dets`` come in the boxes' dtype."""
    boxes, scores = random_boxes(2000, 1)
    boxes, scores = boxes.to(box_dtype), scores.to(BF16)
    idxs = torch.randint(0, 20, (2000,), generator=torch.Generator().manual_seed(2))
    cfg = dict(iou_threshold=0.5)
    with bf16_autocast():
        dets, keep = batched_nms(boxes, scores, idxs, cfg)
        if box_dtype == torch.float32:
            ref_dets, ref_keep = mmcv.ops.batched_nms(boxes, scores, idxs, cfg)
        else:
            ref_dets, ref_keep = mmcv.ops.batched_nms(boxes.float(), scores.float(), idxs, cfg)
    # Equal to mmcv's even in the order of tied bfloat16 scores (torchvision's sort
    # orders ties differently).
    assert torch.equal(keep, ref_keep)
    assert dets.dtype == box_dtype
    assert torch.equal(dets, ref_dets.to(box_dtype))
