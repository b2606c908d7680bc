# mmdet's Faster R-CNN R50-FPN model (mmdet::_base_/models/faster-rcnn_r50_fpn.py) with every
# Faster R-CNN component ours: RPN head, RoI head, RoI extractor with RoIAlign, bbox head,
# and the anchor
# generator, box coders, assigners, IoU calculators and samplers inside them. Same numbers,
# same parameter names: mmdet's checkpoints of this model load into it.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

custom_imports = dict(imports=['frcnn_plugin'], allow_failed_imports=False)

assigner = dict(type='ScratchMaxIoUAssigner', iou_calculator=dict(type='ScratchBboxOverlaps2D'))
model = dict(
    rpn_head=dict(
        type='ScratchRPNHead',
        anchor_generator=dict(type='ScratchAnchorGenerator'),
        bbox_coder=dict(type='ScratchDeltaXYWHBBoxCoder')),
    roi_head=dict(
        type='ScratchRoIHead',
        bbox_roi_extractor=dict(
            type='ScratchRoIExtractor', roi_layer=dict(type='ScratchRoIAlign')),
        bbox_head=dict(
            type='ScratchBBoxHead', bbox_coder=dict(type='ScratchDeltaXYWHBBoxCoder'))),
    train_cfg=dict(
        rpn=dict(assigner=assigner, sampler=dict(type='ScratchRandomSampler')),
        rcnn=dict(assigner=assigner, sampler=dict(type='ScratchRandomSampler'))))
