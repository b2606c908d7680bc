# frcnn_kitti_tiny.py with mmdet's RPNHead in place of our ScratchRPNHead. Same
# arguments and parameter names, so checkpoints load either way; our anchor generator,
# box coder, assigner and sampler stay inside it.
_base_ = '../frcnn_kitti_tiny.py'

model = dict(rpn_head=dict(type='RPNHead'))
