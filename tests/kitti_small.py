"""For the tests that run the tools: a reduced-scale KittiTiny config (a few images at a
small scale, no data-loader workers, a log line and a checkpoint every iteration / epoch)
and a runner for the tools.

Imported by the tests as ``kitti_small`` (pytest puts tests/ on sys.path for its
conftest.py)."""
import subprocess
from pathlib import Path

PIPELINES = """
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=scale, keep_ratio=True),{flip}
    dict(type='PackDetInputs')]
loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(**loader, dataset=dict(
    data_root=data_root, ann_file='{train}', pipeline=train_pipeline))
"""
WITH_VAL = """test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
val_dataloader = dict(**loader, dataset=dict(
    data_root=data_root, ann_file='{val}', pipeline=test_pipeline))
test_dataloader = val_dataloader
"""
TRAIN_ONLY = """# Training only.
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
"""


def write_small_config(path: Path, base, data_root, train_ids, val_ids=None,
                       scale=(320, 192), flip=True, overrides: str = '') -> Path:
    """Write the config inheriting ``base`` (a path, or text relative to ``path``).

    The image ids go to ``train.txt`` / ``val.txt`` beside ``path``; without ``val_ids``
    the config only trains (no val / test loops). ``flip``: the train pipeline's
    RandomFlip(0.5). ``overrides``: config text appended as it is (the model without
    pretrained weights, the schedule, ...). Returns ``path``.
    """
    folder = path.parent
    (folder / 'train.txt').write_text(''.join(i + '\n' for i in train_ids))
    text = [f"_base_ = '{base}'\ndata_root = '{data_root}/'\nscale = {tuple(scale)}",
            PIPELINES.format(train=folder / 'train.txt',
                             flip="\n    dict(type='RandomFlip', prob=0.5)," if flip else '')]
    if val_ids is None:
        text.append(TRAIN_ONLY)
    else:
        (folder / 'val.txt').write_text(''.join(i + '\n' for i in val_ids))
        text.append(WITH_VAL.format(val=folder / 'val.txt'))
    text.append("default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))\n")
    text.append(overrides)
    path.write_text('\n'.join(text))
    return path


def run_tool(python, repo, *args) -> str:
    """Run ``python *args`` in ``repo``; assert it succeeds, return its stdout + stderr."""
    proc = subprocess.run([python, *map(str, args)], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr
