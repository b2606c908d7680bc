"""ScratchAnchorGenerator: the tutorials' numbers (docs/references.md), then parity with
mmdet's AnchorGenerator."""
import mmdet.models  # noqa: F401  registers the oracle AnchorGenerator
import numpy as np
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes

from frcnn_plugin.boxes import box_overlaps
from frcnn_plugin.task_modules.anchor_generator import ScratchAnchorGenerator

# The tutorials' RPN anchors: stride ("sub_sample") 16, 3 scales x 3 ratios, centred in
# their 16 x 16 cell, on the 50 x 50 VGG16 feature map of an 800 x 800 image.
TUTORIAL_CFG = dict(strides=[16], ratios=[0.5, 1, 2], scales=[8, 16, 32], center_offset=0.5)

# The `anchor_base` that the step-by-step PyTorch tutorial prints (boxes as
# [y1, x1, y2, x2]), 'Anchor boxes', step 1 (anchors at one feature map location).
TUTORIAL_BASE_YXYX = [[-37.254833, -82.50967, 53.254833, 98.50967],
                  [-82.50967, -173.01933, 98.50967, 189.01933],
                  [-173.01933, -354.03867, 189.01933, 370.03867],
                  [-56., -56., 72., 72.],
                  [-120., -120., 136., 136.],
                  [-248., -248., 264., 264.],
                  [-82.50967, -37.254833, 98.50967, 53.254833],
                  [-173.01933, -82.50967, 189.01933, 98.50967],
                  [-354.03867, -173.01933, 370.03867, 189.01933]]

# Configurations whose every method is compared with mmdet's.
CONFIGS = {
    'tutorial': TUTORIAL_CFG,
    # mmdet's faster-rcnn_r50_fpn rpn_head.anchor_generator
    'faster_rcnn_fpn': dict(strides=[4, 8, 16, 32, 64], ratios=[0.5, 1.0, 2.0], scales=[8]),
    # mmdet's retinanet_r50_fpn anchor_generator
    'retinanet': dict(strides=[8, 16, 32, 64, 128], ratios=[0.5, 1.0, 2.0],
                      octave_base_scale=4, scales_per_octave=3),
    'octave_5': dict(strides=[8, 16], ratios=[1.0], octave_base_scale=3, scales_per_octave=5),
    'non_square_strides': dict(strides=[(8, 16), (32, 12)], ratios=[0.5, 1.0, 2.0],
                               scales=[4, 8], center_offset=0.5),
    'centers': dict(strides=[8, 16], ratios=[0.5, 2.0], scales=[2, 5],
                    centers=[(2.5, 3.0), (7.25, 0.0)]),
    'scale_major_false': dict(strides=[8, 16], ratios=[0.5, 1.0, 2.0], scales=[2, 4, 8],
                              scale_major=False, center_offset=0.25),
    'base_sizes': dict(strides=[6, 20], ratios=[0.3, 1.7], scales=[1.5, 3.3],
                       base_sizes=[11, 37], center_offset=1.0),
    'float_strides': dict(strides=[(7.5, 5.0)], ratios=[1.0, 3.0], scales=[2.5]),
}

# Feature-map sizes per level, including empty and single-cell maps.
FEATMAP_SIZES = [(0, 0), (0, 7), (5, 0), (1, 1), (1, 9), (13, 1), (25, 38), (50, 50)]
DTYPES = [torch.float32, torch.float64, torch.float16]


def build_pair(cfg):
    ours = TASK_UTILS.build(dict(type='ScratchAnchorGenerator', **cfg))
    oracle = TASK_UTILS.build(dict(type='AnchorGenerator', **cfg))
    return ours, oracle


def assert_same(ours, theirs):
    """Bit-identical values, same dtype, shape and device."""
    assert ours.dtype == theirs.dtype and ours.device == theirs.device
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs), (ours - theirs).abs().max()


def featmap_sizes_for(gen, seed):
    """One random feature-map size per level, from FEATMAP_SIZES."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(FEATMAP_SIZES), (gen.num_levels,), generator=g)
    return [FEATMAP_SIZES[i] for i in picks.tolist()]


# --- the tutorials' numbers --------------------------------------------------------

def tutorial_anchors():
    return ScratchAnchorGenerator(**TUTORIAL_CFG).grid_priors([(50, 50)], device='cpu')[0]


def inside(anchors, size=800):
    """The tutorials' "valid" anchors: entirely inside the image [0, size]."""
    return ((anchors[:, :2] >= 0) & (anchors[:, 2:] <= size)).all(dim=1)


def test_tutorial_anchor_counts():
    anchors = tutorial_anchors()
    assert anchors.shape == (22500, 4)  # 50 * 50 cells * 9 anchors
    assert int(inside(anchors).sum()) == 8940


def test_tutorial_base_anchors():
    base = ScratchAnchorGenerator(**TUTORIAL_CFG).base_anchors[0]
    # Same 9 boxes in the same order (ratio-major, scales inner); the tutorial prints
    # [y1, x1, y2, x2], we keep [x1, y1, x2, y2]: columns (1, 0, 3, 2).
    expected = torch.tensor(TUTORIAL_BASE_YXYX)[:, [1, 0, 3, 2]]
    torch.testing.assert_close(base, expected, rtol=0, atol=1e-4)  # printed to 8 digits


def to_tutorial_order(anchors):
    """Our (50 * 50 * 9, 4) anchors of the tutorials' config in the tutorials' order.

    The tutorials loop over cell centres with x outer and y inner, so its anchor
    ``(x_idx * 50 + y_idx) * 9 + a`` is our ``(y_idx * 50 + x_idx) * 9 + a`` (we,
    like mmdet and the RPN head's output layout, are row-major): transposing the
    (50, 50) cell grid maps ours onto its order. The base anchors ``a`` (ratio-major,
    scales inner) and the centres (8 + 16 k on both axes) are the same.
    """
    return anchors.view(50, 50, 9, 4).transpose(0, 1).reshape(-1, 4)


def test_tutorial_anchor_grid():
    """The step-by-step PyTorch tutorial, 'Anchor boxes', step 2 (anchors at all the
    feature map locations): every anchor, with the tutorial's formula.

    The tutorial computes ``h = 16 * scale * sqrt(ratio)``, ``w = 16 * scale *
    sqrt(1 / ratio)`` in float64 and stores float32; mmdet's formula (ours) takes
    the square roots in float32, so non-square anchors may differ in the last bit.
    """
    ratios, scales = np.array([0.5, 1., 2.]), np.array([8., 16., 32.])
    h = (16 * scales[None, :] * np.sqrt(ratios)[:, None]).ravel()  # ratio-major
    w = (16 * scales[None, :] * np.sqrt(1. / ratios)[:, None]).ravel()
    centres = np.arange(16, 51 * 16, 16) - 8
    # x outer, y inner, as the tutorial's loops
    ctr_x, ctr_y = (c.reshape(-1, 1) for c in np.meshgrid(centres, centres, indexing='ij'))
    theirs = np.stack([ctr_y - h / 2, ctr_x - w / 2, ctr_y + h / 2, ctr_x + w / 2], -1)
    theirs = torch.from_numpy(theirs.reshape(-1, 4).astype(np.float32))
    ours_yxyx = to_tutorial_order(tutorial_anchors())[:, [1, 0, 3, 2]]
    torch.testing.assert_close(ours_yxyx, theirs, rtol=0, atol=1e-5)


def test_tutorial_best_iou_per_gt():
    """The step-by-step PyTorch tutorial, 'Anchor boxes', step 3 (labels and locations
    for every anchor): the best IoU of each gt box over the valid anchors.

    Our anchors in the tutorial's order (``to_tutorial_order``), so the printed anchor
    indices can be checked too; the tutorial's gt boxes are [y1, x1, y2, x2].
    """
    in_order = to_tutorial_order(tutorial_anchors())
    valid = in_order[inside(in_order)]
    gt_yxyx = torch.tensor([[20., 30., 400., 500.], [300., 400., 500., 600.]])
    ious = box_overlaps(valid, gt_yxyx[:, [1, 0, 3, 2]])  # (8940, 2)

    gt_max, gt_argmax = ious.max(dim=0)
    # Printed: [0.68130493 0.61035156] at valid anchors [2262 5620]. Equal to the
    # last bit of float32: the best anchors are the square ones (ratio 1), whose
    # corners are integers in both computations ([8, 8, 520, 520] and a
    # 256 x 256 box), so the tutorial's float64 anchor sizes make no difference.
    assert torch.equal(gt_max, torch.tensor([0.68130493, 0.61035156]))
    assert gt_argmax.tolist() == [2262, 5620]
    assert valid[2262].tolist() == [8., 8., 520., 520.]
    # Printed by `np.where(ious == gt_max_ious)[0]`: every valid anchor reaching
    # a gt's best IoU (the 256 x 256 anchors that contain the second gt tie).
    tied = (ious == gt_max).any(dim=1).nonzero().view(-1)
    assert tied.tolist() == [2262, 2508, 5620, 5628, 5636, 5644, 5866, 5874, 5882,
                             5890, 6112, 6120, 6128, 6136, 6358, 6366, 6374, 6382]


# --- parity with mmdet --------------------------------------------------------------

@pytest.mark.parametrize('name', CONFIGS)
def test_attributes_and_base_anchors(name):
    ours, oracle = build_pair(CONFIGS[name])
    assert isinstance(ours, ScratchAnchorGenerator)
    assert ours.strides == oracle.strides
    assert ours.base_sizes == oracle.base_sizes
    assert_same(ours.scales, oracle.scales)
    assert_same(ours.ratios, oracle.ratios)
    for attr in ('num_levels', 'num_base_anchors', 'num_base_priors', 'scale_major',
                 'octave_base_scale', 'scales_per_octave', 'centers', 'center_offset',
                 'use_box_type'):
        assert getattr(ours, attr) == getattr(oracle, attr), attr
    assert len(ours.base_anchors) == len(oracle.base_anchors)
    for mine, theirs in zip(ours.base_anchors, oracle.base_anchors):
        assert_same(mine, theirs)
    for mine, theirs in zip(ours.gen_base_anchors(), oracle.gen_base_anchors()):
        assert_same(mine, theirs)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name', CONFIGS)
def test_grid_priors(name, dtype):
    ours, oracle = build_pair(CONFIGS[name])
    for seed in range(3):
        sizes = featmap_sizes_for(ours, seed)
        got = ours.grid_priors(sizes, dtype=dtype, device='cpu')
        expected = oracle.grid_priors(sizes, dtype=dtype, device='cpu')
        assert len(got) == len(expected) == ours.num_levels
        for level, (mine, theirs) in enumerate(zip(got, expected)):
            assert_same(mine, theirs)
            assert_same(ours.single_level_grid_priors(sizes[level], level, dtype=dtype,
                                                      device='cpu'), theirs)


def test_grid_priors_fpn_image_size():
    """The benchmark's shape: 5 FPN levels of an 800 x 1333 image (~200k anchors)."""
    ours, oracle = build_pair(CONFIGS['faster_rcnn_fpn'])
    sizes = [(200, 334), (100, 167), (50, 84), (25, 42), (13, 21)]
    got = ours.grid_priors(sizes, device='cpu')
    for mine, theirs in zip(got, oracle.grid_priors(sizes, device='cpu')):
        assert_same(mine, theirs)
    assert sum(len(a) for a in got) == 3 * sum(h * w for h, w in sizes)


def test_grid_order_is_row_major_cell_then_base_anchor():
    gen = ScratchAnchorGenerator(strides=[(8, 16)], ratios=[0.5, 1.0, 2.0], scales=[2, 4])
    anchors = gen.grid_priors([(3, 5)], device='cpu')[0].view(3, 5, 6, 4)
    base = gen.base_anchors[0]
    i, j = 2, 3  # row 2, column 3: shifted by (3 * 8, 2 * 16)
    assert torch.equal(anchors[i, j], base + torch.tensor([24., 32., 24., 32.]))


def test_use_box_type():
    cfg = dict(CONFIGS['faster_rcnn_fpn'], use_box_type=True)
    ours, oracle = build_pair(cfg)
    sizes = [(8, 9), (4, 5), (2, 3), (1, 2), (1, 1)]
    for mine, theirs in zip(ours.grid_priors(sizes, device='cpu'),
                            oracle.grid_priors(sizes, device='cpu')):
        assert isinstance(mine, HorizontalBoxes)
        assert_same(mine.tensor, theirs.tensor)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name', CONFIGS)
def test_sparse_priors(name, dtype):
    ours, oracle = build_pair(CONFIGS[name])
    g = torch.Generator().manual_seed(0)
    for level in range(ours.num_levels):
        for size in [(1, 1), (7, 3), (25, 38)]:
            total = size[0] * size[1] * ours.num_base_priors[level]
            # Indices past the grid wrap around its rows, as in mmdet.
            for idxs in (torch.randint(total, (50,), generator=g),
                         torch.randint(total, 3 * total, (30,), generator=g),
                         torch.arange(total),
                         torch.zeros(0, dtype=torch.long)):
                mine = ours.sparse_priors(idxs, size, level, dtype=dtype, device='cpu')
                assert_same(mine, oracle.sparse_priors(idxs, size, level, dtype=dtype,
                                                       device='cpu'))
            # and they are the grid's anchors at those indices
            grid = ours.single_level_grid_priors(size, level, device='cpu')
            idxs = torch.randint(total, (20,), generator=g)
            assert torch.equal(ours.sparse_priors(idxs, size, level, device='cpu'),
                               grid[idxs])


@pytest.mark.parametrize('name', CONFIGS)
def test_valid_flags(name):
    ours, oracle = build_pair(CONFIGS[name])
    # Padded shapes smaller than, equal to and larger than the maps' extent, not
    # multiples of the strides, with and without a channel dimension.
    pad_shapes = [(0, 0), (1, 1), (37, 250), (190, 600, 3), (400, 400), (801, 1333),
                  (5000, 5000)]
    for seed in range(3):
        sizes = featmap_sizes_for(ours, seed)
        for pad_shape in pad_shapes:
            got = ours.valid_flags(sizes, pad_shape, device='cpu')
            expected = oracle.valid_flags(sizes, pad_shape, device='cpu')
            assert len(got) == len(expected)
            for mine, theirs in zip(got, expected):
                assert_same(mine, theirs)


def test_valid_flags_pad_smaller_than_map():
    """A 100 x 200 image padded into a batch whose stride-16 map is 20 x 20: only
    the anchors of the top-left ceil(100/16) x ceil(200/16) = 7 x 13 cells count."""
    gen = ScratchAnchorGenerator(**TUTORIAL_CFG)
    flags = gen.valid_flags([(20, 20)], (100, 200, 3), device='cpu')[0]
    assert flags.dtype == torch.bool and flags.shape == (20 * 20 * 9,)
    cells = flags.view(20, 20, 9)
    assert cells[:7, :13].all() and not cells[7:].any() and not cells[:, 13:].any()


@pytest.mark.parametrize('featmap_size, valid_size', [
    ((0, 0), (0, 0)), ((4, 6), (0, 6)), ((4, 6), (4, 0)), ((4, 6), (2, 3)),
    ((4, 6), (4, 6)), ((1, 1), (1, 1))])
def test_single_level_valid_flags(featmap_size, valid_size):
    ours, oracle = build_pair(TUTORIAL_CFG)
    for num_base in (1, 9):
        assert_same(ours.single_level_valid_flags(featmap_size, valid_size, num_base,
                                                  device='cpu'),
                    oracle.single_level_valid_flags(featmap_size, valid_size, num_base,
                                                    device='cpu'))


def test_single_level_valid_flags_rejects_valid_size_beyond_map():
    with pytest.raises(AssertionError):
        ScratchAnchorGenerator(**TUTORIAL_CFG).single_level_valid_flags((4, 6), (5, 6), 9,
                                                                    device='cpu')


def test_repr_lists_the_configuration():
    text = repr(ScratchAnchorGenerator(**CONFIGS['retinanet']))
    assert text.startswith('ScratchAnchorGenerator(')
    for field in ('strides=[(8, 8), (16, 16), (32, 32), (64, 64), (128, 128)]',
                  'ratios=tensor([0.5000, 1.0000, 2.0000])', 'scales=tensor([',
                  'base_sizes=[8, 16, 32, 64, 128]', 'scale_major=True',
                  'octave_base_scale=4', 'scales_per_octave=3', 'num_levels=5',
                  'centers=None', 'center_offset=0.0'):
        assert field in text, field


@pytest.mark.parametrize('cfg, error', [
    (dict(strides=[8], ratios=[1.0], scales=[1], centers=[(1, 1)], center_offset=0.5),
     AssertionError),
    (dict(strides=[8], ratios=[1.0], scales=[1], center_offset=1.5), ValueError),
    (dict(strides=[8, 16], ratios=[1.0], scales=[1], centers=[(1, 1)]), AssertionError),
    (dict(strides=[8, 16], ratios=[1.0], scales=[1], base_sizes=[8]), AssertionError),
    (dict(strides=[8], ratios=[1.0]), AssertionError),
    (dict(strides=[8], ratios=[1.0], scales=[1], octave_base_scale=4,
          scales_per_octave=3), AssertionError),
])
def test_invalid_configs_fail_like_mmdet(cfg, error):
    with pytest.raises(error):
        TASK_UTILS.build(dict(type='AnchorGenerator', **cfg))
    with pytest.raises(error):
        ScratchAnchorGenerator(**cfg)


def test_grid_priors_needs_one_size_per_level():
    gen = ScratchAnchorGenerator(**CONFIGS['faster_rcnn_fpn'])
    with pytest.raises(AssertionError):
        gen.grid_priors([(5, 5)], device='cpu')
    with pytest.raises(AssertionError):
        gen.valid_flags([(5, 5)], (80, 80), device='cpu')
