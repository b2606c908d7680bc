# Your own data in COCO format (one JSON per split, as CVAT, Label Studio and others
# export it) with your own classes: frcnn_custom_voc.py's fine-tuning (the paper's model,
# every component ours, from a VOC-trained checkpoint; load_from, FineTuneHook and the
# short schedule are that file's) on COCO-format data.
#
# Layout (data_root, folder and file names are yours to choose):
#   data/my_coco/
#       annotations/train.json    "images": [{"id", "file_name", "width", "height"}],
#       annotations/val.json      "annotations": [{"id", "image_id", "category_id",
#                                   "bbox": [x, y, w, h], "area", "iscrowd"}],
#                                 "categories": [{"id", "name"}]
#       images/<file_name>
# Exports with one folder per split and the JSON beside the images (Roboflow's
# train/_annotations.coco.json, valid/..., test/...): set each loader's ann_file and
# data_prefix as README's "COCO-format data" shows, and leave the exporter's project
# category (id 0, which labels no box) out of `classes`.
# `classes` are matched to the categories by name and must be listed in the order of
# "categories" (mmdet numbers the labels that way). ScratchCocoDataset stops loading on
# what it cannot use (a missing image, a bbox that is not 4 numbers, classes not among
# the categories or in another order...) naming the annotation and image; annotations
# of other categories are skipped with one warning line per name, and crowd boxes
# ("iscrowd": 1) become ignore regions. Check the data first, then train:
#
#   python tools/check_dataset.py configs/examples/frcnn_custom_coco.py
#   python tools/train.py configs/examples/frcnn_custom_coco.py
_base_ = './frcnn_custom_voc.py'

# Your class names, as the JSON's category names, in the order of its categories.
classes = ('cat', 'dog')
metainfo = dict(classes=classes)
data_root = 'data/my_coco/'

# One output per class (+ background, which the head adds itself).
model = dict(roi_head=dict(bbox_head=dict(num_classes=len(classes))))

coco_dataset = dict(
    _delete_=True,  # not frcnn_custom_voc.py's VOC dataset
    type='ScratchCocoDataset',
    data_root=data_root,
    metainfo=metainfo,
    data_prefix=dict(img='images/'))  # the folder that file_name is relative to
train_dataloader = dict(
    dataset=dict(
        coco_dataset,
        ann_file='annotations/train.json',
        # Images without (non-crowd) objects are left out of training, as in mmdet's
        # COCO configs; images narrower than 32 px too. Frames empty on purpose (empty
        # scenes, background your detector fires on): filter_empty_gt=False trains on
        # them, every anchor and RoI a negative. Keep True when they are merely
        # unlabelled: their objects would be learnt as background.
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        coco_dataset,
        ann_file='annotations/val.json',
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader

# COCO's AP (at IoU 0.50:0.95, 0.50, 0.75, and by object size) from the same JSON.
val_evaluator = dict(_delete_=True, type='CocoMetric',
                     ann_file=data_root + 'annotations/val.json', metric='bbox')
# Or VOC-style mAP at IoU 0.5, as frcnn_custom_voc.py reports it:
# val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator
