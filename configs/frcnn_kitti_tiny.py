# The tutorials' / paper's Faster R-CNN (VGG16 conv5_3, every component ours: RPN head,
# RoIPool, RoI extractor, bbox head and the task modules inside them) on KittiTiny
# (the MMDetection KittiTiny tutorial's dataset, docs/references.md): Car / Pedestrian /
# Cyclist; DontCare, Van, Truck, ... become ignore regions (KittiTinyDataset does it).
# Schedule: the tutorial's 12 epochs with lr steps at 8 and 11, evaluated once at the
# end with the tutorial's area-under-curve mAP.
#
# Ignore regions, the tutorial's behaviour: unused. The assigners' ignore_iof_thr=-1 (in
# the model base) makes anchors and proposals on them negatives, and VOCMetric counts a
# detection on one as a false positive (their label -1 matches no class). KITTI's
# semantics (neither positive nor negative in training, not counted in evaluation):
# examples/frcnn_kitti_tiny_ignore-regions.py, or
#   --cfg-options model.train_cfg.rpn.assigner.ignore_iof_thr=0.5 \
#       model.train_cfg.rcnn.assigner.ignore_iof_thr=0.5 \
#       val_evaluator.type=IgnoreRegionVOCMetric test_evaluator.type=IgnoreRegionVOCMetric
#
# Offline, tools/train.py drops the ImageNet VGG16 it cannot download (one warning line);
# --cfg-options model.backbone.init_cfg=None (make train OFFLINE=1) does so without trying.
# Other splits: --cfg-options train_dataloader.dataset.ann_file=my_train.txt
_base_ = [
    './_base_/models/faster-rcnn_vgg16.py',
    './_base_/datasets/kitti_tiny.py',
    './_base_/schedules/kitti_tiny_tutorial.py',
]

custom_imports = dict(imports=['frcnn_plugin'], allow_failed_imports=False)

model = dict(roi_head=dict(bbox_head=dict(num_classes=3)))

# The paper's scale: shorter side 600, longer side at most 1000. KITTI's 1242 x 375
# frames are capped by the long side: 1000 x 302.
scale = (1000, 600)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    # Loaded after Resize: the gt boxes stay in original-image coordinates for the metric.
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# The datasets are not wrapped (no RepeatDataset): train_dataloader.dataset.ann_file,
# .data_root, .pipeline, ... are reachable directly from --cfg-options.
train_dataloader = dict(
    dataset=dict(
        # Drops images without objects only: no min_size (the base's 32).
        filter_cfg=dict(_delete_=True, filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# Learning rate: the paper's 0.001 per image (sec. 3.1.3; py-faster-rcnn trains batch 1)
# scaled linearly to batch 2 = 0.002, momentum 0.9, weight decay 0.0005. Not the
# tutorial's 0.02 / 8 = 0.0025: that rate fine-tunes a COCO-trained R50-FPN whose heads
# are already trained and whose backbone has (frozen) BatchNorm; here VGG16 has no
# normalisation and the RPN and fc6 / fc7 / predictors start random, so the paper's
# rate plus a one-epoch linear warm-up (KittiTiny: 50 images = 25 iterations) keeps the
# first updates from blowing up the un-normalised fc6 (25088 inputs).
optim_wrapper = dict(optimizer=dict(lr=0.002, momentum=0.9, weight_decay=0.0005))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=25),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
# The lr above is for one process with batch 2 (auto_scale_lr's base_batch_size, from
# the tutorial's schedule); --auto-scale-lr scales it from there.
