# configs/frcnn_shapes.py with every component this plugin replaces swapped back to
# mmdet's (frcnn_plugin.utils.swap.MMDET_TYPES): the training-level parity twin of the Shapes
# demo (docs/learning.md). mmdet has no VGG16: the backbone stays ScratchVGG16, with the
# same initialisation and seed.
_base_ = '../frcnn_shapes.py'

model = dict(
    rpn_head=dict(
        type='RPNHead',
        anchor_generator=dict(type='AnchorGenerator'),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder')),
    roi_head=dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign')),
        bbox_head=dict(type='Shared2FCBBoxHead', bbox_coder=dict(type='DeltaXYWHBBoxCoder'))),
    train_cfg=dict(
        rpn=dict(assigner=dict(type='MaxIoUAssigner'), sampler=dict(type='RandomSampler')),
        rcnn=dict(assigner=dict(type='MaxIoUAssigner'), sampler=dict(type='RandomSampler'))))
