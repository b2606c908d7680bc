"""ScratchRandomStateHook: a run resumed from a checkpoint ends with exactly the weights
of the uninterrupted run, at an epoch's end (EpochBasedTrainLoop) and in the middle of
an epoch (IterBasedTrainLoop, which replays the epoch's first batches); the control, the
same resume from the checkpoint without its random states, ends with other weights."""
import random

import numpy as np
import pytest
import torch
from toy_training import toy_runner

import frcnn_plugin  # noqa: F401  registers the hooks
from frcnn_plugin.engine.checkpoint import load
from frcnn_plugin.engine.random_state import capture_random_state, restore_random_state

HOOK = dict(type='ScratchRandomStateHook')


def draws():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random(),
            np.random.randn())  # randn: numpy's cached Gaussian is part of its state


def test_states_survive_a_weights_only_checkpoint(tmp_path):
    np.random.randn()  # leaves a cached Gaussian
    torch.save({'random_state': capture_random_state()}, tmp_path / 'state.pth')
    expected = draws()
    restore_random_state(load(tmp_path / 'state.pth')['random_state'])
    assert draws() == expected


def weights(runner):
    return {name: value.clone() for name, value in runner.model.state_dict().items()}


# (by_epoch, length, length when interrupted): 3 epochs of 4 iterations, stopped after
# epoch 2; 10 iterations, stopped after 6 (in the second pass over the 4 items).
LOOPS = [(True, 3, 2), (False, 10, 6)]


@pytest.mark.parametrize('by_epoch, length, stopped_at', LOOPS, ids=['epoch', 'iter'])
def test_resume_ends_where_the_uninterrupted_run_ends(tmp_path, by_epoch, length, stopped_at):
    whole = toy_runner(tmp_path / 'whole', f'whole_{by_epoch}', by_epoch, length, hooks=[HOOK])
    whole.train()
    stopped = toy_runner(tmp_path / 'resumed', f'stopped_{by_epoch}', by_epoch, stopped_at,
                         hooks=[HOOK])
    stopped.train()
    name = f'{"epoch" if by_epoch else "iter"}_{stopped_at}.pth'
    resumed = toy_runner(tmp_path / 'resumed', f'resumed_{by_epoch}', by_epoch, length,
                         hooks=[HOOK], resume=True)
    resumed.train()
    assert resumed.iter == whole.iter == (4 * length if by_epoch else length)
    expected = weights(whole)
    assert all(torch.equal(value, expected[name]) for name, value in weights(resumed).items())

    # The control: the checkpoint without its random states.
    control_dir = tmp_path / 'control'
    control_dir.mkdir()
    checkpoint = load(tmp_path / 'resumed' / name)
    del checkpoint['random_state']
    torch.save(checkpoint, control_dir / name)
    control = toy_runner(control_dir, f'control_{by_epoch}', by_epoch, length, hooks=[HOOK],
                         resume=True, load_from=str(control_dir / name))
    control.train()
    assert control.iter == whole.iter
    assert not all(torch.equal(value, expected[name])
                   for name, value in weights(control).items())


def test_load_from_restores_nothing(tmp_path):
    first = toy_runner(tmp_path / 'first', 'first_run', hooks=[HOOK], length=1)
    first.train()
    np.random.seed(1)
    fine_tune = toy_runner(tmp_path / 'second', 'fine_tune', hooks=[HOOK], length=0,
                           load_from=str(tmp_path / 'first' / 'epoch_1.pth'))
    state = capture_random_state()
    fine_tune.train()  # no epoch: nothing draws after before_train
    after = capture_random_state()
    assert torch.equal(after['torch'], state['torch'])
    assert torch.equal(after['numpy']['keys'], state['numpy']['keys'])
