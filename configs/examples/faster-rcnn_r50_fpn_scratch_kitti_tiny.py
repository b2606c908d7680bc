# Our R50-FPN on KittiTiny: the stock-mmdet baseline
# (../baselines/faster-rcnn_r50_fpn_kitti_tiny.py: the tutorial's recipe, fine-tuned from
# mmdet's COCO checkpoint) with every Faster R-CNN component swapped for ours, the same
# swap as ../_base_/models/faster-rcnn_r50_fpn_scratch.py (one config cannot inherit two
# models, so it is written out here). The COCO checkpoint loads as it does into mmdet's.
_base_ = '../baselines/faster-rcnn_r50_fpn_kitti_tiny.py'

assigner = dict(type='ScratchMaxIoUAssigner', iou_calculator=dict(type='ScratchBboxOverlaps2D'))
model = dict(
    rpn_head=dict(
        type='ScratchRPNHead',
        anchor_generator=dict(type='ScratchAnchorGenerator'),
        bbox_coder=dict(type='ScratchDeltaXYWHBBoxCoder')),
    roi_head=dict(
        bbox_roi_extractor=dict(
            type='ScratchRoIExtractor', roi_layer=dict(type='ScratchRoIAlign')),
        bbox_head=dict(
            type='ScratchBBoxHead', bbox_coder=dict(type='ScratchDeltaXYWHBBoxCoder'))),
    train_cfg=dict(
        rpn=dict(assigner=assigner, sampler=dict(type='ScratchRandomSampler')),
        rcnn=dict(assigner=assigner, sampler=dict(type='ScratchRandomSampler'))))
