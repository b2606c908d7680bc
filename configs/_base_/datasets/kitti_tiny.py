# KittiTiny (the MMDetection KittiTiny tutorial's dataset: Car / Pedestrian / Cyclist,
# KITTI layout) as mmdet's dataset bases are written: mmdet's coco_detection.py
# (pipelines at 1333 x 800, loader settings) with the dataset swapped for
# KittiTinyDataset (frcnn_plugin: the config that uses this base imports it) and the
# metric for the tutorial's CustomDataset 'mAP'.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

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
