"""ScratchRoIAlign against mmcv.ops.RoIAlign on CPU (the oracle) and torchvision's roi_align."""
import mmcv.ops
import pytest
import torch
import torchvision
from mmdet.registry import MODELS

from frcnn_plugin.ops import device
from frcnn_plugin.ops.roi_align import ScratchRoIAlign, roi_align

TOL = 1e-4
STRIDE_16_IMAGE = (30 * 16, 40 * 16)  # image (h, w) of the 30 x 40 test map at stride 16


def random_rois(num, scale, seed=0, images=2):
    """``(num, 5)`` RoIs of every awkward kind for a 30 x 40 map at ``scale``, seeded.

    Sizes from sub-pixel to larger than the map (cubed uniform: many tiny ones),
    corners up to 30 % of the image outside it on every side (RoIs partly and
    fully outside), and every 10th RoI with zero width, height or both.
    """
    gen = torch.Generator().manual_seed(seed)
    img_h, img_w = 30 / scale, 40 / scale
    extent = torch.tensor([img_w, img_h])
    corner = torch.rand(num, 2, generator=gen) * extent * 1.6 - extent * 0.3
    size = torch.rand(num, 2, generator=gen) ** 3 * extent
    size[0::10] = 0
    size[1::10, 0] = 0
    size[2::10, 1] = 0
    size[3::10] = 0.3 / scale * torch.rand(2, generator=gen)  # under one feature pixel
    batch = torch.randint(0, images, (num, 1), generator=gen).float()
    return torch.cat([batch, corner, corner + size], 1)


def features(channels=8, images=2, seed=1, height=30, width=40, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(images, channels, height, width, generator=gen, dtype=dtype)


def run(layer, feats, rois, grad_seed=2):
    """Output and input gradient for a seeded random upstream gradient."""
    feats = feats.clone().requires_grad_()
    out = layer(feats, rois)
    gen = torch.Generator().manual_seed(grad_seed)
    out.backward(torch.randn(out.shape, generator=gen, dtype=out.dtype))
    return out.detach(), feats.grad


def plain(layer):
    """The plain :func:`roi_align` with ``layer``'s settings."""
    mode = 'avg' if layer.use_torchvision else layer.pool_mode
    return lambda x, r: roi_align(x, r, layer.output_size, layer.spatial_scale,
                                  layer.sampling_ratio, mode, layer.aligned)


def assert_matches_mmcv(feats, rois, check_plain=True, **cfg):
    """ScratchRoIAlign and (unless ``check_plain`` is False: its memory) the plain
    :func:`roi_align` against mmcv's."""
    theirs, their_grad = run(mmcv.ops.RoIAlign(**cfg), feats, rois)
    layer = ScratchRoIAlign(**cfg)
    ours = [run(layer, feats, rois)] + ([run(plain(layer), feats, rois)] if check_plain else [])
    for out, grad in ours:
        assert out.shape == theirs.shape
        torch.testing.assert_close(out, theirs, atol=TOL, rtol=0)
        torch.testing.assert_close(grad, their_grad, atol=TOL, rtol=0)
    return ours[0]


@pytest.mark.parametrize('output_size', [7, (7, 5)])
@pytest.mark.parametrize('spatial_scale', [1 / 16, 1 / 4])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('pool_mode', ['avg', 'max'])
def test_equals_mmcv(output_size, spatial_scale, sampling_ratio, aligned, pool_mode):
    rois = random_rois(200, spatial_scale, seed=sampling_ratio + 3 * aligned)
    out, grad = assert_matches_mmcv(
        features(), rois, output_size=output_size, spatial_scale=spatial_scale,
        sampling_ratio=sampling_ratio, pool_mode=pool_mode, aligned=aligned)
    # The case exercises what it claims: both images, in-map values, empty bins.
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0
    assert (out == 0).all(1).any() or (out == -10000).all(1).any()


def test_equals_mmcv_on_fpn_sized_level():
    """256 channels, 512 RoIs of detector-like sizes on a stride-4 level."""
    gen = torch.Generator().manual_seed(5)
    xy = torch.rand(512, 2, generator=gen) * torch.tensor([384., 256.])
    wh = torch.exp(torch.rand(512, 2, generator=gen) * 4) * 4
    rois = torch.cat([torch.randint(0, 2, (512, 1), generator=gen).float(), xy, xy + wh], 1)
    feats = features(channels=256, height=64, width=96)
    assert_matches_mmcv(feats, rois, check_plain=False, output_size=7, spatial_scale=1 / 4,
                        sampling_ratio=0)


def test_float64_equals_mmcv():
    rois = random_rois(100, 1 / 16, seed=7).double()
    assert_matches_mmcv(features(dtype=torch.float64), rois, output_size=(7, 5),
                        spatial_scale=1 / 16)


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_avg_equals_torchvision(aligned, sampling_ratio):
    feats, rois = features(), random_rois(200, 1 / 16, seed=11)
    ours, our_grad = run(ScratchRoIAlign(7, 1 / 16, sampling_ratio, aligned=aligned), feats, rois)
    theirs, their_grad = run(
        lambda x, r: torchvision.ops.roi_align(x, r, 7, 1 / 16, sampling_ratio, aligned),
        feats, rois)
    torch.testing.assert_close(ours, theirs, atol=TOL, rtol=0)
    torch.testing.assert_close(our_grad, their_grad, atol=TOL, rtol=0)


def test_use_torchvision_means_avg_as_in_mmcv():
    feats, rois = features(), random_rois(50, 1 / 16, seed=12)
    cfg = dict(output_size=7, spatial_scale=1 / 16, pool_mode='max', use_torchvision=True)
    assert_matches_mmcv(feats, rois, **cfg)
    plain_avg = ScratchRoIAlign(7, 1 / 16)(feats, rois)
    torch.testing.assert_close(ScratchRoIAlign(**cfg)(feats, rois), plain_avg)


@pytest.mark.parametrize('pool_mode', ['avg', 'max'])
def test_known_values(pool_mode):
    """A ramp ``f(y, x) = 10 y + x`` is bilinear, so every sample equals the ramp at its point."""
    ramp = (torch.arange(6.)[:, None] * 10 + torch.arange(8.))[None, None]
    # aligned: box (1.5, 0.5)-(5.5, 2.5) is x 1..5, y 0..2 in pixel-index coordinates;
    # 2 x 2 bins of 2 x 1 pixels, so 2 x 1 samples each (sampling_ratio 0), at
    # x = 1.5, 2.5 | 3.5, 4.5 and y = 0.5 | 1.5.
    out = ScratchRoIAlign(2, pool_mode=pool_mode)(ramp, torch.tensor([[0, 1.5, 0.5, 5.5, 2.5]]))
    expected = {'avg': [[7.0, 9.0], [17.0, 19.0]], 'max': [[7.5, 9.5], [17.5, 19.5]]}[pool_mode]
    torch.testing.assert_close(out[0, 0], torch.tensor(expected))


def test_border_rule():
    """A sample in [-1, 0] reads column 0 and one in [W - 1, W] column W - 1; beyond, 0."""
    ones = torch.ones(1, 1, 4, 4)
    # 1 x 1 RoIs (aligned=False), one sample at the centre x = -0.5, -1.5, 4.0, 4.5.
    rois = torch.tensor([[0, -1., 1, 0, 2], [0, -2, 1, -1, 2], [0, 3.5, 1, 4.5, 2],
                         [0, 4, 1, 5, 2]])
    cfg = dict(output_size=1, sampling_ratio=1, aligned=False)
    out, _ = assert_matches_mmcv(ones, rois, **cfg)
    assert out.flatten().tolist() == [1, 0, 1, 0]


def test_zero_size_rois():
    feats = features()
    rois = torch.tensor([[0, 64., 64, 64, 64], [1, 100, 50, 100, 300]])
    # aligned: no sample at all -> 0 (avg) and mmcv's floor -10000 (max)
    assert (ScratchRoIAlign(7, 1 / 16)(feats, rois) == 0).all()
    assert (ScratchRoIAlign(7, 1 / 16, pool_mode='max')(feats, rois) == -10000).all()
    # legacy mode: at least 1 x 1 pixel, so real values
    for mode in ('avg', 'max'):
        out, _ = assert_matches_mmcv(feats, rois, output_size=7, spatial_scale=1 / 16,
                                     pool_mode=mode, aligned=False)
        assert (out != 0).all()


def test_negative_size_raises_when_aligned():
    feats, rois = features(), torch.tensor([[0, 100., 100, 50, 150]])
    with pytest.raises(ValueError, match='negative size'):
        ScratchRoIAlign(7, 1 / 16)(feats, rois)
    assert_matches_mmcv(feats, rois, output_size=7, spatial_scale=1 / 16, aligned=False)


def test_negative_size_pools_zero_where_checking_would_wait(monkeypatch):
    """On a GPU (forced here), as mmcv's CUDA kernel: no check, no sample, 0."""
    monkeypatch.setattr(device, 'host_reads_are_cheap', lambda tensor: False)
    feats = features()
    rois = torch.tensor([[0, 100., 100, 50, 150], [1, 100, 100, 150, 20], [0, 10, 10, 80, 90]])
    out = ScratchRoIAlign(7, 1 / 16)(feats, rois)
    assert (out[:2] == 0).all()
    assert torch.equal(out[2:], ScratchRoIAlign(7, 1 / 16)(feats, rois[2:]))


@pytest.mark.parametrize('pool_mode', ['avg', 'max'])
def test_empty_rois(pool_mode):
    feats = features().requires_grad_()
    out = ScratchRoIAlign((7, 5), 1 / 16, pool_mode=pool_mode)(feats, torch.zeros(0, 5))
    assert out.shape == (0, 8, 7, 5)
    out.sum().backward()
    assert feats.grad is not None and (feats.grad == 0).all()


def test_max_mode_ties_send_gradient_to_first_sample_like_mmcv():
    """Samples clamped onto the same border pixel tie; mmcv credits the first only."""
    feats = features(channels=2)
    rois = torch.tensor([[0, 600., 100, 700, 300], [1, 550, -200, 640, 40]])
    _, grad = assert_matches_mmcv(feats, rois, output_size=7, spatial_scale=1 / 16,
                                  pool_mode='max', sampling_ratio=3)
    assert grad.abs().sum() > 0


def test_channels_last_input():
    feats, rois = features(), random_rois(100, 1 / 16, seed=13)
    ours = ScratchRoIAlign(7, 1 / 16)(feats.to(memory_format=torch.channels_last), rois)
    torch.testing.assert_close(ours, mmcv.ops.RoIAlign(7, 1 / 16)(feats, rois), atol=TOL, rtol=0)
    assert ours.is_contiguous()


def test_built_from_registry_with_mmcv_arguments():
    cfg = dict(output_size=(7, 5), spatial_scale=0.25, sampling_ratio=2, pool_mode='max',
               aligned=False)
    layer = MODELS.build(dict(type='ScratchRoIAlign', **cfg))
    oracle = mmcv.ops.RoIAlign(**cfg)
    assert isinstance(layer, ScratchRoIAlign)
    for name in ('output_size', 'spatial_scale', 'sampling_ratio', 'pool_mode', 'aligned',
                 'use_torchvision'):
        assert getattr(layer, name) == getattr(oracle, name), name
    assert repr(layer) == repr(oracle).replace('RoIAlign', 'ScratchRoIAlign')
    assert dict(layer.state_dict()) == {}
    # mmcv's deprecated argument names still work
    old = ScratchRoIAlign(out_size=7, sample_num=2)
    assert old.output_size == (7, 7) and old.sampling_ratio == 2
    with pytest.raises(ValueError, match='pool_mode'):
        ScratchRoIAlign(7, pool_mode='sum')
