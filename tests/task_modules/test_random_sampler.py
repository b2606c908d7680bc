"""ScratchRandomSampler: same draws as mmdet's RandomSampler from the same RNG state."""
import copy

import mmdet.models  # noqa: F401  registers the oracle RandomSampler
import pytest
import torch
from mmdet.models.task_modules.assigners import AssignResult
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.structures import InstanceData

from frcnn_plugin.task_modules.random_sampler import ScratchRandomSampler

TENSOR_FIELDS = ('pos_inds', 'neg_inds', 'pos_priors', 'neg_priors', 'pos_is_gt',
                 'pos_assigned_gt_inds', 'pos_gt_labels', 'pos_gt_bboxes')
SCALAR_FIELDS = ('num_pos', 'num_neg', 'num_gts', 'avg_factor')


def random_boxes(n, g):
    xy = torch.rand(n, 2, generator=g) * 500
    wh = torch.rand(n, 2, generator=g) * 200
    return torch.cat([xy, xy + wh], dim=1)


def make_case(num_priors, num_gts, g, pos_p=0.1, ignore_p=0.1):
    """A random assignment: each prior positive (to a random gt) with probability
    ``pos_p``, ignored (-1) with ``ignore_p``, else negative (0)."""
    u = torch.rand(num_priors, generator=g)
    gt_inds = torch.zeros(num_priors, dtype=torch.long)
    if num_gts:
        pos = u < pos_p
        gt_inds[pos] = torch.randint(1, num_gts + 1, (int(pos.sum()),), generator=g)
    gt_inds[(u >= pos_p) & (u < pos_p + ignore_p)] = -1
    gt_labels = torch.randint(0, 5, (num_gts,), generator=g)
    labels = torch.where(gt_inds > 0, gt_labels[(gt_inds - 1).clamp(min=0)]
                         if num_gts else gt_inds, torch.full_like(gt_inds, -1))
    assign = AssignResult(num_gts, gt_inds, torch.rand(num_priors, generator=g), labels)
    pred = InstanceData(priors=random_boxes(num_priors, g))
    gt = InstanceData(bboxes=random_boxes(num_gts, g), labels=gt_labels)
    return assign, pred, gt


def run_both(cfg, assign, pred, gt, seed):
    """Sample with ours then mmdet's, each from ``torch.manual_seed(seed)``, on
    copies (``add_gt_`` changes the assignment in place); return both results,
    both assignments afterwards and both RNG states afterwards."""
    ours = TASK_UTILS.build(dict(type='ScratchRandomSampler', **cfg))
    oracle = TASK_UTILS.build(dict(type='RandomSampler', **cfg))
    outs = []
    for sampler in (ours, oracle):
        a = copy.deepcopy(assign)
        torch.manual_seed(seed)
        result = sampler.sample(a, copy.deepcopy(pred), copy.deepcopy(gt))
        outs.append((result, a, torch.get_rng_state()))
    return outs


def assert_same_tensor(mine, theirs, name):
    if isinstance(theirs, HorizontalBoxes):
        assert isinstance(mine, HorizontalBoxes), name
        mine, theirs = mine.tensor, theirs.tensor
    assert mine.dtype == theirs.dtype, name
    assert mine.shape == theirs.shape, (name, mine.shape, theirs.shape)
    assert torch.equal(mine, theirs), name


def assert_same_sampling(outs):
    (mine, my_assign, my_state), (theirs, their_assign, their_state) = outs
    assert isinstance(mine, SamplingResult)
    for name in TENSOR_FIELDS:
        assert_same_tensor(getattr(mine, name), getattr(theirs, name), name)
    assert_same_tensor(mine.priors, theirs.priors, 'priors')
    for name in SCALAR_FIELDS:
        assert getattr(mine, name) == getattr(theirs, name), name
    for name in ('gt_inds', 'labels', 'max_overlaps'):  # add_gt_ applied alike
        assert_same_tensor(getattr(my_assign, name), getattr(their_assign, name), name)
    assert my_assign.num_gts == their_assign.num_gts
    assert torch.equal(my_state, their_state), 'different RNG state after sampling'


SAMPLER_CFGS = [
    dict(num=256, pos_fraction=0.5),                          # RPN
    dict(num=512, pos_fraction=0.25),                         # R-CNN
    dict(num=256, pos_fraction=0.5, add_gt_as_proposals=False),
    dict(num=64, pos_fraction=0.25, neg_pos_ub=3),
    dict(num=64, pos_fraction=0.5, neg_pos_ub=0),             # draws 0 negatives
    dict(num=32, pos_fraction=1.0, neg_pos_ub=1, add_gt_as_proposals=False),
    dict(num=1, pos_fraction=0.5),                            # 0 positives wanted
    dict(num=0, pos_fraction=0.5),
]


@pytest.mark.parametrize('cfg', SAMPLER_CFGS)
def test_same_draws_as_mmdet_on_random_assignments(cfg):
    g = torch.Generator().manual_seed(0)
    for seed in range(25):
        num_priors = int(torch.randint(0, 3000, (1,), generator=g))
        num_gts = int(torch.randint(0, 12, (1,), generator=g))
        pos_p = float(torch.rand(1, generator=g)) * 0.3
        assign, pred, gt = make_case(num_priors, num_gts, g, pos_p=pos_p)
        assert_same_sampling(run_both(cfg, assign, pred, gt, seed))


def test_rpn_sized_assignment():
    """~200k anchors, as on a 5-level FPN of an 800 x 1333 image."""
    g = torch.Generator().manual_seed(1)
    assign, pred, gt = make_case(200_000, 30, g, pos_p=0.002, ignore_p=0.3)
    outs = run_both(dict(num=256, pos_fraction=0.5, add_gt_as_proposals=False),
                    assign, pred, gt, seed=7)
    assert_same_sampling(outs)
    result = outs[0][0]
    assert result.pos_inds.numel() == 128 and result.neg_inds.numel() == 128


def test_sequence_of_calls_stays_in_step():
    """A training loop: several images in a row from one seed, RPN then R-CNN
    sampler per image; the random stream must stay aligned throughout."""
    g = torch.Generator().manual_seed(2)
    cases = [make_case(int(n), 7, g, pos_p=0.05) for n in (5000, 1500, 20, 800)]
    cfgs = [dict(num=256, pos_fraction=0.5, add_gt_as_proposals=False),
            dict(num=512, pos_fraction=0.25)]
    samplers = {kind: [TASK_UTILS.build(dict(type=kind, **c)) for c in cfgs]
                for kind in ('ScratchRandomSampler', 'RandomSampler')}
    results = {}
    for kind, pair in samplers.items():
        torch.manual_seed(123)
        results[kind] = [s.sample(copy.deepcopy(a), p, gt)
                         for a, p, gt in cases for s in pair]
        results[kind].append(torch.get_rng_state())
    *mine, my_state = results['ScratchRandomSampler']
    *theirs, their_state = results['RandomSampler']
    for m, t in zip(mine, theirs):
        assert torch.equal(m.pos_inds, t.pos_inds) and torch.equal(m.neg_inds, t.neg_inds)
    assert torch.equal(my_state, their_state)


def test_enough_candidates_take_all_and_draw_nothing():
    assign = AssignResult(2, torch.tensor([0, 1, -1, 2, 0, 0]), torch.rand(6),
                          torch.tensor([-1, 3, -1, 4, -1, -1]))
    pred = InstanceData(priors=random_boxes(6, torch.Generator().manual_seed(0)))
    gt = InstanceData(bboxes=random_boxes(2, torch.Generator().manual_seed(1)),
                      labels=torch.tensor([3, 4]))
    sampler = ScratchRandomSampler(num=10, pos_fraction=0.5, add_gt_as_proposals=False)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    result = sampler.sample(assign, pred, gt)
    assert torch.equal(torch.get_rng_state(), before)  # no random call at all
    assert result.pos_inds.tolist() == [1, 3]
    assert result.neg_inds.tolist() == [0, 4, 5]
    assert result.pos_assigned_gt_inds.tolist() == [0, 1]
    assert torch.equal(result.pos_gt_bboxes, gt.bboxes)


def test_gt_added_as_proposals():
    g = torch.Generator().manual_seed(3)
    assign, pred, gt = make_case(50, 3, g, pos_p=0.0, ignore_p=0.0)  # no positives
    outs = run_both(dict(num=8, pos_fraction=0.5), assign, pred, gt, seed=0)
    assert_same_sampling(outs)
    result, assign_after, _ = outs[0]
    # The 3 gts are the only positives: indices 0..2 of the extended priors.
    assert result.pos_inds.tolist() == [0, 1, 2]
    assert result.pos_is_gt.tolist() == [1, 1, 1]
    assert torch.equal(result.pos_priors, gt.bboxes)
    assert assign_after.gt_inds[:3].tolist() == [1, 2, 3]
    assert len(result.neg_inds) == 5 and bool((result.neg_inds >= 3).all())


@pytest.mark.parametrize('add_gt', [True, False])
def test_empty_gt(add_gt):
    g = torch.Generator().manual_seed(4)
    assign, pred, gt = make_case(300, 0, g)
    outs = run_both(dict(num=64, pos_fraction=0.25, add_gt_as_proposals=add_gt),
                    assign, pred, gt, seed=1)
    assert_same_sampling(outs)
    result = outs[0][0]
    assert result.pos_inds.numel() == 0 and result.neg_inds.numel() == 64
    assert result.pos_gt_bboxes.shape == (0, 4)


@pytest.mark.parametrize('num_gts', [0, 2])
def test_empty_priors(num_gts):
    g = torch.Generator().manual_seed(5)
    assign, pred, gt = make_case(0, num_gts, g)
    assert_same_sampling(run_both(dict(num=16, pos_fraction=0.5), assign, pred, gt, seed=2))


def test_all_ignored():
    assign = AssignResult(1, torch.full((40,), -1), torch.zeros(40), torch.full((40,), -1))
    pred = InstanceData(priors=random_boxes(40, torch.Generator().manual_seed(6)))
    gt = InstanceData(bboxes=random_boxes(1, torch.Generator().manual_seed(7)),
                      labels=torch.tensor([2]))
    outs = run_both(dict(num=16, pos_fraction=0.5, add_gt_as_proposals=False),
                    assign, pred, gt, seed=3)
    assert_same_sampling(outs)
    assert outs[0][0].pos_inds.numel() == 0 and outs[0][0].neg_inds.numel() == 0


def test_single_prior_given_as_1d():
    assign = AssignResult(1, torch.tensor([1]), torch.ones(1), torch.tensor([0]))
    pred = InstanceData()
    pred.priors = torch.tensor([1., 2., 30., 40.])  # (4,), not (1, 4)
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 30., 40.]]), labels=torch.tensor([0]))
    assert_same_sampling(run_both(dict(num=4, pos_fraction=0.5), assign, pred, gt, seed=4))


def test_box_type_priors_and_gts():
    g = torch.Generator().manual_seed(8)
    assign, pred, gt = make_case(400, 4, g)
    pred.priors = HorizontalBoxes(pred.priors)
    gt.bboxes = HorizontalBoxes(gt.bboxes)
    assert_same_sampling(run_both(dict(num=32, pos_fraction=0.25), assign, pred, gt, seed=5))


def test_draws_are_uniform():
    """Keeping 3 of 6 positives: each is kept about half the time."""
    assign = AssignResult(1, torch.tensor([1] * 6), torch.ones(6), torch.zeros(6, dtype=torch.long))
    pred = InstanceData(priors=random_boxes(6, torch.Generator().manual_seed(9)))
    gt = InstanceData(bboxes=random_boxes(1, torch.Generator().manual_seed(10)),
                      labels=torch.tensor([0]))
    sampler = ScratchRandomSampler(num=6, pos_fraction=0.5, add_gt_as_proposals=False)
    torch.manual_seed(0)
    counts = torch.zeros(6)
    for _ in range(600):
        counts[sampler.sample(copy.deepcopy(assign), pred, gt).pos_inds] += 1
    assert counts.sum() == 1800
    assert bool(((counts - 300).abs() < 60).all()), counts


def test_combined_sampler_can_use_it():
    """mmdet's CombinedSampler calls ``_sample_pos`` / ``_sample_neg`` of its parts."""
    g = torch.Generator().manual_seed(11)
    assign, pred, gt = make_case(2000, 5, g, pos_p=0.1)
    results = []
    for part in ('ScratchRandomSampler', 'RandomSampler'):
        sampler = TASK_UTILS.build(dict(type='CombinedSampler', num=128, pos_fraction=0.25,
                                        pos_sampler=dict(type=part),
                                        neg_sampler=dict(type=part)))
        torch.manual_seed(9)
        results.append(sampler.sample(copy.deepcopy(assign), pred, gt))
    assert torch.equal(results[0].pos_inds, results[1].pos_inds)
    assert torch.equal(results[0].neg_inds, results[1].neg_inds)
