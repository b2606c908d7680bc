"""ScratchCheckpointHook: a kill at any instant of a save leaves ``last_checkpoint``
naming a complete checkpoint. mmengine's CheckpointHook (the control) removes the
outdated checkpoint before it writes the new one: with ``max_keep_ckpts=1``, a kill
during that write leaves no complete checkpoint at all."""
import itertools

import pytest
from mmengine.runner import runner as runner_module
from toy_training import toy_runner

import frcnn_plugin  # noqa: F401  registers the hooks
from frcnn_plugin.engine import atomic_files
from frcnn_plugin.engine.checkpoint import load

_counter = itertools.count()


def train_killed_at(tmp_path, monkeypatch, hook_type, target, when):
    """Train 3 epochs keeping 1 checkpoint; ``target`` (a function of the module named
    by ``when``) raises KeyboardInterrupt (the kill) at epoch 2's save."""
    module, name = target
    original = getattr(module, name)

    def kill_at_epoch_2(*args, **kwargs):
        if when(*args):
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, kill_at_epoch_2)
    runner = toy_runner(tmp_path, f'killed_{next(_counter)}',
                        checkpoint=dict(type=hook_type, max_keep_ckpts=1))
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    return sorted(p.name for p in tmp_path.iterdir() if p.suffix == '.pth')


# Inside the checkpoint's write (Runner.save_checkpoint -> mmengine's save_checkpoint).
IN_WRITE = ((runner_module, 'save_checkpoint'), lambda checkpoint, path, *_: 'epoch_2' in path)


def test_a_kill_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    assert train_killed_at(tmp_path, monkeypatch, 'ScratchCheckpointHook', *IN_WRITE) == [
        'epoch_1.pth']
    named = (tmp_path / 'last_checkpoint').read_text()
    assert named == str(tmp_path / 'epoch_1.pth')
    assert load(named)['meta']['epoch'] == 1


def test_mmengine_removes_the_previous_checkpoint_first(tmp_path, monkeypatch):
    assert train_killed_at(tmp_path, monkeypatch, 'CheckpointHook', *IN_WRITE) == []
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_1.pth')


def test_a_kill_while_updating_last_checkpoint_keeps_what_it_names(tmp_path, monkeypatch):
    # The new checkpoint is complete; last_checkpoint's rename is killed.
    renaming_pointer = ((atomic_files.os, 'replace'),
                        lambda source, target: str(target).endswith('last_checkpoint')
                        and (tmp_path / 'epoch_2.pth').exists())
    assert train_killed_at(tmp_path, monkeypatch, 'ScratchCheckpointHook',
                           *renaming_pointer) == ['epoch_1.pth', 'epoch_2.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_1.pth')
    assert load(tmp_path / 'epoch_2.pth')['meta']['epoch'] == 2


def test_kept_checkpoints_as_mmengine_keeps_them(tmp_path):
    runner = toy_runner(tmp_path, 'kept', length=4,
                        checkpoint=dict(type='ScratchCheckpointHook', max_keep_ckpts=2))
    runner.train()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == '.pth') == [
        'epoch_3.pth', 'epoch_4.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_4.pth')
    assert load(tmp_path / 'epoch_4.pth')['message_hub']['runtime_info']['keep_ckpt_ids'] == [3, 4]
    assert not list(tmp_path.glob('.*.tmp'))
