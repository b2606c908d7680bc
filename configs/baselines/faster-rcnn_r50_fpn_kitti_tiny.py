# Stock MMDetection Faster R-CNN (R50-FPN, every component mmdet's own) on KittiTiny:
# the recipe of the MMDetection KittiTiny tutorial (docs/references.md): 3 classes,
# fine-tuned from the COCO model, lr 0.02 / 8 for batch 2, 12 epochs with steps at 8
# and 11, no warm-up, mAP evaluated at the end. The reference our from-scratch
# components are measured against.
# mmdet's faster-rcnn_r50_fpn_1x_coco.py composition: its model base, KittiTiny for COCO
# and the tutorial's schedule (on mmdet's schedule_1x.py and default_runtime.py).
#
# Offline, tools/train.py drops the pretrained weights it cannot download (a warning line
# each); without trying: --cfg-options load_from=None model.backbone.init_cfg=None
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/datasets/kitti_tiny.py',
    '../_base_/schedules/kitti_tiny_tutorial.py',
]

custom_imports = dict(imports=['frcnn_plugin'], allow_failed_imports=False)

# COCO-trained weights of this very model (mmdet's model zoo); the 80-class fc_cls /
# fc_reg do not fit 3 classes and are skipped with a warning, the rest is fine-tuned.
load_from = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_1x_coco/faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth'  # noqa: E501

model = dict(roi_head=dict(bbox_head=dict(num_classes=3)))
