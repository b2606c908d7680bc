# The tutorials' model, i.e. the Faster R-CNN paper's VGG16 model (Ren et al., 2015), as
# an MMDetection 3.x config built from this plugin's from-scratch components: VGG16 up to
# conv5_3 (stride 16, 512 channels, no neck), a 9-anchor RPN, 7 x 7 RoI pooling and the
# fc6/fc7 (4096) detection head. Where the tutorials and the reference implementation
# (py-faster-rcnn, whose numbers the tutorials copy) differ, the comment says which is
# used. The tutorials (the step-by-step PyTorch tutorial, the Korean walkthrough, the
# TensorFlow alternating-training notebook) and the rest: docs/references.md.
custom_imports = dict(imports=['frcnn_plugin'], allow_failed_imports=False)

model = dict(
    type='FasterRCNN',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        # torchvision's VGG16 weights (the tutorials' `vgg16(pretrained=True)`): RGB with
        # ImageNet mean / std on the 0-255 scale. For py-faster-rcnn's Caffe weights use
        # bgr_to_rgb=False, mean=[102.9801, 115.9465, 122.7717], std=[1.0, 1.0, 1.0].
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        # The output stride: padded sizes give exactly H / 16 x W / 16 cells.
        pad_size_divisor=16),
    backbone=dict(
        type='ScratchVGG16',
        # Paper, sec. 3.1.3: "conv3_1 and up for the VGG net" are fine-tuned, conv1_x and
        # conv2_x stay frozen (py-faster-rcnn: lr_mult 0; the TensorFlow
        # alternating-training notebook updates conv3_1 up).
        frozen_stages=2,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://vgg16')),
    rpn_head=dict(
        type='ScratchRPNHead',
        # The step-by-step PyTorch tutorial: in_channels = mid_channels = 512 (3x3 conv,
        # then 1x1 cls / reg).
        in_channels=512,
        feat_channels=512,
        anchor_generator=dict(
            type='ScratchAnchorGenerator',
            # Tutorials: sub_sample 16, anchor_scales [8, 16, 32], ratios [0.5, 1, 2]
            # (anchors of 128, 256, 512 pixels), centred in their cell: ctr = 16 * i + 8.
            strides=[16],
            scales=[8, 16, 32],
            ratios=[0.5, 1.0, 2.0],
            center_offset=0.5),
        bbox_coder=dict(
            type='ScratchDeltaXYWHBBoxCoder',
            # Tutorials / py-faster-rcnn: RPN targets (dx, dy, dw, dh) are not normalised.
            target_means=[0.0, 0.0, 0.0, 0.0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        # The paper's 2-class softmax and the sigmoid it names as the alternative
        # (sec. 3.1, footnote) are equivalent; sigmoid is mmdet's default (one channel
        # per anchor instead of the tutorials' two).
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        # py-faster-rcnn: smooth L1 with sigma 3 (beta = 1 / sigma^2 = 1/9), averaged
        # over the 256 sampled anchors, which is the paper's lambda = 10 with N_reg ~ 2400.
        # (The tutorials use sigma 1, lambda 10 and divide by the positives.)
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        # The tutorials' proposal target layer (training) and detection (testing).
        type='ScratchRoIHead',
        bbox_roi_extractor=dict(
            type='ScratchRoIExtractor',
            # Tutorials: RoI max pooling to 7 x 7 on the stride-16 map (rois * 1/16).
            roi_layer=dict(type='ScratchRoIPool', output_size=7),
            out_channels=512,
            featmap_strides=[16]),
        bbox_head=dict(
            type='ScratchBBoxHead',
            # The Korean walkthrough: Linear(25088 = 512 * 7 * 7, 4096), Linear(4096,
            # 4096), then 21-way scores and 21 * 4 box deltas (20 VOC classes +
            # background).
            in_channels=512,
            fc_out_channels=4096,
            roi_feat_size=7,
            num_classes=20,
            bbox_coder=dict(
                type='ScratchDeltaXYWHBBoxCoder',
                # py-faster-rcnn BBOX_NORMALIZE_MEANS / STDS (the tutorials do not
                # normalise).
                target_means=[0.0, 0.0, 0.0, 0.0],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            # Tutorials: F.cross_entropy over the 128 sampled RoIs.
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            # Fast R-CNN / py-faster-rcnn: smooth L1 with sigma 1 (beta 1), averaged over
            # the 128 RoIs. (The tutorials: roi_lambda 10 on the summed loss.)
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='ScratchMaxIoUAssigner',
                # Paper / tutorials: positive IoU >= 0.7, negative < 0.3, plus each gt's
                # best anchors. The paper takes the best anchor whatever its IoU; mmdet's
                # min_pos_iou=0.3 keeps it only from 0.3 (0.0 would match the paper).
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1),
            sampler=dict(
                type='ScratchRandomSampler',
                # Paper / tutorials: 256 anchors per image, up to half positive.
                num=256,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False),
            # Paper / tutorials: cross-boundary anchors are ignored in training.
            allowed_border=0,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(
            # Tutorials (py-faster-rcnn TRAIN.RPN_*): top 12000 by score, NMS at 0.7,
            # keep 2000.
            nms_pre=12000,
            max_per_img=2000,
            nms=dict(type='nms', iou_threshold=0.7),
            # Tutorials (min_size = 16): drop proposals under 16 pixels a side
            # (mmdet keeps w, h > min_bbox_size; the tutorials keep >= 16).
            min_bbox_size=16),
        rcnn=dict(
            assigner=dict(
                type='ScratchMaxIoUAssigner',
                # Tutorials and py-faster-rcnn's end-to-end config: foreground
                # IoU >= 0.5, background [0.0, 0.5). (Fast R-CNN and the TensorFlow
                # alternating-training notebook use [0.1, 0.5): neg_iou_thr=(0.1, 0.5).)
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=False,
                ignore_iof_thr=-1),
            sampler=dict(
                type='ScratchRandomSampler',
                # Tutorials: n_sample 128 RoIs, pos_ratio 0.25 (32 foreground).
                num=128,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                # py-faster-rcnn adds the gt boxes to the candidate RoIs.
                add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(
            # Tutorials (py-faster-rcnn TEST.RPN_*): top 6000, NMS at 0.7, keep 300.
            nms_pre=6000,
            max_per_img=300,
            nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=16),
        rcnn=dict(
            # py-faster-rcnn test_net: score > 0.05, per-class NMS at 0.3 (TEST.NMS),
            # at most 100 detections per image.
            score_thr=0.05,
            nms=dict(type='nms', iou_threshold=0.3),
            max_per_img=100)))
