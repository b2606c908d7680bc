# The tutorials' Faster R-CNN, every component ours, made small enough to learn the
# synthetic Shapes set (frcnn_plugin/datasets/shapes.py: circles, squares, triangles,
# 192 x 192) from random initialisation on a CPU in minutes: the proof that the whole
# pipeline learns. Data: `python tools/prepare_data.py shapes` -> data/shapes/, read by
# ScratchVOCDataset (mmdet's VOCDataset, defects named) and VOCMetric as the custom-VOC recipe
# (examples/frcnn_custom_voc.py) reads your data. `make demo` trains and tests it.
#
# The model is the tutorials' (a VGG-style stride-16 backbone without a neck, 9 anchors,
# the RPN, 7 x 7 RoI features, two fc layers, per-class boxes and the same losses,
# assigners, samplers and proposal settings); each deviation is commented below.
_base_ = [
    './_base_/models/faster-rcnn_vgg16.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['frcnn_plugin'], allow_failed_imports=False)

classes = ('circle', 'square', 'triangle')
metainfo = dict(classes=classes)
width = 128  # channels of the backbone's last stage (VGG16: 512)

model = dict(
    backbone=dict(
        # VGG16's five stages at a quarter of its widths and with 8 instead of 13
        # convolutions: 0.35 GMAC for a 192 x 192 image instead of VGG16's 11.
        # Still a max pool after each of the first four stages: stride 16.
        stage_channels=((16, ), (32, ), (64, 64), (128, 128), (width, width)),
        # Batch normalisation after each convolution (torchvision's vgg16_bn): the tutorials
        # start from ImageNet weights; from random initialisation it lets a high
        # learning rate train every layer at once, in a few epochs.
        norm_cfg=dict(type='BN'),
        # Nothing pretrained to keep: every stage trains (faster-rcnn_vgg16.py freezes
        # conv1-2, as the paper).
        frozen_stages=-1,
        # Random initialisation (torchvision's VGG init), no ImageNet weights.
        init_cfg=None),
    rpn_head=dict(
        in_channels=width,
        feat_channels=width,
        anchor_generator=dict(
            # Anchors of 20, 40 and 80 pixels (x ratios 0.5, 1, 2) for shapes of 12 to
            # ~130 pixels: the tutorials' 128, 256, 512 fit objects in 600 x 1000 images.
            scales=[1.25, 2.5, 5.0])),
    train_cfg=dict(
        rcnn=dict(
            # 64 sampled RoIs per image, up to half of them positive, instead of the
            # tutorials' 128 with a quarter: an image holds 0 to 8 shapes, and the positives
            # are what teaches the head the shapes apart.
            sampler=dict(num=64, pos_fraction=0.5)),
        rpn_proposal=dict(
            # Shapes' boxes go down to ~12 pixels: keep proposals of any size (mmdet's
            # default) instead of the tutorials' 16 pixels at 600 x 1000.
            min_bbox_size=0)),
    # At test time 100 proposals instead of the tutorials' 300: an image holds at most 8
    # shapes, and the head's cost is per proposal (val mAP the same to 0.0001, measured
    # on the earlier 9-epoch demo's checkpoint; validation in half the time).
    test_cfg=dict(rpn=dict(max_per_img=100, min_bbox_size=0)),
    roi_head=dict(
        bbox_roi_extractor=dict(
            # RoIAlign (Mask R-CNN; mmdet's default) instead of the tutorials' RoI max
            # pooling: bilinear samples instead of whole cells, which matters for shapes
            # one or two stride-16 cells wide, and a gradient to every cell sampled.
            roi_layer=dict(_delete_=True, type='ScratchRoIAlign', output_size=7,
                           sampling_ratio=2, aligned=True),
            out_channels=width),
        bbox_head=dict(
            in_channels=width,
            # fc6 / fc7 of 512 instead of 4096 (7 * 7 * 128 = 6272 inputs): 3 classes.
            fc_out_channels=512,
            num_classes=len(classes))))

# The images are 192 x 192: kept at that size (the Resize only records scale_factor 1
# for the metric). Random flips, as in frcnn_voc.py's VOC training, but in every
# direction: shapes at any angle look alike upside down (frcnn_voc.py flips left-right
# only).
scale = (192, 192)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
dataset_type = 'ScratchVOCDataset'
# The images are loaded in the training process (num_workers=0): on a 2-core machine a
# loader process takes CPU time from the two compute threads (measured 0.34 s per
# iteration without it, 0.39 s with it). With more cores, num_workers=2 lets loading
# overlap compute (persistent_workers=True keeps them between epochs).
data_root = 'data/shapes/'
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='ImageSets/Main/train.txt',
        # No 'VOC2007/' sub-folder: the files are right under data_root.
        data_prefix=dict(sub_data_root=''),
        # Images without shapes stay: they teach the background too.
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='ImageSets/Main/val.txt',
        data_prefix=dict(sub_data_root=''),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# VOC AP as the area under the precision-recall curve (VOC2010+); difficult shapes are
# ignored, as in VOC.
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator

# The schedule. AdamW (Loshchilov & Hutter, 2019) instead of the paper's SGD with
# momentum: from random initialisation it learns these shapes in far fewer iterations
# (docs/learning.md: the measured curves). A warm-up, the full lr for half of the
# training, then a cosine decay to lr / 100 (SGDR, Loshchilov & Hutter, 2017, without
# restarts) instead of the paper's step: 5 epochs of 2500 images, 1565 iterations.
max_epochs = 5
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.003, weight_decay=0.0001))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, convert_to_iter_based=True,
         begin=max_epochs / 2, end=max_epochs, eta_min=3e-5),
]
# lr 0.003 is for one process with batch 8; --auto-scale-lr scales it from there.
auto_scale_lr = dict(base_batch_size=8)

# Kill-safe, exact resume (README: Stopping and resuming): checkpoints written
# atomically, the random states saved in each and restored by --resume, Ctrl-C / SIGTERM
# stop at a clean point.
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='ScratchCheckpointHook', interval=1, max_keep_ckpts=1))
custom_hooks = [dict(type='ScratchRandomStateHook'), dict(type='ScratchStopOnSignalHook')]
randomness = dict(seed=0)
