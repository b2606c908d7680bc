"""ExportableFasterRCNN, run in PyTorch, computes exactly TwoStageDetector.predict(...,
rescale=False) for the VGG16 (RoIAlign, RoIPool) and R50-FPN configs, at image sizes
where the RPN's nms_pre cut applies and where it does not; a stock mmdet / mmcv
component is refused with one line naming it."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config

import frcnn_plugin  # noqa: F401  registers our components
from frcnn_plugin.deploy.exportable_detector import ExportableFasterRCNN, NotExportable


def build(repo, config, **model):
    cfg = Config.fromfile(repo / config)
    cfg.model.backbone.init_cfg = None
    cfg.merge_from_dict(dict(model=model))
    torch.manual_seed(0)
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    return detector.eval()


def assert_predict_equal(detector, size, img_shape):
    image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    sample = DetDataSample(metainfo=dict(img_shape=img_shape, pad_shape=size,
                                         scale_factor=(1., 1.), ori_shape=img_shape))
    with torch.no_grad():
        expected = detector.predict(image, [sample], rescale=False)[0].pred_instances
        bboxes, scores, labels = ExportableFasterRCNN(detector)(image,
                                                                 torch.tensor(img_shape))
    assert len(expected) > 0
    assert torch.equal(bboxes, expected.bboxes)
    assert torch.equal(scores, expected.scores)
    assert torch.equal(labels, expected.labels)


@pytest.mark.parametrize(
    'roi_layer', [None, dict(_delete_=True, type='ScratchRoIPool', output_size=7)])
def test_vgg_shapes_equals_predict(repo, roi_layer):
    model = dict(roi_head=dict(bbox_roi_extractor=dict(roi_layer=roi_layer))) if roi_layer \
        else {}
    detector = build(repo, 'configs/frcnn_shapes.py', **model)
    # 18 x 18 cells x 9 anchors = 2916 < nms_pre 6000; 30 x 50 x 9 = 13500 > 6000.
    assert_predict_equal(detector, (288, 288), (280, 270))
    assert_predict_equal(detector, (480, 800), (480, 790))


def test_r50_fpn_equals_predict(repo):
    # 200 proposals (not 1000): the same steps, a fifth of the box head's work.
    detector = build(repo, 'configs/examples/faster-rcnn_r50_fpn_scratch_kitti_tiny.py',
                     test_cfg=dict(rpn=dict(max_per_img=200)))
    assert_predict_equal(detector, (160, 256), (150, 250))


@pytest.mark.parametrize('model,message', [
    (dict(rpn_head=dict(type='RPNHead', anchor_generator=dict(type='AnchorGenerator'),
                        bbox_coder=dict(type='DeltaXYWHBBoxCoder'))),
     "model.rpn_head is mmdet's RPNHead: only ScratchRPNHead exports"),
    (dict(roi_head=dict(bbox_roi_extractor=dict(roi_layer=dict(
        _delete_=True, type='RoIAlign', output_size=7, sampling_ratio=2)))),
     "model.roi_head.bbox_roi_extractor.roi_layer is mmcv's RoIAlign: only ScratchRoIAlign "
     'or ScratchRoIPool exports'),
    (dict(roi_head=dict(bbox_head=dict(type='Shared2FCBBoxHead'))),
     "model.roi_head.bbox_head is mmdet's Shared2FCBBoxHead: only ScratchBBoxHead exports"),
])
def test_stock_components_are_refused_by_name(repo, model, message):
    detector = build(repo, 'configs/frcnn_shapes.py', **model)
    with pytest.raises(NotExportable, match=message):
        ExportableFasterRCNN(detector)
