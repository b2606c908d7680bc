"""Direct checks of frcnn_plugin.boxes on hand-computed values (mmdet parity lives in
tests/task_modules/test_iou_calculator.py and test_bbox_coder.py)."""
import math

import pytest
import torch

from frcnn_plugin.boxes import (
    anchors_inside,
    box_area,
    box_overlaps,
    clip_boxes,
    decode_deltas,
    encode_deltas,
    rescale_boxes,
)

A = [0., 0., 10., 10.]
B = [5., 5., 15., 15.]      # overlaps A on a 5 x 5 square
FAR = [20., 0., 30., 10.]   # disjoint from A, 10 px to its right
POINT = [3., 3., 3., 3.]    # zero area, inside A


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_box_area_including_inverted_and_degenerate():
    area = box_area(boxes(A, [0., 0., 4., 2.5], POINT, [10., 0., 0., 10.]))
    assert area.tolist() == [100., 10., 0., -100.]
    assert box_area(torch.zeros(2, 3, 4)).shape == (2, 3)


def test_iou_iof_giou_hand_computed():
    first, second = boxes(A, A), boxes(B, FAR, POINT)
    iou = box_overlaps(first, second)
    iof = box_overlaps(first, second, mode='iof')
    giou = box_overlaps(first, second, mode='giou')
    assert iou.shape == (2, 3)
    # A vs B: inter 25, union 100 + 100 - 25 = 175, enclosing 15 x 15 = 225.
    torch.testing.assert_close(iou[0], torch.tensor([25 / 175, 0., 0.]))
    torch.testing.assert_close(iof[0], torch.tensor([25 / 100, 0., 0.]))
    # A vs FAR: union 200, enclosing 30 x 10 = 300 -> 0 - 100 / 300.
    # A vs POINT: inter 0, union 100, enclosing = A -> 0 - 0.
    torch.testing.assert_close(giou[0], torch.tensor([25 / 175 - 50 / 225, -1 / 3, 0.]))


def test_identical_and_zero_area_boxes():
    assert box_overlaps(boxes(A), boxes(A)).item() == 1.
    # Two identical points: union 0 is clamped to eps, so 0 / eps = 0, never nan.
    assert box_overlaps(boxes(POINT), boxes(POINT)).item() == 0.
    assert box_overlaps(boxes(POINT), boxes(POINT), mode='giou').item() == 0.
    # Inverted boxes have no positive intersection.
    assert box_overlaps(boxes([10., 10., 0., 0.]), boxes(A)).item() == 0.


def test_aligned_and_batched_shapes():
    first, second = boxes(A, A, B), boxes(B, FAR, B)
    aligned = box_overlaps(first, second, is_aligned=True)
    torch.testing.assert_close(aligned, torch.tensor([25 / 175, 0., 1.]))
    batched = box_overlaps(first.expand(2, 3, 4), second[:2].expand(2, 2, 4))
    assert batched.shape == (2, 3, 2)
    torch.testing.assert_close(batched[1], box_overlaps(first, second[:2]))


@pytest.mark.parametrize('mode', ['iou', 'iof', 'giou'])
def test_empty_inputs(mode):
    some = boxes(A, B)
    assert box_overlaps(torch.zeros(0, 4), some, mode).shape == (0, 2)
    assert box_overlaps(some, torch.zeros(0, 4), mode).shape == (2, 0)
    assert box_overlaps(torch.zeros(0, 4), torch.zeros(0, 4), mode, is_aligned=True).shape == (0,)
    assert box_overlaps(torch.zeros(3, 0, 4), torch.zeros(3, 5, 4), mode).shape == (3, 0, 5)


def test_overlaps_errors():
    with pytest.raises(ValueError, match='mode'):
        box_overlaps(boxes(A), boxes(B), mode='dice')
    with pytest.raises(ValueError, match='batch shapes'):
        box_overlaps(torch.zeros(2, 3, 4), torch.zeros(3, 3, 4))
    with pytest.raises(ValueError, match='is_aligned'):
        box_overlaps(boxes(A, B), boxes(A), is_aligned=True)


@pytest.mark.parametrize('mode', ['iou', 'iof', 'giou'])
@pytest.mark.parametrize('is_aligned', [False, True])
def test_overlaps_gradients(mode, is_aligned):
    """The in-place updates must leave autograd intact (GIoU-style losses use it)."""
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(2, 5, 2, generator=gen, dtype=torch.float64) * 10
    wh = torch.rand(2, 5, 2, generator=gen, dtype=torch.float64) * 10 + 1
    first, second = torch.cat([xy[0], xy[0] + wh[0]], -1), torch.cat([xy[1], xy[1] + wh[1]], -1)
    assert torch.autograd.gradcheck(
        lambda a, b: box_overlaps(a, b, mode, is_aligned),
        (first.requires_grad_(), second.requires_grad_()))


def test_encode_hand_computed():
    # centre (5, 5) size (10, 10) -> centre (15, 10) size (20, 10)
    deltas = encode_deltas(boxes(A), boxes([5., 5., 25., 15.]))
    torch.testing.assert_close(deltas, torch.tensor([[1., .5, math.log(2.), 0.]]))
    normalised = encode_deltas(boxes(A), boxes([5., 5., 25., 15.]),
                               means=(0., 0.5, 0., 0.), stds=(.1, .1, .2, .2))
    torch.testing.assert_close(normalised, torch.tensor([[10., 0., math.log(2.) / .2, 0.]]))
    assert encode_deltas(boxes(A).double(), boxes(B).double()).dtype == torch.float32


def test_encode_errors():
    with pytest.raises(ValueError, match='one shape'):
        encode_deltas(boxes(A, B), boxes(A))
    with pytest.raises(ValueError, match='one shape'):
        encode_deltas(torch.zeros(2, 5), torch.zeros(2, 5))


def test_decode_hand_computed_and_clamped():
    unit = boxes([0., 0., 1., 1.])
    # dx = dy = dw = dh = 1: centre 0.5 + 1, size e.
    decoded = decode_deltas(unit, boxes([1., 1., 1., 1.]))
    low, high = 1.5 - math.e / 2, 1.5 + math.e / 2
    torch.testing.assert_close(decoded, torch.tensor([[low, low, high, high]]))
    # dw = 10 is clamped to |log(16 / 1000)|: the width grows 62.5x, not e^10.
    wide = decode_deltas(unit, boxes([0., 0., 10., 0.]))
    torch.testing.assert_close(wide[0, 2] - wide[0, 0], torch.tensor(1000 / 16))
    # With a centre clamp the shift is capped in pixels and dw only from above.
    shifted = decode_deltas(boxes([0., 0., 100., 100.]), boxes([1., 0., -10., 0.]), ctr_clamp=32)
    torch.testing.assert_close(shifted[0, :2] + shifted[0, 2:], torch.tensor([2 * 82., 100.]))
    torch.testing.assert_close(shifted[0, 2] - shifted[0, 0], torch.tensor(100 * math.exp(-10)))


def test_decode_inverts_encode_per_class_and_batched():
    gen = torch.Generator().manual_seed(1)
    xy = torch.rand(2, 3, 6, 2, generator=gen) * 500
    wh = torch.rand(2, 3, 6, 2, generator=gen) * 200 + 4
    base, target = torch.cat([xy[0], xy[0] + wh[0]], -1), torch.cat([xy[1], xy[1] + wh[1]], -1)
    stds = (.1, .1, .2, .2)
    deltas = encode_deltas(base, target, stds=stds)
    torch.testing.assert_close(decode_deltas(base, deltas, stds=stds), target, atol=1e-3, rtol=0)
    # Class-specific: k delta sets per box, each decoded against the same box.
    per_class = decode_deltas(base, torch.cat([deltas, torch.zeros_like(deltas)], -1), stds=stds)
    assert per_class.shape == (3, 6, 8)
    torch.testing.assert_close(per_class[..., 4:], base)
    assert decode_deltas(torch.zeros(0, 4), torch.zeros(0, 12)).shape == (0, 12)


def test_clip_boxes():
    decoded = boxes([-5., 3., 40., 70.], [10., -1., 20., 5.])
    torch.testing.assert_close(clip_boxes(decoded, (50, 30)),
                               boxes([0., 3., 30., 50.], [10., 0., 20., 5.]))
    assert torch.equal(clip_boxes(decoded, (50, 30, 3)),
                       clip_boxes(decoded, torch.tensor([50, 30])))
    # One (H, W) per image of a batch, and class-specific columns.
    batch = torch.stack([decoded, decoded]).repeat(1, 1, 2)
    clipped = clip_boxes(batch, [(50, 30), (4, 12)])
    torch.testing.assert_close(clipped[1, 0], torch.tensor([0., 3., 12., 4.] * 2))
    with pytest.raises(ValueError, match='max_shape'):
        clip_boxes(batch, [(50, 30), (4, 12), (1, 1)])


def test_anchors_inside():
    anchors = torch.tensor([[0., 0., 10., 10.], [-2., 0., 10., 10.], [0., 0., 20., 10.],
                            [0., 0., 19.9, 14.9]])
    assert anchors_inside(anchors, (15, 20), 0).tolist() == [True, False, False, True]
    assert anchors_inside(anchors, (15, 20), 2).tolist() == [True, True, True, True]
    assert anchors_inside(anchors, (15, 20), -1).all()


def test_rescale_boxes_divides_by_the_resize_factors():
    boxes = torch.tensor([[10., 20., 30., 40., 50., 60., 70., 80.]])
    expected = torch.tensor([[5., 40., 15., 80., 25., 120., 35., 160.]])
    assert torch.equal(rescale_boxes(boxes, (2., 0.5)), expected)


@pytest.mark.parametrize('means,stds', [((0., 0., 0., 0.), (1., 1., 1., 1.)),
                                        ((0., 0., 0., 0.), (0.1, 0.1, 0.2, 0.2)),
                                        ((0.1, 0., -0.2, 0.), (0.5, 1., 1., 2.))])
def test_deltas_bit_equal_to_mmdet_down_to_signed_zeros(means, stds):
    """Skipping "- 0" / "/ 1" / "* 1" must not change a bit, the sign of a zero
    included, on boxes at +-0, zero-size boxes (inf / nan targets) and +-0 deltas."""
    from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import bbox2delta, delta2bbox
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 100 - 50
    boxes = torch.cat([xy, xy + torch.rand(300, 2, generator=g) * 20], 1)
    boxes[:10], boxes[10:20] = 0., -0.
    gt = boxes.clone()
    gt[::2] += torch.rand(150, 4, generator=g)
    deltas = torch.randn(300, 4, generator=g)
    deltas[::3], deltas[1::3] = -0., 0.

    def same_bits(a, b):
        return a.view(torch.int32).equal(b.view(torch.int32))
    assert same_bits(encode_deltas(boxes, gt, means, stds), bbox2delta(boxes, gt, means, stds))
    assert same_bits(decode_deltas(boxes, deltas, means, stds),
                     delta2bbox(boxes, deltas, means, stds))
