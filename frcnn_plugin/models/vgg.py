"""Feature extraction by pre-trained VGG16 (the Korean walkthrough, '1. Feature
extraction by pre-trained VGG16'; docs/references.md): the shared conv feature map.

The tutorials take torchvision's ``vgg16(pretrained=True).features`` and keep its layers
while a dummy 800 x 800 image still comes out at least ``800 // 16 = 50`` cells wide
(the step-by-step PyTorch tutorial, 'Feature Extraction': 30 layers, 512 channels):
everything up to conv5_3's ReLU, without the fifth max pool. That is the backbone of the
Faster R-CNN paper's VGG16 model, a stride-16, 512-channel feature map that the RPN and
the RoI pooling both read.

Here the same 30 layers are built from their definition instead of cut out of a
torchvision model, with the same module indices, so that checkpoints of torchvision's
VGG16 load into it unchanged. Two knobs, off by default, make the same design smaller
or easier to train from random initialisation (``configs/frcnn_shapes.py`` uses both):
fewer or narrower convolutions per stage (``stage_channels``) and a normalisation layer
after each convolution (``norm_cfg``, as torchvision's ``vgg16_bn``).
"""
from typing import Optional, Sequence, Tuple

from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

# Output channels of each 3x3 convolution, stage by stage: VGG16 is configuration "D"
# of Simonyan & Zisserman (2015). A 2x2 max pool closes each of the first four stages;
# the fifth one's is dropped, which keeps the output stride at 2 ** 4 = 16.
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))

# torchvision's VGG initialisation, for a backbone trained without pretrained weights:
# He-normal (fan_out, ReLU) convolution weights, zero biases.
TORCHVISION_VGG_INIT = dict(type='Kaiming', layer='Conv2d', mode='fan_out',
                            nonlinearity='relu', distribution='normal', bias=0)


@MODELS.register_module()
class ScratchVGG16(BaseModule):
    """VGG16 truncated after conv5_3's ReLU: ``(N, 3, H, W) -> ((N, 512, H/16, W/16),)``.

    ``features`` is an ``nn.Sequential`` laid out exactly as torchvision's
    ``vgg16().features[:30]``: for each 3x3 conv (padding 1) one ``Conv2d`` and one
    ``ReLU``, a ``MaxPool2d(2, 2)`` after conv1_2, conv2_2, conv3_3 and conv4_3, so the
    parameters are ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.{weight,bias}`` and
    ``init_cfg=dict(type='Pretrained', checkpoint='torchvision://vgg16')`` loads
    torchvision's ImageNet weights (its ``classifier.*`` keys are reported unexpected and
    skipped: mmengine loads with ``strict=False``). Each pool floors, so the output is
    ``(N, 512, floor(H / 16), floor(W / 16))`` (exact with ``pad_size_divisor=16``);
    an 800 x 800 image gives the tutorials' 50 x 50 map.

    The weights decide the ``data_preprocessor`` (mmdet loads images as BGR, 0-255):

    - torchvision's ``torchvision://vgg16`` (the tutorials' ``pretrained=True``): RGB,
      ImageNet mean / std on the 0-255 scale, i.e. ``bgr_to_rgb=True``,
      ``mean=[123.675, 116.28, 103.53]``, ``std=[58.395, 57.12, 57.375]``. The tutorials
      feed ``ToTensor()`` images (RGB in [0, 1], not normalised), which these weights
      were not trained on.
    - py-faster-rcnn's Caffe VGG16 (``VGG16.v2.caffemodel``, converted): BGR, mean
      pixel subtracted, no scaling, i.e. ``bgr_to_rgb=False``,
      ``mean=[102.9801, 115.9465, 122.7717]``, ``std=[1.0, 1.0, 1.0]``.

    Args:
        frozen_stages: stages ``1..frozen_stages`` (conv1_x, conv2_x, ...) get
            ``requires_grad=False`` and stay in eval mode; -1 (and 0) freeze none. The
            paper fine-tunes from conv3_1 up, i.e. ``frozen_stages=2``.
        stage_channels: the output channels of each 3x3 convolution, stage by stage;
            VGG16's by default. A max pool closes every stage but the last, so five
            stages keep the stride of 16; the output has the last width's channels
            (``out_channels``). E.g. ``((16,), (32,), (64, 64), (128, 128), (128, 128))``
            is a VGG of 8 convolutions at a quarter of VGG16's widths. Other values
            change the parameter names and shapes: torchvision's weights fit only the
            default.
        norm_cfg: a normalisation layer after each convolution (before its ReLU), e.g.
            ``dict(type='BN')`` (mmcv's ``build_norm_layer``), as torchvision's
            ``vgg16_bn``; None (the tutorials', the paper's and the default): none. The
            layers then go conv, norm, ReLU, which changes the module indices.
        init_cfg: mmengine init config; defaults to torchvision's VGG initialisation.
    """

    def __init__(self, frozen_stages: int = -1,
                 stage_channels: Sequence[Sequence[int]] = VGG16_STAGES,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if not stage_channels or not all(stage_channels):
            raise ValueError('stage_channels needs at least one stage and at least one '
                             f'convolution per stage, got {stage_channels}')
        if not -1 <= frozen_stages <= len(stage_channels):
            raise ValueError(f'frozen_stages must be in [-1, {len(stage_channels)}], '
                             f'got {frozen_stages}')
        super().__init__(init_cfg=TORCHVISION_VGG_INIT if init_cfg is None else init_cfg)
        self.frozen_stages = frozen_stages

        layers = []
        # Index in `features` where each stage starts, plus the end: stage k is
        # features[stage_bounds[k - 1]:stage_bounds[k]].
        self.stage_bounds = [0]
        in_channels = 3
        for stage, widths in enumerate(stage_channels, start=1):
            for out_channels in widths:
                layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
                if norm_cfg is not None:
                    layers.append(build_norm_layer(norm_cfg, out_channels)[1])
                layers.append(nn.ReLU(inplace=True))
                in_channels = out_channels
            if stage < len(stage_channels):
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            self.stage_bounds.append(len(layers))
        self.features = nn.Sequential(*layers)
        self.out_channels = in_channels
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        """No gradients and eval mode for stages ``1..frozen_stages``."""
        frozen = self.features[:self.stage_bounds[max(self.frozen_stages, 0)]]
        frozen.eval()
        for param in frozen.parameters():
            param.requires_grad = False

    def train(self, mode: bool = True) -> 'ScratchVGG16':
        # The runner calls model.train() every epoch: re-freeze after it, as mmdet's
        # backbones do, so that frozen stages never switch back to training mode.
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor]:
        """``(N, 3, H, W)`` images -> a 1-tuple ``((N, 512, H // 16, W // 16),)``
        (``out_channels`` and ``2 ** (stages - 1)`` in general): mmdet's necks and heads
        take one tensor per level."""
        return (self.features(x), )
