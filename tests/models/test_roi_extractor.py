"""ScratchRoIExtractor against mmdet's SingleRoIExtractor with mmcv's RoIAlign (the oracle)."""
import mmcv.ops
import pytest
import torch
import torchvision
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS

from frcnn_plugin.models.roi_extractor import ScratchRoIExtractor
from frcnn_plugin.ops.roi_align import ScratchRoIAlign
from frcnn_plugin.ops.roi_pool import ScratchRoIPool

TOL = 1e-4
STRIDES = [4, 8, 16, 32]
IMAGE_H, IMAGE_W = 256, 384
ALIGN = dict(type='RoIAlign', output_size=7, sampling_ratio=0)  # mmcv's


def pyramid(channels=256, images=2, seed=0, levels=4):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(images, channels, IMAGE_H // s, IMAGE_W // s, generator=gen)
                 for s in STRIDES[:levels])


def random_rois(num, seed=1, images=2):
    """Detector-like RoIs over a 256 x 384 image: scales 4-700 px (all 4 levels, and
    level 3's beyond the image), aspect ratios 1/3-3, a few degenerate (zero-size) ones."""
    gen = torch.Generator().manual_seed(seed)
    scale = torch.exp(torch.empty(num).uniform_(1.4, 6.5, generator=gen))
    ratio = torch.exp(torch.empty(num).uniform_(-1.1, 1.1, generator=gen))
    wh = torch.stack([scale / ratio.sqrt(), scale * ratio.sqrt()], 1)
    centre = torch.rand(num, 2, generator=gen) * torch.tensor([IMAGE_W, IMAGE_H])
    wh[::50] = 0
    batch = torch.randint(0, images, (num, 1), generator=gen).float()
    return torch.cat([batch, centre - wh / 2, centre + wh / 2], 1)


def run(extractor, feats, rois, grad_seed=2, **kwargs):
    feats = tuple(f.clone().requires_grad_() for f in feats)
    out = extractor(feats, rois, **kwargs)
    gen = torch.Generator().manual_seed(grad_seed)
    out.backward(torch.randn(out.shape, generator=gen))
    return out.detach(), [f.grad for f in feats]


def assert_same(ours, theirs):
    torch.testing.assert_close(ours[0], theirs[0], atol=TOL, rtol=0)
    for our_grad, their_grad in zip(ours[1], theirs[1]):
        torch.testing.assert_close(our_grad, their_grad, atol=TOL, rtol=0)


def build_pair(roi_layer=ALIGN, strides=STRIDES, channels=256, **kwargs):
    """Ours with our layer (``ScratchRoIAlign``), the oracle with mmcv's."""
    cfg = dict(out_channels=channels, featmap_strides=strides, **kwargs)
    ours = dict(roi_layer, type='Scratch' + roi_layer['type'])
    return (MODELS.build(dict(type='ScratchRoIExtractor', roi_layer=ours, **cfg)),
            SingleRoIExtractor(roi_layer=roi_layer, **cfg))


@pytest.mark.parametrize('roi_scale_factor', [None, 1.5])
def test_equals_mmdet_on_four_fpn_levels(roi_scale_factor):
    ours, oracle = build_pair()
    feats, rois = pyramid(), random_rois(512)
    levels = ours.map_roi_levels(rois, 4)
    assert torch.bincount(levels, minlength=4).min() > 20  # every level used
    result = run(ours, feats, rois, roi_scale_factor=roi_scale_factor)
    assert_same(result, run(oracle, feats, rois, roi_scale_factor=roi_scale_factor))
    assert result[0].shape == (512, 256, 7, 7)


def test_layer_names_build_ours_or_mmcvs():
    ours, oracle = build_pair(dict(type='RoIAlign', output_size=(7, 5), sampling_ratio=2,
                                   aligned=False), channels=16)
    assert all(type(layer) is ScratchRoIAlign for layer in ours.roi_layers)
    assert [layer.spatial_scale for layer in ours.roi_layers] == [0.25, 0.125, 0.0625, 0.03125]
    assert repr(ours.roi_layers) == repr(oracle.roi_layers).replace('RoIAlign', 'ScratchRoIAlign')
    assert (ours.out_channels, ours.featmap_strides, ours.finest_scale, ours.num_inputs) == \
           (oracle.out_channels, oracle.featmap_strides, oracle.finest_scale, oracle.num_inputs)
    assert_same(run(ours, pyramid(channels=16), random_rois(200)),
                run(oracle, pyramid(channels=16), random_rois(200)))
    pool = ScratchRoIExtractor(dict(type='ScratchRoIPool', output_size=7), 16, STRIDES)
    assert all(type(layer) is ScratchRoIPool for layer in pool.roi_layers)
    # mmcv's names are mmcv's layers, as in mmdet's extractor.
    mmcv_align = ScratchRoIExtractor(dict(ALIGN), 16, STRIDES)
    assert all(type(layer) is mmcv.ops.RoIAlign for layer in mmcv_align.roi_layers)
    with pytest.raises(KeyError, match="'RoIAlgn'.*ScratchRoIAlign"):
        ScratchRoIExtractor(dict(ALIGN, type='RoIAlgn'), 16, STRIDES)


def test_class_object_layers_in_both_directions():
    """The plugin's RoIAlign inside mmdet's extractor, mmcv's inside the plugin's."""
    feats, rois = pyramid(channels=16), random_rois(300, seed=3)
    cfg = dict(out_channels=16, featmap_strides=STRIDES)
    mmdet_with_ours = SingleRoIExtractor(dict(ALIGN, type=ScratchRoIAlign), **cfg)
    assert all(type(layer) is ScratchRoIAlign for layer in mmdet_with_ours.roi_layers)
    ours_with_mmcv = ScratchRoIExtractor(dict(ALIGN, type=mmcv.ops.RoIAlign), **cfg)
    assert all(type(layer) is mmcv.ops.RoIAlign for layer in ours_with_mmcv.roi_layers)
    reference = run(SingleRoIExtractor(ALIGN, **cfg), feats, rois)
    assert_same(run(mmdet_with_ours, feats, rois), reference)
    assert_same(run(ours_with_mmcv, feats, rois), reference)


def test_map_roi_levels_and_rescale_equal_mmdet():
    ours, oracle = build_pair(channels=16)
    rois = random_rois(1000, seed=4)
    rois[:3, 3] = rois[:3, 1] - 5  # negative area: NaN scale, no level
    assert torch.equal(ours.map_roi_levels(rois, 4), oracle.map_roi_levels(rois, 4))
    assert torch.equal(ours.map_roi_levels(rois, 2), oracle.map_roi_levels(rois, 2))
    for factor in (0.5, 1.0, 2.0):
        torch.testing.assert_close(ours.roi_rescale(rois, factor), oracle.roi_rescale(rois, factor))
    # scale 111 -> level 0, 112 -> 1, 224 -> 2, 448 and beyond -> 3
    boxes = torch.tensor([[0, 0, 0, 111., 111], [0, 0, 0, 112, 112], [0, 0, 0, 224, 224],
                          [0, 0, 0, 448, 448], [0, 0, 0, 2000, 2000]])
    assert ours.map_roi_levels(boxes, 4).tolist() == [0, 1, 2, 3, 3]


def test_degenerate_rois_equal_mmdet():
    """RoIs inverted along one axis (negative area: no level) stay 0 as in mmdet;
    zero-size ones go to level 0."""
    ours, oracle = build_pair(dict(ALIGN, aligned=False), channels=16)
    feats, rois = pyramid(channels=16), random_rois(100, seed=5)
    rois[1:4, 3] = rois[1:4, 1] - 5
    result = run(ours, feats, rois)
    assert_same(result, run(oracle, feats, rois))
    assert (result[0][1:4] == 0).all()


@pytest.mark.parametrize('levels', [1, 4])
def test_empty_rois(levels):
    ours, oracle = build_pair(strides=STRIDES[:levels], channels=16)
    feats = pyramid(channels=16, levels=levels)
    out, grads = run(ours, feats, torch.zeros(0, 5))
    assert out.shape == (0, 16, 7, 7)
    assert torch.equal(out, oracle(feats, torch.zeros(0, 5)))
    # every level still gets a (zero) gradient, as distributed training expects
    assert all(grad is not None and (grad == 0).all() for grad in grads)


def test_unused_levels_get_zero_gradient():
    ours, _ = build_pair(channels=16)
    small = torch.tensor([[0, 10., 10, 40, 40], [1, 50, 60, 90, 80]])  # level 0 only
    _, grads = run(ours, pyramid(channels=16), small)
    assert grads[0].abs().sum() > 0
    assert all(grad is not None and (grad == 0).all() for grad in grads[1:])


def test_single_level_equals_mmdet():
    ours, oracle = build_pair(strides=[16], channels=16)
    feats, rois = pyramid(channels=16, levels=3)[2:], random_rois(200, seed=6)
    assert_same(run(ours, feats, rois), run(oracle, feats, rois))
    # mmdet ignores roi_scale_factor with one level; so does the drop-in
    assert_same(run(ours, feats, rois, roi_scale_factor=2.0), run(oracle, feats, rois))


def test_single_level_roi_pool_equals_torchvision():
    """The tutorials' model: RoI max pooling on the one stride-16 map."""
    extractor = MODELS.build(dict(type='ScratchRoIExtractor', out_channels=16,
                                  roi_layer=dict(type='ScratchRoIPool', output_size=7),
                                  featmap_strides=[16]))
    feats, rois = pyramid(channels=16, levels=3)[2:], random_rois(200, seed=7)
    expected = run(lambda f, r: torchvision.ops.roi_pool(f[0], r, 7, 1 / 16), feats, rois)
    assert_same(run(extractor, feats, rois), expected)


def test_state_dict_is_empty_and_loads_both_ways():
    ours, oracle = build_pair(channels=16)
    assert dict(ours.state_dict()) == {} == dict(oracle.state_dict())
    ours.load_state_dict(oracle.state_dict(), strict=True)
    oracle.load_state_dict(ours.state_dict(), strict=True)


def test_unknown_layer_type():
    with pytest.raises(KeyError, match='NoSuchRoILayer'):
        ScratchRoIExtractor(dict(type='NoSuchRoILayer', output_size=7), 16, STRIDES)
