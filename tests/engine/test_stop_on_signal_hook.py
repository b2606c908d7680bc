"""ScratchStopOnSignalHook: SIGTERM / SIGINT stop training at the end of the current
iteration (an epoch's last one: after its checkpoint), saving nothing for a partial epoch
and naming the checkpoint that ``--resume`` continues from; the handlers from before
training are back afterwards. The control: without the hook, SIGINT interrupts at once."""
import os
import signal

import pytest
from mmengine.hooks import Hook
from toy_training import toy_runner

import frcnn_plugin  # noqa: F401  registers the hooks
from frcnn_plugin.engine.hooks import TrainingStopped

STOP = dict(type='ScratchStopOnSignalHook')


class SignalAt(Hook):
    """Sends ``signum`` to this process after iteration ``at`` (counted from 0)."""

    def __init__(self, signum, at):
        self.signum, self.at = signum, at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.fixture
def guarded_sigterm():
    """SIGTERM recorded instead of ending pytest, should the hook not handle it."""
    received = []
    previous = signal.signal(signal.SIGTERM, lambda *args: received.append(args))
    yield previous, received
    signal.signal(signal.SIGTERM, previous)


def checkpoints(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix == '.pth')


def test_sigterm_mid_epoch_stops_after_the_iteration_and_saves_nothing(tmp_path,
                                                                       guarded_sigterm):
    handler = signal.getsignal(signal.SIGTERM)
    runner = toy_runner(tmp_path, 'sigterm_mid_epoch', hooks=[STOP, SignalAt(signal.SIGTERM, 5)])
    with pytest.raises(TrainingStopped) as stopped:
        runner.train()
    assert stopped.value.signum == signal.SIGTERM
    assert str(stopped.value) == (
        'training stopped by SIGTERM after iteration 6, in epoch 2; that unfinished epoch '
        f'is not saved; --resume continues from {tmp_path / "epoch_1.pth"}')
    assert checkpoints(tmp_path) == ['epoch_1.pth']
    assert signal.getsignal(signal.SIGTERM) is handler
    assert guarded_sigterm[1] == []


def test_sigint_in_an_epochs_last_iteration_stops_after_its_checkpoint(tmp_path):
    runner = toy_runner(tmp_path, 'sigint_end_of_epoch', hooks=[STOP, SignalAt(signal.SIGINT, 3)])
    with pytest.raises(TrainingStopped) as stopped:
        runner.train()
    assert str(stopped.value) == (
        f'training stopped by SIGINT after epoch 1; --resume continues from '
        f'{tmp_path / "epoch_1.pth"}')
    assert checkpoints(tmp_path) == ['epoch_1.pth']
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_the_hook_sigint_interrupts_at_once(tmp_path):
    runner = toy_runner(tmp_path, 'sigint_stock', hooks=[SignalAt(signal.SIGINT, 5)])
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    assert checkpoints(tmp_path) == ['epoch_1.pth']


def test_a_second_signal_stops_at_once(tmp_path):
    class Twice(SignalAt):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter == self.at:
                os.kill(os.getpid(), self.signum)
                os.kill(os.getpid(), self.signum)

    runner = toy_runner(tmp_path, 'sigint_twice', hooks=[STOP, Twice(signal.SIGINT, 1)])
    with pytest.raises(KeyboardInterrupt):  # Python's own SIGINT handler, back in place
        runner.train()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_forked_children_get_the_handlers_from_before_training(tmp_path):
    """A pool (mmdet's eval_map) ends its workers with SIGTERM: they must not inherit a
    Python handler, which a blocked worker may never run."""

    class Fork(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # the hook's
            child = os.fork()
            if child == 0:
                os._exit(0 if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 1)
            self.status = os.waitpid(child, 0)[1]

    fork = Fork()
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        toy_runner(tmp_path, 'fork', length=1, hooks=[STOP, fork]).train()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert os.waitstatus_to_exitcode(fork.status) == 0
