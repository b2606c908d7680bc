"""ScratchVGG16: the tutorials' 50 x 50 x 512 map, then parity with torchvision's VGG16."""
import pytest
import torch
import torchvision
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner.checkpoint import get_torchvision_models

from frcnn_plugin.models.vgg import ScratchVGG16

# torchvision's vgg16().features[:30]: the layers the tutorials keep (the step-by-step
# PyTorch tutorial, 'Feature Extraction'; docs/references.md).
TUTORIAL_LAYERS = 30
# Parameter-holding indices of conv1_1 ... conv5_3 in `features`, per stage.
STAGE_CONVS = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))


@pytest.fixture(scope='module')
def torchvision_vgg16():
    """A randomly initialised torchvision VGG16 (no download): the oracle."""
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


def features_state_dict(vgg):
    return {k: v for k, v in vgg.state_dict().items() if k.startswith('features.')}


def conv_params(model, stages):
    return {f'features.{i}.{kind}': getattr(model.features[i], kind)
            for s in stages for i in STAGE_CONVS[s - 1] for kind in ('weight', 'bias')}


def test_tutorial_feature_map_shape():
    # The tutorials: an 800 x 800 image -> (1, 512, 50, 50). On the meta device: shapes only.
    model = ScratchVGG16().to('meta')
    (out, ) = model(torch.empty(1, 3, 800, 800, device='meta'))
    assert out.shape == (1, 512, 50, 50)
    assert model.out_channels == 512


@pytest.mark.parametrize('size, expected', [((600, 1000), (37, 62)), ((31, 16), (1, 1)),
                                            ((33, 47), (2, 2))])
def test_floor_output_size(size, expected):
    # torchvision's pools floor: H // 16 whether or not H is a multiple of 16.
    (out, ) = ScratchVGG16().to('meta')(torch.empty(2, 3, *size, device='meta'))
    assert out.shape == (2, 512, *expected)


def test_layout_matches_torchvision(torchvision_vgg16):
    model = ScratchVGG16()
    assert list(model.state_dict()) == list(features_state_dict(torchvision_vgg16))
    ours = [repr(m) for m in model.features]
    theirs = [repr(m) for m in torchvision_vgg16.features[:TUTORIAL_LAYERS]]
    assert ours == theirs


def test_forward_equals_torchvision(torchvision_vgg16):
    model = ScratchVGG16().eval()
    model.load_state_dict(features_state_dict(torchvision_vgg16), strict=True)
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        (out, ) = model(x)
        expected = torchvision_vgg16.features[:TUTORIAL_LAYERS](x)
    assert out.shape == (2, 512, 6, 8)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    # And back: our state dict loads strictly into torchvision's layers.
    torchvision_vgg16.features[:TUTORIAL_LAYERS].load_state_dict(
        {k[len('features.'):]: v for k, v in model.state_dict().items()}, strict=True)


def test_pretrained_init_from_torchvision_checkpoint(torchvision_vgg16, tmp_path):
    checkpoint = tmp_path / 'vgg16.pth'
    torch.save(torchvision_vgg16.state_dict(), checkpoint)
    model = ScratchVGG16(init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)))
    model.init_weights()
    for key, value in features_state_dict(torchvision_vgg16).items():
        assert torch.equal(model.state_dict()[key], value), key
    # The keys mmengine's strict=False load leaves over: only the fc classifier's.
    result = ScratchVGG16().load_state_dict(torchvision_vgg16.state_dict(), strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys and all(k.startswith('classifier.')
                                          for k in result.unexpected_keys)


def test_torchvision_url_resolves():
    # 'torchvision://vgg16' names torchvision's ImageNet VGG16 (no download here).
    assert get_torchvision_models()['vgg16'].endswith('/vgg16-397923af.pth')


def test_default_init_is_torchvision_kaiming():
    torch.manual_seed(0)
    model = ScratchVGG16()
    model.init_weights()
    conv = model.features[26]  # conv5_2: 512 x 512 x 3 x 3
    expected_std = (2 / (512 * 9)) ** 0.5  # He normal, fan_out, ReLU
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.01
    assert all(torch.count_nonzero(model.features[i].bias) == 0
               for stage in STAGE_CONVS for i in stage)


@pytest.mark.parametrize('frozen_stages', [-1, 0, 2, 5])
def test_frozen_stages(frozen_stages):
    torch.manual_seed(0)
    model = ScratchVGG16(frozen_stages=frozen_stages)
    model.init_weights()
    model.train()
    n_frozen = max(frozen_stages, 0)
    frozen = conv_params(model, range(1, n_frozen + 1))
    trained = conv_params(model, range(n_frozen + 1, 6))
    assert all(not p.requires_grad for p in frozen.values())
    assert all(p.requires_grad for p in trained.values())
    # train() leaves the frozen stages in eval mode, the others in training mode.
    bound = model.stage_bounds[n_frozen]
    assert [m.training for m in model.features] == [i >= bound for i in range(TUTORIAL_LAYERS)]

    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    (out, ) = model(torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(2)))
    if trained:
        out.square().mean().backward()
    optimizer.step()
    for key in frozen:
        assert torch.equal(before[key], frozen[key]), key
    for key in trained:
        assert not torch.equal(before[key], trained[key]), key


@pytest.mark.parametrize('frozen_stages', [-2, 6])
def test_frozen_stages_out_of_range(frozen_stages):
    with pytest.raises(ValueError):
        ScratchVGG16(frozen_stages=frozen_stages)


def test_build_from_model_config(repo):
    # The backbone of the tutorials' / paper's model config, built through the registry.
    cfg = Config.fromfile(str(repo / 'configs' / '_base_' / 'models' / 'faster-rcnn_vgg16.py'))
    backbone_cfg = cfg.model.backbone
    assert backbone_cfg.init_cfg.checkpoint == 'torchvision://vgg16'
    backbone_cfg.init_cfg = None  # offline: no ImageNet download
    model = MODELS.build(backbone_cfg)
    assert isinstance(model, ScratchVGG16)
    assert model.frozen_stages == 2
    assert all(not p.requires_grad for p in conv_params(model, (1, 2)).values())
    assert cfg.model.rpn_head.in_channels == model.out_channels
    assert cfg.model.roi_head.bbox_roi_extractor.out_channels == model.out_channels


# A small VGG, as configs/frcnn_shapes.py builds it: 8 convolutions, quarter widths.
SMALL = ((16, ), (32, ), (64, 64), (128, 128), (128, 128))


def test_stage_channels_make_a_smaller_vgg():
    model = ScratchVGG16(stage_channels=SMALL)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (3, 16), (16, 32), (32, 64), (64, 64), (64, 128), (128, 128), (128, 128), (128, 128)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.features) == 4
    assert model.out_channels == 128
    assert model.stage_bounds == [0, 3, 6, 11, 16, 20]
    (out, ) = model(torch.rand(2, 3, 192, 160))
    assert out.shape == (2, 128, 12, 10)  # stride 16
    # Three stages: two pools, stride 4.
    (out, ) = ScratchVGG16(stage_channels=((8, ), (8, ), (4, )))(torch.rand(1, 3, 32, 48))
    assert out.shape == (1, 4, 8, 12)


def test_norm_cfg_puts_batch_norm_after_each_conv():
    model = ScratchVGG16(stage_channels=SMALL, norm_cfg=dict(type='BN'), frozen_stages=1)
    kinds = [type(m).__name__ for m in model.features[:8]]
    assert kinds == ['Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d',
                     'Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d']
    norms = [m for m in model.features if isinstance(m, torch.nn.BatchNorm2d)]
    assert [n.num_features for n in norms] == [16, 32, 64, 64, 128, 128, 128, 128]
    # Frozen stage 1: its BatchNorm keeps its running statistics (eval mode, no grads).
    model.init_weights()
    model.train()
    assert not model.features[1].training and model.features[5].training
    assert not any(p.requires_grad for p in model.features[1].parameters())
    before = model.features[1].running_mean.clone()
    model(torch.rand(2, 3, 64, 64) * 100)
    assert torch.equal(model.features[1].running_mean, before)
    assert not torch.equal(model.features[5].running_mean, torch.zeros(32))


@pytest.mark.parametrize('stage_channels', [(), ((64, ), ())])
def test_stage_channels_empty_is_refused(stage_channels):
    with pytest.raises(ValueError, match='stage_channels'):
        ScratchVGG16(stage_channels=stage_channels)


def test_frozen_stages_bound_follows_stage_count():
    ScratchVGG16(stage_channels=((8, ), (8, )), frozen_stages=2)
    with pytest.raises(ValueError, match=r'\[-1, 2\]'):
        ScratchVGG16(stage_channels=((8, ), (8, )), frozen_stages=3)
