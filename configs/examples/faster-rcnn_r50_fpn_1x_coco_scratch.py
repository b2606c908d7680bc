# mmdet's stock faster-rcnn_r50_fpn_1x_coco.py (COCO, 12 epochs, batch 2 x 8 GPUs) with
# our R50-FPN model: the stock config is exactly these four bases, the model base
# swapped for ours (every Faster R-CNN component from this plugin, the same parameter
# names: mmdet's COCO checkpoints of this model load into it).
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn_scratch.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
