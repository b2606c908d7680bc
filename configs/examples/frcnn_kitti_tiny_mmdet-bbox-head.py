# frcnn_kitti_tiny.py with mmdet's Shared2FCBBoxHead (fc6 / fc7 + predictors, the same
# layers and parameter names) in place of our ScratchBBoxHead.
_base_ = '../frcnn_kitti_tiny.py'

model = dict(roi_head=dict(bbox_head=dict(type='Shared2FCBBoxHead')))
