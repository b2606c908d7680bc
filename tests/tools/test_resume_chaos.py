"""Kill training at any moment and lose nothing: a tiny Shapes run (4 epochs of 4
iterations, a checkpoint per epoch), killed at moments drawn from a seed and resumed with
`tools/train.py --resume` after each, ends bit-for-bit where the uninterrupted run ends:
the weights, the optimizer state and the last epoch's logged losses. The same resume
without the saved random states (the control) ends elsewhere.

The moments, in this order (tests/tools/chaos_hooks.py kills the process itself, so each
lands exactly where it is aimed):
1. SIGKILL in the middle of an iteration (inside the R-CNN head's forward);
2. SIGKILL during a validation;
3. SIGKILL inside a checkpoint write (its bytes written, not yet renamed);
4. SIGTERM in the middle of an epoch: a clean stop that saves nothing for that epoch;
5. the newest checkpoint truncated on the disk: `--resume` says so and takes the one before.
"""
import json
import os
import random
import shutil
import signal
import subprocess

import pytest
import torch

from frcnn_plugin.datasets.shapes import write_shapes
from frcnn_plugin.engine.checkpoint import load

SEED = 0  # draws the moments
EPOCHS, ITERATIONS = 4, 4  # 8 training images in batches of 2

CONFIG = """
_base_ = '{repo}/configs/frcnn_shapes.py'
custom_imports = dict(imports=['frcnn_plugin', 'chaos_hooks'], allow_failed_imports=False)
data_root = '{root}/'
scale = (64, 64)  # the 192 x 192 images at a third: a few milliseconds an iteration
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
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root,
                                                   pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={epochs}, val_interval=1)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[3], gamma=0.1)]
# Each iteration's own losses in the log (no smoothing window), two checkpoints kept.
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=2))
log_processor = dict(window_size=1)
custom_hooks = [dict(type='ScratchRandomStateHook'), dict(type='ScratchStopOnSignalHook'),
                dict(type='ChaosKillHook')]
"""


def moments(seed: int) -> list:
    """The four kills, each after the checkpoint the previous one leaves to resume from."""
    rng = random.Random(seed)
    forward = rng.randint(1, 2)  # killed in epoch 1 (nothing saved yet) or 2
    val = rng.randint(forward, 2)
    save = val + 1
    term = rng.randint(max(save, 3), EPOCHS)
    return [f'forward:{forward}:{rng.randrange(ITERATIONS)}', f'val:{val}', f'save:{save}',
            f'term:{term}:{rng.randrange(ITERATIONS - 1)}']  # not an epoch's last iteration


def train(python, repo, config, work_dir, *args, kill=None):
    env = dict(os.environ, PYTHONPATH=str(repo / 'tests' / 'tools'))
    env.pop('CHAOS_KILL', None)
    if kill:
        env['CHAOS_KILL'] = kill
    return subprocess.run([python, 'tools/train.py', str(config), '--work-dir', str(work_dir),
                           *args], cwd=repo, capture_output=True, text=True, env=env)


def finished(proc) -> str:
    """The output of a run that must have succeeded (mmengine logs to stdout)."""
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def last_epoch_losses(work_dir) -> dict:
    """{iteration: its loss entries} of the last epoch, from the run that trained it."""
    losses = {}
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            entry = json.loads(line)
            if entry.get('epoch') == EPOCHS and 'loss' in entry:
                losses[entry['step']] = {k: v for k, v in entry.items() if k.startswith('loss')}
    assert len(losses) == ITERATIONS, losses
    return losses


def differences(a: dict, b: dict) -> list:
    """Names of the weights and optimizer entries of checkpoints ``a`` and ``b`` that differ."""
    differ = [name for name, tensor in a['state_dict'].items()
              if not torch.equal(tensor, b['state_dict'][name])]
    for index, state in a['optimizer']['state'].items():
        for key, value in state.items():
            if not torch.equal(torch.as_tensor(value), torch.as_tensor(
                    b['optimizer']['state'][index][key])):
                differ.append(f'optimizer.state.{index}.{key}')
    if a['optimizer']['param_groups'] != b['optimizer']['param_groups']:
        differ.append('optimizer.param_groups')
    return differ


def killed(proc):
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-4000:]


@pytest.mark.slow
def test_killed_and_resumed_run_ends_where_the_uninterrupted_run_ends(repo, python, tmp_path):
    write_shapes(tmp_path / 'shapes', seed=0, num_train=2 * ITERATIONS, num_val=2)
    config = tmp_path / 'tiny_shapes.py'
    config.write_text(CONFIG.format(repo=repo, root=tmp_path / 'shapes', epochs=EPOCHS))
    reference, chaos = tmp_path / 'uninterrupted', tmp_path / 'chaos'
    finished(train(python, repo, config, reference))
    final = load(reference / f'epoch_{EPOCHS}.pth')

    forward, val, save, term = moments(SEED)
    killed(train(python, repo, config, chaos, '--resume', kill=forward))
    killed(train(python, repo, config, chaos, '--resume', kill=val))
    val_epoch = int(val.split(':')[1])
    assert (chaos / 'last_checkpoint').read_text().endswith(f'epoch_{val_epoch}.pth')
    control = tmp_path / 'control'
    shutil.copytree(chaos, control)

    killed(train(python, repo, config, chaos, '--resume', kill=save))
    # Killed inside the write: its bytes are in a temporary file, never renamed, and
    # last_checkpoint still names the previous checkpoint, which loads.
    save_epoch = int(save.split(':')[1])
    assert not (chaos / f'epoch_{save_epoch}.pth').exists()
    assert list(chaos.glob(f'.epoch_{save_epoch}.pth.*.tmp'))
    previous = (chaos / 'last_checkpoint').read_text()
    assert previous.endswith(f'epoch_{val_epoch}.pth')
    load(previous)

    stopped = train(python, repo, config, chaos, '--resume', kill=term)
    term_epoch, term_iteration = map(int, term.split(':')[1:])
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-4000:]
    stop_line = stopped.stderr.strip().splitlines()[-1]
    saved = chaos / f'epoch_{term_epoch - 1}.pth'
    assert stop_line == (
        'frcnn_plugin: training stopped by SIGTERM after iteration '
        f'{(term_epoch - 1) * ITERATIONS + term_iteration + 1}, in epoch {term_epoch}; that '
        f'unfinished epoch is not saved; --resume continues from {saved}')
    assert not (chaos / f'epoch_{term_epoch}.pth').exists()

    # The newest checkpoint truncated (as by a writer that is not atomic, or the disk).
    data = saved.read_bytes()
    saved.write_bytes(data[:len(data) // 2])
    resumed = finished(train(python, repo, config, chaos, '--resume'))
    before = chaos / f'epoch_{term_epoch - 2}.pth'
    notes = [line for line in resumed.splitlines() if line.startswith('frcnn_plugin:')]
    assert len(notes) == 1 and notes[0].startswith(
        f'frcnn_plugin: {saved} (named by {chaos / "last_checkpoint"}) is unreadable (')
    assert notes[0].endswith(f'): resuming from {before}, the newest checkpoint that loads')

    assert differences(load(chaos / f'epoch_{EPOCHS}.pth'), final) == []
    assert last_epoch_losses(chaos) == last_epoch_losses(reference)

    # The control: the same resume from the checkpoint of the validation kill, with its
    # random states removed, continues with other random draws and ends elsewhere.
    checkpoint = load(control / f'epoch_{val_epoch}.pth')
    del checkpoint['random_state']
    torch.save(checkpoint, control / f'epoch_{val_epoch}.pth')
    (control / 'last_checkpoint').write_text(str(control / f'epoch_{val_epoch}.pth'))
    resumed = finished(train(python, repo, config, control, '--resume'))
    assert 'the resumed checkpoint holds no random state' in resumed
    assert differences(load(control / f'epoch_{EPOCHS}.pth'), final) != []
    assert last_epoch_losses(control) != last_epoch_losses(reference)
