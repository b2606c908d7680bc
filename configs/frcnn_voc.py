# The tutorials' / paper's Faster R-CNN (VGG16 conv5_3, every component ours) on PASCAL
# VOC as in the paper's Table 2/3: VOC2007 trainval (5011 images) -> VOC2007 test (4952),
# shorter side 600 / longer side at most 1000, 11-point VOC07 mAP. mmdet's VOCMetric and
# VOCDataset, the latter as ScratchVOCDataset (frcnn_plugin/datasets/voc.py: the same
# data, every defect of the files named); data from `python tools/prepare_data.py voc`:
#   data/VOCdevkit/VOC2007/{Annotations,ImageSets/Main,JPEGImages}
# The 07+12 variant is frcnn_voc0712.py.
_base_ = [
    './_base_/models/faster-rcnn_vgg16.py',
    # Its pipelines (Resize to (1000, 600), flip), the VOC2007-test val loader and the
    # 11-point VOCMetric are used as they are; the train set is replaced below.
    'mmdet::_base_/datasets/voc0712.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['frcnn_plugin'], allow_failed_imports=False)

# 20 VOC classes: the base model's num_classes.

dataset_type = 'ScratchVOCDataset'
data_root = 'data/VOCdevkit/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    # py-faster-rcnn doubles the set with flipped copies; a random flip is the same data.
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# The plain VOC2007 trainval set (voc0712.py wraps 07 + 12 in RepeatDataset x 3 of a
# ConcatDataset): no wrapper, so train_dataloader.dataset.* is reachable by --cfg-options.
train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        # The paper's training set: every non-difficult box is ground truth, whatever its
        # size (py-faster-rcnn's pascal_voc.py keeps them all). Not mmdet's voc0712.py
        # filter, whose bbox_min_size=32 turns every box under 32 px wide or high into an
        # ignore region: never a positive, and with ignore_iof_thr=-1 its anchors and RoIs
        # are negatives. Difficult boxes stay ignore regions, unused as in py-faster-rcnn
        # (which drops them: use_diff=False). min_size=32 drops images under 32 px a side
        # (none in VOC).
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))

val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader

# The paper's schedule (sec. 3.1.3): lr 0.001 for 60k mini-batches, then 0.0001 for 20k,
# momentum 0.9, weight decay 0.0005, one image per mini-batch. Here batch 2 with the lr
# scaled linearly (0.002), counted in epochs of VOC07 trainval: 80k images = 16 epochs
# (40k iterations), the drop after 60k images = epoch 12. mmdet's 500-iteration linear
# warm-up (schedule_1x) is kept: 2.5% of the run, it steadies the random heads' start.
max_epochs = 16
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[12],
         gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=0.002, momentum=0.9, weight_decay=0.0005))
# lr 0.002 is for batch 2 on one process; --auto-scale-lr scales it to the real batch.
auto_scale_lr = dict(base_batch_size=2)

# Kill-safe, exact resume (README: Stopping and resuming): checkpoints written
# atomically, the random states saved in each and restored by --resume, Ctrl-C / SIGTERM
# stop at a clean point.
default_hooks = dict(checkpoint=dict(type='ScratchCheckpointHook', interval=2, max_keep_ckpts=3))
custom_hooks = [dict(type='ScratchRandomStateHook'), dict(type='ScratchStopOnSignalHook')]
