# frcnn_kitti_tiny.py with mmdet's SingleRoIExtractor in place of our ScratchRoIExtractor.
# SingleRoIExtractor looks its roi_layer up in mmcv.ops, so the layer is mmcv's RoIPool,
# which has CUDA kernels only: GPU-only. On CPU use mmcv's RoIAlign instead:
#   --cfg-options model.roi_head.bbox_roi_extractor.roi_layer.type=RoIAlign
_base_ = '../frcnn_kitti_tiny.py'

model = dict(
    roi_head=dict(
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor', roi_layer=dict(type='RoIPool', output_size=7))))
