# Stock MMDetection Faster R-CNN (R50-FPN, every component mmdet's own) on KittiTiny:
# the recipe of MMDetection's KittiTiny tutorial (seed 003): 3 classes, fine-tuned from the
# COCO model, lr 0.02 / 8 for batch 2, 12 epochs with steps at 8 and 11, no warm-up,
# mAP evaluated at the end. The reference our from-scratch components are measured against.
#
# Offline (no pretrained weights to download):
#   --cfg-options load_from=None model.backbone.init_cfg=None
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['frcnn_plugin'], allow_failed_imports=False)

# COCO-trained weights of this very model (mmdet's model zoo); the 80-class fc_cls /
# fc_reg do not fit 3 classes and are skipped with a warning, the rest is fine-tuned.
load_from = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_1x_coco/faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth'  # noqa: E501

model = dict(roi_head=dict(bbox_head=dict(num_classes=3)))

dataset_type = 'KittiTinyDataset'
data_root = 'data/kitti_tiny/'
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train.txt',
        data_prefix=dict(img='training/image_2')))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='val.txt',
        data_prefix=dict(img='training/image_2')))
test_dataloader = val_dataloader

# The tutorial's CustomDataset 'mAP': VOC-style AP over the area under the PR curve.
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=12, val_interval=12)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=0.02 / 8))
# The lr above is for one process with batch 2; --auto-scale-lr scales it from there.
auto_scale_lr = dict(base_batch_size=2)

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=12))
randomness = dict(seed=0)
