# frcnn_kitti_tiny.py with KITTI's semantics for its ignore regions (DontCare, Van,
# Truck, ...: every KITTI type that is not one of the classes; KittiTinyDataset hands
# them to the model as ignored_instances and to the metric as ignored boxes).
#
# Training: an anchor (RPN) or proposal (R-CNN head) with more than half of its area
# inside an ignore region is neither positive nor negative (mmdet's ignore_iof_thr,
# intersection over the anchor's / proposal's area). mmdet's assigner ignores nothing in
# an image without any ground-truth box: there every anchor is a negative, ignore
# regions or not (it is the same in mmdet).
# Evaluation: a detection that matches no ground truth but lies more than half inside an
# ignore region is not counted as a false positive (KITTI devkit's DontCare rule;
# frcnn_plugin/evaluation/ignore_region_voc_metric.py says where it differs).
#
# frcnn_kitti_tiny.py keeps the tutorial's behaviour: ignore regions unused in training
# (ignore_iof_thr=-1: anchors on them are negatives) and detections on them counted as
# false positives (VOCMetric: their label -1 matches no class).
#
#   python tools/train.py configs/examples/frcnn_kitti_tiny_ignore-regions.py
# or, on any KittiTiny config:
#   --cfg-options model.train_cfg.rpn.assigner.ignore_iof_thr=0.5 \
#       model.train_cfg.rcnn.assigner.ignore_iof_thr=0.5 \
#       val_evaluator.type=IgnoreRegionVOCMetric test_evaluator.type=IgnoreRegionVOCMetric
_base_ = '../frcnn_kitti_tiny.py'

model = dict(
    train_cfg=dict(
        rpn=dict(assigner=dict(ignore_iof_thr=0.5)),
        rcnn=dict(assigner=dict(ignore_iof_thr=0.5))))

val_evaluator = dict(type='IgnoreRegionVOCMetric', ignore_iof_thr=0.5)
test_evaluator = val_evaluator
