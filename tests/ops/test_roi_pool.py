"""ScratchRoIPool against torchvision.ops.roi_pool (the oracle; mmcv's RoIPool is CUDA only)."""
import mmcv.ops
import pytest
import torch
import torchvision
from mmdet.registry import MODELS

from frcnn_plugin.ops.roi_pool import ScratchRoIPool, roi_pool, round_half_away

TOL = 1e-4


def random_rois(num, scale, seed=0, images=2):
    """``(num, 5)`` RoIs for a 30 x 40 map at ``scale``, seeded: sub-cell to larger than
    the map, partly and fully outside it, zero-size and inverted ones, and corners
    that land on half cells after scaling (where the rounding rule matters)."""
    gen = torch.Generator().manual_seed(seed)
    extent = torch.tensor([40 / scale, 30 / scale])
    corner = torch.rand(num, 2, generator=gen) * extent * 1.6 - extent * 0.3
    size = torch.rand(num, 2, generator=gen) ** 3 * extent
    size[0::10] = 0
    size[1::10] *= -1
    size[2::10] = 0.4 / scale
    corner[3::10] = torch.randint(-10, 60, corner[3::10].shape, generator=gen) / scale + 0.5 / scale
    batch = torch.randint(0, images, (num, 1), generator=gen).float()
    return torch.cat([batch, corner, corner + size], 1)


def features(channels=8, images=2, seed=1, height=30, width=40):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(images, channels, height, width, generator=gen)


def run(layer, feats, rois, grad_seed=2):
    feats = feats.clone().requires_grad_()
    out = layer(feats, rois)
    gen = torch.Generator().manual_seed(grad_seed)
    out.backward(torch.randn(out.shape, generator=gen))
    return out.detach(), feats.grad


def assert_matches_torchvision(feats, rois, output_size, spatial_scale, plain=True):
    """ScratchRoIPool and (unless ``plain`` is False: its memory) the plain
    :func:`roi_pool` against torchvision's."""
    theirs, their_grad = run(
        lambda x, r: torchvision.ops.roi_pool(x, r, output_size, spatial_scale), feats, rois)
    layer = ScratchRoIPool(output_size, spatial_scale)
    ours = [run(layer, feats, rois)]
    if plain:
        ours.append(run(lambda x, r: roi_pool(x, r, layer.output_size, spatial_scale),
                        feats, rois))
    for out, grad in ours:
        assert out.shape == theirs.shape
        torch.testing.assert_close(out, theirs, atol=TOL, rtol=0)
        torch.testing.assert_close(grad, their_grad, atol=TOL, rtol=0)
    return ours[0]


@pytest.mark.parametrize('output_size', [7, (7, 5), (2, 3)])
@pytest.mark.parametrize('spatial_scale', [1 / 16, 1 / 4, 1.0])
def test_equals_torchvision(output_size, spatial_scale):
    out, grad = assert_matches_torchvision(features(), random_rois(300, spatial_scale),
                                           output_size, spatial_scale)
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0
    assert (out == 0).all(1).any()  # bins outside the map


def test_equals_torchvision_on_vgg_sized_map():
    """The tutorials' setting: stride 16, 512 channels, 128 RoIs of proposal-like sizes."""
    gen = torch.Generator().manual_seed(3)
    xy = torch.rand(128, 2, generator=gen) * torch.tensor([1000., 600.])
    wh = torch.exp(torch.rand(128, 2, generator=gen) * 3.5) * 16
    rois = torch.cat([torch.zeros(128, 1), xy, xy + wh], 1)
    assert_matches_torchvision(features(channels=512, images=1, height=38, width=63), rois,
                               7, 1 / 16, plain=False)


def test_ties_send_gradient_to_first_cell_like_torchvision():
    """ReLU-like features: whole bins of equal values; the first cell (row-major) wins."""
    feats = features().clamp(min=0).round()
    _, grad = assert_matches_torchvision(feats, random_rois(100, 1 / 16, seed=4), 7, 1 / 16)
    assert grad.abs().sum() > 0


def test_bins_of_hundreds_of_cells_with_ties():
    """Output 1 x 1 on large RoIs at full resolution: bins of up to 1200 cells (past the
    8-bit ranks used for up to 255), many equal values, the first still wins."""
    feats = features(channels=4).clamp(min=0).round()
    rois = random_rois(60, 1.0, seed=6)
    rois[::3, 1:] = torch.tensor([0., 0., 39., 29.])  # the whole 30 x 40 map
    _, grad = assert_matches_torchvision(feats, rois, 1, 1.0)
    assert grad.abs().sum() > 0


def test_known_values():
    """A ramp ``f(y, x) = 10 y + x``: each bin's maximum is its bottom-right cell."""
    ramp = (torch.arange(6.)[:, None] * 10 + torch.arange(8.))[None, None]
    # cells x 1..6 (round(1.4) = 1, round(5.5) = 6), y 0..3 -> 6 x 4 cells, 2 x 2 bins of 3 x 2
    out = ScratchRoIPool(2)(ramp, torch.tensor([[0, 1.4, 0.2, 5.5, 3.0]]))
    assert out[0, 0].tolist() == [[13, 16], [33, 36]]


def test_round_half_away_from_zero():
    values = torch.tensor([0.5, -0.5, 1.5, 2.5, -2.5, 0.49999997, 2.4999998, 3.7, -3.7])
    assert round_half_away(values).tolist() == [1, -1, 2, 3, -3, 0, 2, 4, -4]


def test_empty_rois():
    feats = features().requires_grad_()
    out = ScratchRoIPool((7, 5), 1 / 16)(feats, torch.zeros(0, 5))
    assert out.shape == (0, 8, 7, 5)
    out.sum().backward()
    assert feats.grad is not None and (feats.grad == 0).all()


def test_inference_without_grad_equals_torchvision():
    feats, rois = features(), random_rois(200, 1 / 16, seed=5)
    with torch.no_grad():
        ours = ScratchRoIPool(7, 1 / 16)(feats, rois)
    torch.testing.assert_close(ours, torchvision.ops.roi_pool(feats, rois, 7, 1 / 16))


def test_built_from_registry_with_mmcv_arguments():
    layer = MODELS.build(dict(type='ScratchRoIPool', output_size=(7, 5), spatial_scale=0.25))
    oracle = mmcv.ops.RoIPool((7, 5), 0.25)
    assert isinstance(layer, ScratchRoIPool)
    assert (layer.output_size, layer.spatial_scale) == (oracle.output_size, oracle.spatial_scale)
    assert repr(layer) == repr(oracle).replace('RoIPool', 'ScratchRoIPool')
    assert dict(layer.state_dict()) == {}
