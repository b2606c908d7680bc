# Your own data in PASCAL VOC format with your own classes: fine-tune the paper's model
# (frcnn_voc.py: VGG16, every component ours) from a VOC-trained checkpoint.
#
# Layout (the VOC layout; data_root and the folder names are yours to choose):
#   data/my_voc/
#       Annotations/<id>.xml          VOC XML: <object><name>cat</name><bndbox>...
#       JPEGImages/<id>.jpg
#       ImageSets/Main/trainval.txt   one <id> per line (and test.txt)
# The files are read as labelling tools write them (ScratchVOCDataset, from frcnn_voc.py):
# Windows line ends, blank lines and spaces in the id lists are fine, and every defect
# (a missing image, malformed XML, an inverted box...) stops loading with its file and
# line. Objects whose <name> is not in `classes` are skipped, with one warning line per
# name (count and an example file); <difficult>1</difficult> ones become ignore
# regions, as in VOC. Check the data first, then train:
#
#   python tools/check_dataset.py configs/examples/frcnn_custom_voc.py
#   python tools/train.py configs/examples/frcnn_custom_voc.py
_base_ = '../frcnn_voc.py'

# Your class names, in the order of the model's outputs.
classes = ('cat', 'dog')
metainfo = dict(classes=classes)
data_root = 'data/my_voc/'

# One output per class (+ background, which the head adds itself).
model = dict(roi_head=dict(bbox_head=dict(num_classes=len(classes))))

train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='ImageSets/Main/trainval.txt',
        # No 'VOC2007/' sub-folder: the files are right under data_root.
        data_prefix=dict(sub_data_root='')))
# Images without objects (an XML with no <object> of your classes) are left out of
# training (frcnn_voc.py's filter_cfg.filter_empty_gt=True). If your data has such frames
# on purpose (empty scenes, background your detector fires on), train on them with
#   --cfg-options train_dataloader.dataset.filter_cfg.filter_empty_gt=False
# Every anchor and RoI of such an image is then a negative: it can only teach the model
# what is not an object (fewer false positives). Leave it on when those images are
# unlabelled rather than empty: their objects would be learnt as background.
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='')))
test_dataloader = val_dataloader
# Not a VOC year: say which AP. 'area' is the VOC2010+ definition; '11points' VOC2007's.
val_evaluator = dict(eval_mode='area')
test_evaluator = val_evaluator

# Start from a detector trained on VOC (e.g. your work_dirs/frcnn_voc/epoch_16.pth):
# everything loads except the 21-way fc_cls / 84-wide fc_reg, whose shapes do not fit
# your classes; they are re-initialised (a log line lists them) and learnt here.
load_from = 'work_dirs/frcnn_voc/epoch_16.pth'
# Logs exactly which checkpoint tensors did not fit and start fresh
# (frcnn_plugin.engine.hooks.finetune_hook); the other two are frcnn_voc.py's (this list
# replaces that one).
custom_hooks = [dict(type='FineTuneHook'), dict(type='ScratchRandomStateHook'),
                dict(type='ScratchStopOnSignalHook')]

# Fine-tuning: a short schedule, the same per-image lr.
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[9],
         gamma=0.1),
]
