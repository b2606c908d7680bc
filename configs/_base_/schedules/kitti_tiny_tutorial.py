# The schedule of the MMDetection KittiTiny tutorial (docs/references.md) on mmdet's
# schedule_1x.py and default_runtime.py: 12 epochs with lr steps at 8 and 11, no
# warm-up, lr 0.02 / 8 for batch 2, evaluated once at the end.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

train_cfg = dict(max_epochs=12, val_interval=12)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=0.02 / 8))
# The lr above is for one process with batch 2; --auto-scale-lr scales it from there.
auto_scale_lr = dict(base_batch_size=2)

# Kill-safe, exact resume (README: Stopping and resuming): checkpoints written
# atomically, the random states saved in each and restored by --resume, Ctrl-C / SIGTERM
# stop at a clean point.
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(type='ScratchCheckpointHook', interval=12))
custom_hooks = [dict(type='ScratchRandomStateHook'), dict(type='ScratchStopOnSignalHook')]
randomness = dict(seed=0)
