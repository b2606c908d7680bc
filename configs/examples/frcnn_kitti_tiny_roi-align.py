# frcnn_kitti_tiny.py with our RoIAlign (Mask R-CNN's bilinear sampling, no rounding of
# the RoI to the feature grid) in place of the paper's RoIPool: 7 x 7 outputs, adaptive
# sampling (sampling_ratio=0), half-pixel aligned, as mmdet's R50-FPN configs.
_base_ = '../frcnn_kitti_tiny.py'

model = dict(
    roi_head=dict(
        bbox_roi_extractor=dict(
            roi_layer=dict(type='ScratchRoIAlign', output_size=7, sampling_ratio=0))))
