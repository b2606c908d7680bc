"""ScratchMaxIoUAssigner against mmdet's MaxIoUAssigner (the oracle), same arguments."""
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData

from frcnn_plugin.task_modules.iou_calculator import ScratchBboxOverlaps2D
from frcnn_plugin.task_modules.max_iou_assigner import ScratchMaxIoUAssigner

register_all_modules()

RPN = dict(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, match_low_quality=True,
           ignore_iof_thr=-1)
RCNN = dict(pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5, match_low_quality=False,
            ignore_iof_thr=-1)


def build_pair(**kwargs):
    """(ours, oracle), built from the registry with the same arguments."""
    return (TASK_UTILS.build(dict(type='ScratchMaxIoUAssigner', **kwargs)),
            TASK_UTILS.build(dict(type='MaxIoUAssigner', **kwargs)))


def random_boxes(gen, n, size=200., min_wh=2., max_wh=80.):
    xy = torch.rand(n, 2, generator=gen) * size
    wh = min_wh + torch.rand(n, 2, generator=gen) * (max_wh - min_wh)
    return torch.cat([xy, xy + wh], dim=1)


def jitter(gen, boxes, amount=6.):
    """Boxes near ``boxes``, so that some priors overlap the gts above 0.5 / 0.7."""
    return boxes + (torch.rand(boxes.shape, generator=gen) - 0.5) * 2 * amount


def scene(seed, num_priors=1500, num_gts=8, grid=False):
    """Priors (random + jittered copies of the gts) and gts with labels.

    With ``grid`` all coordinates are small integers, so exact IoU ties (equal
    priors, equal gts, equal overlaps) are frequent.
    """
    gen = torch.Generator().manual_seed(seed)
    if grid:
        gts = torch.randint(0, 12, (num_gts, 2), generator=gen).float()
        gts = torch.cat([gts, gts + torch.randint(1, 6, (num_gts, 2), generator=gen)], 1)
        priors = torch.randint(0, 12, (num_priors, 2), generator=gen).float()
        wh = torch.randint(1, 6, (num_priors, 2), generator=gen)
        priors = torch.cat([priors, priors + wh], 1)
    else:
        gts = random_boxes(gen, num_gts)
        near = jitter(gen, gts.repeat(num_priors // (4 * num_gts) + 1, 1))
        priors = torch.cat([random_boxes(gen, num_priors - len(near)), near])
    labels = torch.randint(0, 5, (num_gts,), generator=gen)
    return priors, gts, labels


def instances(priors, gts, labels=None, ignore=None):
    pred = InstanceData(priors=priors)
    gt = InstanceData(bboxes=gts)
    if labels is not None:
        gt.labels = labels
    return pred, gt, (None if ignore is None else InstanceData(bboxes=ignore))


def assert_same(ours, oracle):
    assert ours.num_gts == oracle.num_gts
    assert ours.gt_inds.dtype == oracle.gt_inds.dtype == torch.long
    assert torch.equal(ours.gt_inds, oracle.gt_inds)
    assert ours.labels.dtype == oracle.labels.dtype == torch.long
    assert torch.equal(ours.labels, oracle.labels)
    assert ours.max_overlaps.dtype == oracle.max_overlaps.dtype
    assert ours.max_overlaps.shape == oracle.max_overlaps.shape
    torch.testing.assert_close(ours.max_overlaps, oracle.max_overlaps, rtol=0, atol=1e-5)


def check(kwargs, priors, gts, labels, ignore=None):
    """Assign with both and compare; return ours for further checks."""
    ours, oracle = build_pair(**kwargs)
    args = instances(priors, gts, labels, ignore)
    result = ours.assign(*args)
    assert_same(result, oracle.assign(*args))
    return result


def test_registered_and_default_calculator():
    assigner = TASK_UTILS.build(
        dict(type='ScratchMaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3))
    assert isinstance(assigner, ScratchMaxIoUAssigner)
    assert isinstance(assigner.iou_calculator, ScratchBboxOverlaps2D)
    assert (assigner.min_pos_iou, assigner.gt_max_assign_all, assigner.ignore_iof_thr,
            assigner.ignore_wrt_candidates, assigner.match_low_quality,
            assigner.gpu_assign_thr) == (0., True, -1, True, True, -1)


def test_accepts_mmdet_calculator():
    priors, gts, labels = scene(0)
    kwargs = dict(RPN, iou_calculator=dict(type='BboxOverlaps2D'))
    ours, oracle = build_pair(**kwargs)
    assert type(ours.iou_calculator).__name__ == 'BboxOverlaps2D'
    args = instances(priors, gts, labels)
    assert_same(ours.assign(*args), oracle.assign(*args))


@pytest.mark.parametrize('gt_max_assign_all', [True, False])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_rpn_config(seed, gt_max_assign_all):
    priors, gts, labels = scene(seed)
    result = check(dict(RPN, gt_max_assign_all=gt_max_assign_all), priors, gts, labels)
    # the scene exercises all three outcomes
    assert {-1, 0}.issubset(result.gt_inds.unique().tolist()) and (result.gt_inds > 0).any()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_rcnn_config(seed):
    priors, gts, labels = scene(seed, num_priors=600)
    result = check(RCNN, priors, gts, labels)
    assert (result.gt_inds > 0).any() and (result.gt_inds == 0).any()
    assert not (result.gt_inds == -1).any()  # neg [0, 0.5) and pos >= 0.5 cover everything


@pytest.mark.parametrize('neg_iou_thr', [(0.1, 0.5), (0.0, 0.3), (-1.0, 0.3)])
@pytest.mark.parametrize('match_low_quality', [True, False])
def test_negative_range(neg_iou_thr, match_low_quality):
    priors, gts, labels = scene(3)
    ignore = random_boxes(torch.Generator().manual_seed(3), 3)
    kwargs = dict(pos_iou_thr=0.5, neg_iou_thr=neg_iou_thr, min_pos_iou=0.3,
                  match_low_quality=match_low_quality, ignore_iof_thr=0.5)
    result = check(kwargs, priors, gts, labels, ignore)
    lo, hi = neg_iou_thr
    negative = (result.max_overlaps >= lo) & (result.max_overlaps < hi)
    assert torch.equal(result.gt_inds == 0, negative & (result.gt_inds <= 0))


@pytest.mark.parametrize('gt_max_assign_all', [True, False])
@pytest.mark.parametrize('min_pos_iou', [0., 0.3])
@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_exact_ties_on_integer_grid(seed, min_pos_iou, gt_max_assign_all):
    """Small integer boxes: duplicated priors and gts, many equal IoUs."""
    priors, gts, labels = scene(seed, num_priors=400, num_gts=12, grid=True)
    gts = torch.cat([gts, gts[:3]])  # exact duplicate gts as well
    labels = torch.cat([labels, (labels[:3] + 1) % 5])  # with other labels: the winner shows
    kwargs = dict(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=min_pos_iou,
                  gt_max_assign_all=gt_max_assign_all)
    check(kwargs, priors, gts, labels)


@pytest.mark.parametrize('gt_max_assign_all', [True, False])
def test_several_gts_claim_one_prior_last_gt_wins(gt_max_assign_all):
    """Prior 1 is the best prior (IoU 0.5, below pos_iou_thr) of gts 0, 1 and 2:
    mmdet's loop over gts overwrites in order, so gt 2, the last, keeps it."""
    priors = torch.tensor([[0., 0., 10., 10.], [0., 0., 10., 20.], [50., 50., 60., 60.]])
    gts = torch.tensor([[0., 0., 10., 10.], [0., 10., 10., 20.], [0., 5., 10., 15.],
                        [0., 0., 10., 20.]])[[1, 2, 1, 0]]  # duplicate gt 0 == gt 2
    labels = torch.tensor([7, 8, 9, 3])
    kwargs = dict(pos_iou_thr=0.9, neg_iou_thr=0.3, min_pos_iou=0.3,
                  gt_max_assign_all=gt_max_assign_all)
    result = check(kwargs, priors, gts, labels)
    # gt 3 (== prior 0) is prior 0's best; gts 0, 1, 2 all have prior 1 as their best
    assert result.gt_inds.tolist() == [4, 3, 0]
    assert result.labels.tolist() == [3, 9, -1]


@pytest.mark.parametrize('gt_max_assign_all', [True, False])
def test_duplicate_priors(gt_max_assign_all):
    priors, gts, labels = scene(4, num_priors=500)
    priors = torch.cat([priors, priors[::7], priors[:50]])  # exact repeats, tied best IoUs
    result = check(dict(RPN, gt_max_assign_all=gt_max_assign_all), priors, gts, labels)
    if gt_max_assign_all:  # tied copies of a prior are treated alike
        assert torch.equal(result.gt_inds[:50], result.gt_inds[-50:])


@pytest.mark.parametrize('ignore_wrt_candidates', [True, False])
@pytest.mark.parametrize('config', [RPN, RCNN], ids=['rpn', 'rcnn'])
def test_ignore_regions(config, ignore_wrt_candidates):
    priors, gts, labels = scene(5)
    gen = torch.Generator().manual_seed(5)
    ignore = torch.cat([random_boxes(gen, 4, max_wh=120.), gts[:1]])  # one ignore box on a gt
    kwargs = dict(config, ignore_iof_thr=0.5, ignore_wrt_candidates=ignore_wrt_candidates)
    result = check(kwargs, priors, gts, labels, ignore)
    ignored = result.max_overlaps == -1
    assert ignored.any() and (result.gt_inds[ignored] == -1).all()


def test_ignore_regions_off_or_empty():
    priors, gts, labels = scene(6)
    ignore = random_boxes(torch.Generator().manual_seed(6), 4, max_wh=150.)
    check(dict(RPN, ignore_iof_thr=-1), priors, gts, labels, ignore)  # threshold off
    check(dict(RPN, ignore_iof_thr=0.5), priors, gts, labels, ignore[:0])  # no ignore boxes
    check(dict(RPN, ignore_iof_thr=0.5), priors, gts, labels, None)


def test_ignore_everything_low_quality():
    """Every prior ignored: each gt's best IoU is -1, which min_pos_iou=-1 accepts, so
    gt_max_assign_all hands all priors to the last gt."""
    priors, gts, labels = scene(7, num_priors=100)
    ignore = torch.tensor([[-1000., -1000., 1000., 1000.]])
    kwargs = dict(RPN, min_pos_iou=-1., ignore_iof_thr=0.5)
    result = check(kwargs, priors, gts, labels, ignore)
    assert (result.gt_inds == len(gts)).all()


@pytest.mark.parametrize('with_labels', [True, False])
@pytest.mark.parametrize('config', [RPN, RCNN], ids=['rpn', 'rcnn'])
def test_empty_gt(config, with_labels):
    priors, _, _ = scene(8, num_priors=50)
    gts, labels = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    ignore = torch.tensor([[0., 0., 100., 100.]])
    ours, oracle = build_pair(**dict(config, ignore_iof_thr=0.5))
    expected = oracle.assign(*instances(priors, gts, labels, ignore))
    # mmdet's assign() requires a labels field; its assign_wrt_overlaps does not
    assert_same(oracle.assign_wrt_overlaps(torch.zeros(0, 50), None), expected)
    result = ours.assign(*instances(priors, gts, labels if with_labels else None, ignore))
    assert_same(result, expected)
    assert (result.gt_inds == 0).all() and (result.labels == -1).all()


def test_gts_without_labels_is_an_error():
    priors, gts, _ = scene(8, num_priors=50)
    ours, _ = build_pair(**RPN)
    with pytest.raises(ValueError, match='labels'):
        ours.assign(*instances(priors, gts))


@pytest.mark.parametrize('num_gts', [0, 5])
def test_empty_priors(num_gts):
    _, gts, labels = scene(9, num_gts=max(num_gts, 1))
    ignore = torch.tensor([[0., 0., 100., 100.]])
    result = check(dict(RPN, ignore_iof_thr=0.5), torch.zeros(0, 4), gts[:num_gts],
                   labels[:num_gts], ignore)
    assert result.gt_inds.shape == result.labels.shape == result.max_overlaps.shape == (0,)


@pytest.mark.parametrize('min_pos_iou', [0., 0.3])
@pytest.mark.parametrize('gt_max_assign_all', [True, False])
def test_degenerate_gts(min_pos_iou, gt_max_assign_all):
    """Zero-area gts overlap nothing: best IoU 0, which min_pos_iou=0 still matches."""
    priors, gts, labels = scene(10)
    gts[1, 2] = gts[1, 0]  # zero width
    gts[2, 3] = gts[2, 1]  # zero height
    gts[3] = torch.tensor([5., 5., 5., 5.])  # a point
    gts[4, 2:] = gts[4, :2] - 3  # inverted box (negative "area")
    kwargs = dict(RPN, min_pos_iou=min_pos_iou, gt_max_assign_all=gt_max_assign_all)
    result = check(kwargs, priors, gts, labels)
    if min_pos_iou > 0:
        assert not torch.isin(result.gt_inds, torch.tensor([2, 3, 4, 5])).any()


def test_priors_outside_image():
    priors, gts, labels = scene(11)
    priors[::3] -= 150.  # far left / above the image
    priors[1::3] += 400.  # far right / below
    gts[0] = torch.tensor([-20., -20., 15., 15.])  # a gt crossing the border
    check(RPN, priors, gts, labels)
    check(RCNN, priors, gts, labels)


def test_gpu_assign_thr_on_cpu_same_result():
    priors, gts, labels = scene(12, num_gts=10)
    ignore = random_boxes(torch.Generator().manual_seed(12), 2)
    for thr in (2, 10, 50):  # more gts than thr (the CPU branch), equal, fewer
        kwargs = dict(RPN, gpu_assign_thr=thr, ignore_iof_thr=0.5)
        result = check(kwargs, priors, gts, labels, ignore)
        assert result.gt_inds.device == priors.device
        ours, _ = build_pair(**dict(kwargs, gpu_assign_thr=-1))
        assert_same(result, ours.assign(*instances(priors, gts, labels, ignore)))


def test_priors_with_score_column():
    priors, gts, labels = scene(13)
    scored = torch.cat([priors, torch.rand(len(priors), 1)], dim=1)
    ignore = random_boxes(torch.Generator().manual_seed(13), 3)
    result = check(dict(RPN, ignore_iof_thr=0.5), scored, gts, labels, ignore)
    ours, _ = build_pair(**dict(RPN, ignore_iof_thr=0.5))
    assert_same(result, ours.assign(*instances(priors, gts, labels, ignore)))


def test_float_labels_become_long():
    """mmdet (on torch 2.x) fails on float labels; ours casts them like its result dtype."""
    priors, gts, labels = scene(14)
    ours, _ = build_pair(**RPN)
    result = check(RPN, priors, gts, labels)
    assert_same(ours.assign(*instances(priors, gts, labels.float())), result)


@pytest.mark.parametrize('gt_max_assign_all', [True, False])
@pytest.mark.parametrize('config', [RPN, RCNN], ids=['rpn', 'rcnn'])
@pytest.mark.parametrize('seed', [0, 1])
def test_assign_wrt_overlaps(seed, config, gt_max_assign_all):
    """Coarse random overlaps (tenths, with -1 for ignored priors): many ties."""
    gen = torch.Generator().manual_seed(seed)
    overlaps = torch.randint(0, 11, (9, 300), generator=gen).float() / 10
    overlaps[:, torch.rand(300, generator=gen) < 0.1] = -1
    labels = torch.randint(0, 5, (9,), generator=gen)
    ours, oracle = build_pair(**dict(config, gt_max_assign_all=gt_max_assign_all))
    before = overlaps.clone()
    assert_same(ours.assign_wrt_overlaps(overlaps, labels),
                oracle.assign_wrt_overlaps(overlaps, labels))
    assert torch.equal(overlaps, before)  # the caller's overlaps are left alone
    for shape in ((0, 7), (4, 0), (0, 0)):
        assert_same(ours.assign_wrt_overlaps(torch.rand(shape), labels[:shape[0]]),
                    oracle.assign_wrt_overlaps(torch.rand(shape), labels[:shape[0]]))


def test_bad_arguments():
    with pytest.raises(ValueError, match='neg_iou_thr'):
        ScratchMaxIoUAssigner(0.7, (0.1, 0.2, 0.3))
    with pytest.raises(NotImplementedError):
        ScratchMaxIoUAssigner(0.7, 0.3, perm_repeat_gt_cfg=dict(iou_thr=0.7))


def test_realistic_size():
    """Faster R-CNN RPN scale: 200k anchors, 30 gts."""
    gen = torch.Generator().manual_seed(15)
    anchors = random_boxes(gen, 200_000, size=1300., min_wh=8., max_wh=500.)
    gts = random_boxes(gen, 30, size=1200., min_wh=10., max_wh=300.)
    labels = torch.randint(0, 80, (30,), generator=gen)
    result = check(RPN, anchors, gts, labels)
    assert (result.gt_inds > 0).sum() >= 30
