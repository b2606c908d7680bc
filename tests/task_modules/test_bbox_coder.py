"""ScratchDeltaXYWHBBoxCoder against mmdet's DeltaXYWHBBoxCoder (the oracle)."""
import warnings

import mmdet.models  # noqa: F401  registers the oracles
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes

from frcnn_plugin.task_modules.bbox_coder import ScratchDeltaXYWHBBoxCoder

IMG_H, IMG_W = 800, 1333
NORMS = [dict(),  # the RPN's (0, 0, 0, 0) / (1, 1, 1, 1)
         dict(target_means=(0., 0., 0., 0.), target_stds=(.1, .1, .2, .2)),  # the R-CNN head's
         dict(target_means=(.05, -.1, .02, 0.), target_stds=(.5, .3, .2, 1.))]
DECODE_ATOL = 1e-3  # pixels


def coders(**cfg):
    """(ours, mmdet's) built from one config."""
    return (TASK_UTILS.build(dict(type='ScratchDeltaXYWHBBoxCoder', **cfg)),
            TASK_UTILS.build(dict(type='DeltaXYWHBBoxCoder', **cfg)))


def random_boxes(num, *batch, seed=0, degenerate=True):
    """``(*batch, num, 4)`` seeded boxes: corners up to 100 px outside the image,
    sizes up to 300 px, every 8th box 10x larger; with ``degenerate`` also points,
    zero-width lines and inverted boxes."""
    gen = torch.Generator().manual_seed(seed)
    extent = torch.tensor([IMG_W + 200., IMG_H + 200.])
    corner = torch.rand(*batch, num, 2, generator=gen) * extent - 100
    size = torch.rand(*batch, num, 2, generator=gen) * 300 + 1
    size[..., 3::8, :] *= 10
    if degenerate:
        size[..., 0::8, :] = 0
        size[..., 1::8, 0] = 0
        size[..., 2::8, :] *= -1
    return torch.cat([corner, corner + size], -1)


def random_deltas(num, width, *batch, seed=0):
    """Network-like deltas, every 5th row wild enough to hit the dw/dh clamp."""
    gen = torch.Generator().manual_seed(seed)
    deltas = torch.randn(*batch, num, width, generator=gen)
    deltas[..., ::5, :] *= 8
    return deltas


def oracle_decode(coder, *args, **kwargs):
    with warnings.catch_warnings():  # mmdet deprecates its own batched path
        warnings.simplefilter('ignore')
        return coder.decode(*args, **kwargs)


def assert_decoded(ours, theirs):
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, atol=DECODE_ATOL, rtol=0, equal_nan=True)


# ---------------------------------------------------------------- encode

@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('degenerate', [False, True])
def test_encode_parity(norm, degenerate):
    ours, theirs = coders(**norm)
    bboxes = random_boxes(400, seed=1, degenerate=degenerate)
    gt_bboxes = random_boxes(400, seed=2, degenerate=degenerate)
    encoded = ours.encode(bboxes, gt_bboxes)
    expected = theirs.encode(bboxes, gt_bboxes)
    assert encoded.shape == (400, 4) and encoded.dtype == expected.dtype == torch.float32
    # Zero-size boxes make inf / nan in both, at the same places.
    torch.testing.assert_close(encoded, expected, atol=1e-5, rtol=1e-5, equal_nan=True)
    assert torch.isfinite(encoded).all() != degenerate


def test_encode_box_types_dtypes_and_empty():
    ours, theirs = coders(target_stds=(.1, .1, .2, .2))
    bboxes = random_boxes(50, seed=3, degenerate=False)
    gt_bboxes = random_boxes(50, seed=4, degenerate=False)
    expected = theirs.encode(bboxes, gt_bboxes)
    boxed = ours.encode(HorizontalBoxes(bboxes), HorizontalBoxes(gt_bboxes))
    torch.testing.assert_close(boxed, expected)
    doubled = ours.encode(bboxes.double(), gt_bboxes.double())
    assert doubled.dtype == theirs.encode(bboxes.double(), gt_bboxes.double()).dtype
    torch.testing.assert_close(doubled, expected, atol=1e-5, rtol=1e-5)
    empty = ours.encode(torch.zeros(0, 4), torch.zeros(0, 4))
    assert empty.shape == theirs.encode(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 4)
    with pytest.raises(ValueError):
        ours.encode(bboxes, gt_bboxes[:10])


# ---------------------------------------------------------------- decode, one image

@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('num_classes', [1, 3])
@pytest.mark.parametrize('max_shape', [None, (IMG_H, IMG_W), (IMG_H, IMG_W, 3),
                                       torch.tensor([IMG_H, IMG_W])])
def test_decode_parity(norm, num_classes, max_shape):
    ours, theirs = coders(**norm)
    bboxes = random_boxes(300, seed=5)
    deltas = random_deltas(300, 4 * num_classes, seed=6)
    decoded = ours.decode(bboxes, deltas, max_shape=max_shape)
    assert decoded.shape == (300, 4 * num_classes)
    assert_decoded(decoded, theirs.decode(bboxes, deltas, max_shape=max_shape))


@pytest.mark.parametrize('clip_border', [True, False])
@pytest.mark.parametrize('add_ctr_clamp, ctr_clamp', [(False, 32), (True, 32), (True, 8)])
@pytest.mark.parametrize('wh_ratio_clip', [16 / 1000, 1 / 16])
def test_decode_flags_parity(clip_border, add_ctr_clamp, ctr_clamp, wh_ratio_clip):
    cfg = dict(target_stds=(.1, .1, .2, .2), clip_border=clip_border,
               add_ctr_clamp=add_ctr_clamp, ctr_clamp=ctr_clamp)
    ours, theirs = coders(**cfg)
    bboxes, deltas = random_boxes(300, seed=7), random_deltas(300, 8, seed=8)
    kwargs = dict(max_shape=(IMG_H, IMG_W), wh_ratio_clip=wh_ratio_clip)
    decoded = ours.decode(bboxes, deltas, **kwargs)
    assert_decoded(decoded, theirs.decode(bboxes, deltas, **kwargs))
    inside = ((decoded >= 0) & (decoded[:, 0::2] <= IMG_W).repeat_interleave(2, 1)
              & (decoded[:, 1::2] <= IMG_H).repeat_interleave(2, 1))
    assert inside.all() == clip_border


def test_decode_realistic_rpn_size():
    """One FPN level's worth of anchors, in the RPN's default configuration."""
    ours, theirs = coders()
    anchors, deltas = random_boxes(20000, seed=9), random_deltas(20000, 4, seed=10)
    assert_decoded(ours.decode(anchors, deltas, max_shape=(IMG_H, IMG_W)),
                   theirs.decode(anchors, deltas, max_shape=(IMG_H, IMG_W)))


def test_decode_box_types():
    cfg = dict(target_stds=(.1, .1, .2, .2), use_box_type=True)
    ours, theirs = coders(**cfg)
    bboxes, deltas = random_boxes(60, seed=11), random_deltas(60, 4, seed=12)
    decoded = ours.decode(HorizontalBoxes(bboxes), deltas, max_shape=(IMG_H, IMG_W))
    expected = theirs.decode(HorizontalBoxes(bboxes), deltas, max_shape=(IMG_H, IMG_W))
    assert isinstance(decoded, HorizontalBoxes) and isinstance(expected, HorizontalBoxes)
    assert_decoded(decoded.tensor, expected.tensor)
    with pytest.raises(ValueError, match='HorizontalBoxes'):
        ours.decode(bboxes, random_deltas(60, 12, seed=13))
    # Without use_box_type, box-type input still gives a plain tensor.
    plain = ScratchDeltaXYWHBBoxCoder().decode(HorizontalBoxes(bboxes), deltas)
    assert type(plain) is torch.Tensor


@pytest.mark.parametrize('num_classes', [1, 4])
@pytest.mark.parametrize('max_shape', [None, (IMG_H, IMG_W)])
def test_decode_empty(num_classes, max_shape):
    ours, theirs = coders()
    bboxes, deltas = torch.zeros(0, 4), torch.zeros(0, 4 * num_classes)
    decoded = ours.decode(bboxes, deltas, max_shape=max_shape)
    expected = theirs.decode(bboxes, deltas, max_shape=max_shape)
    assert decoded.shape == expected.shape == (0, 4 * num_classes)
    bboxes, deltas = bboxes.expand(2, 0, 4), deltas.expand(2, 0, 4 * num_classes)
    batched = ours.decode(bboxes, deltas, max_shape=max_shape)
    expected = oracle_decode(theirs, bboxes, deltas, max_shape=max_shape)
    assert batched.shape == expected.shape == (2, 0, 4 * num_classes)


def test_decode_mismatched_shapes():
    ours = ScratchDeltaXYWHBBoxCoder()
    with pytest.raises(ValueError, match='do not match'):
        ours.decode(torch.zeros(5, 4), torch.zeros(6, 4))
    with pytest.raises(ValueError, match='do not match'):
        ours.decode(torch.zeros(2, 5, 4), torch.zeros(2, 6, 4))


# ---------------------------------------------------------------- decode, batched

@pytest.mark.parametrize('norm', NORMS[:2])
@pytest.mark.parametrize('num_classes', [1, 3])
@pytest.mark.parametrize('max_shape', [
    None,
    (IMG_H, IMG_W),                                   # one shape for all images
    [(IMG_H, IMG_W), (600, 900), (320, 1000)],        # one per image
    torch.tensor([[IMG_H, IMG_W], [600, 900], [320, 1000]]),
    torch.tensor([[IMG_H, IMG_W, 3], [600, 900, 3], [320, 1000, 3]]),
])
def test_batched_decode_parity(norm, num_classes, max_shape):
    ours, theirs = coders(**norm)
    bboxes = random_boxes(200, 3, seed=14)
    deltas = random_deltas(200, 4 * num_classes, 3, seed=15)
    decoded = ours.decode(bboxes, deltas, max_shape=max_shape)
    assert decoded.shape == (3, 200, 4 * num_classes)
    assert_decoded(decoded, oracle_decode(theirs, bboxes, deltas, max_shape=max_shape))
    # Each image decodes as it would alone, under its own shape.
    if max_shape is not None and len(max_shape) == 3:
        max_shape = tuple(torch.as_tensor(max_shape[1]).tolist())
    assert_decoded(decoded[1], ours.decode(bboxes[1], deltas[1], max_shape=max_shape))


@pytest.mark.parametrize('add_ctr_clamp', [False, True])
def test_batched_decode_flags_parity(add_ctr_clamp):
    ours, theirs = coders(add_ctr_clamp=add_ctr_clamp, ctr_clamp=16, clip_border=False)
    bboxes, deltas = random_boxes(200, 2, seed=16), random_deltas(200, 4, 2, seed=17)
    kwargs = dict(max_shape=(IMG_H, IMG_W), wh_ratio_clip=1 / 16)
    assert_decoded(ours.decode(bboxes, deltas, **kwargs),
                   oracle_decode(theirs, bboxes, deltas, **kwargs))


def test_batched_max_shape_count_must_match():
    with pytest.raises(ValueError, match='max_shape'):
        ScratchDeltaXYWHBBoxCoder().decode(random_boxes(10, 2), random_deltas(10, 4, 2),
                                           max_shape=[(IMG_H, IMG_W)] * 3)


# ---------------------------------------------------------------- round trip and config

def test_decode_inverts_encode():
    ours, _ = coders(target_means=(.05, -.1, .02, 0.), target_stds=(.1, .1, .2, .2))
    bboxes = random_boxes(500, seed=18, degenerate=False)
    # Targets within 62x the size of their box, so the dw/dh clamp is not reached.
    gt_bboxes = bboxes + torch.randn(500, 4, generator=torch.Generator().manual_seed(19)) * 20
    gt_bboxes[:, 2:] = torch.max(gt_bboxes[:, 2:], gt_bboxes[:, :2] + 2)
    decoded = ours.decode(bboxes, ours.encode(bboxes, gt_bboxes))
    torch.testing.assert_close(decoded, gt_bboxes, atol=DECODE_ATOL, rtol=0)


def test_build_and_attributes():
    cfg = dict(target_means=(.1, .2, .3, .4), target_stds=(.5, .6, .7, .8),
               clip_border=False, add_ctr_clamp=True, ctr_clamp=8, use_box_type=True)
    ours, theirs = coders(**cfg)
    assert isinstance(ours, ScratchDeltaXYWHBBoxCoder)
    for name in ('means', 'stds', 'clip_border', 'add_ctr_clamp', 'ctr_clamp', 'use_box_type'):
        assert getattr(ours, name) == getattr(theirs, name), name
    defaults, mmdet_defaults = coders()
    for name in ('means', 'stds', 'clip_border', 'add_ctr_clamp', 'ctr_clamp', 'use_box_type'):
        assert getattr(defaults, name) == getattr(mmdet_defaults, name), name
    assert ours.encode_size == theirs.encode_size == 4
