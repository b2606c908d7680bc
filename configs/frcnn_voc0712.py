# frcnn_voc.py trained on VOC2007 trainval + VOC2012 trainval (16551 images, the
# paper's "07+12") and tested on VOC2007 test, as mmdet's voc0712 configs.
_base_ = './frcnn_voc.py'

data_root = 'data/VOCdevkit/'
voc_trainval = dict(
    type='ScratchVOCDataset',
    data_root=data_root,
    # Every non-difficult box is ground truth, as in frcnn_voc.py (no bbox_min_size).
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        # VOCDataset writes its year into metainfo['dataset_type']: not a mismatch.
        ignore_keys=['dataset_type'],
        datasets=[
            dict(voc_trainval, ann_file='VOC2007/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2007/')),
            dict(voc_trainval, ann_file='VOC2012/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2012/')),
        ]))

# The paper's rate (0.001 per image, x2 for batch 2) for the same 80k images
# (60k + 20k), here 16551 images an epoch: 5 epochs (41k iterations at batch 2), the drop
# after epoch 4 (66k images). (py-faster-rcnn's end-to-end script runs 70k iterations
# with the step at 50k: 8 and 6 epochs, for slightly more mAP.)
max_epochs = 5
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[4],
         gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=1))
