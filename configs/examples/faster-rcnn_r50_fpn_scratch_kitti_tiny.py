# Our R50-FPN on KittiTiny: the stock-mmdet baseline
# (../baselines/faster-rcnn_r50_fpn_kitti_tiny.py: the tutorial's recipe, fine-tuned from
# mmdet's COCO checkpoint) with its model base swapped for ours (every Faster R-CNN
# component from this plugin). The COCO checkpoint loads as it does into mmdet's.
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn_scratch.py',
    '../_base_/datasets/kitti_tiny.py',
    '../_base_/schedules/kitti_tiny_tutorial.py',
]

load_from = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_1x_coco/faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth'  # noqa: E501

model = dict(roi_head=dict(bbox_head=dict(num_classes=3)))
