"""Ctrl-C (SIGINT) or SIGTERM stops training at a clean point.

Without it, SIGINT raises ``KeyboardInterrupt`` wherever Python happens to be (inside a
checkpoint write too) and SIGTERM ends the process at once. :class:`ScratchStopOnSignalHook`
(config: ``custom_hooks = [dict(type='ScratchStopOnSignalHook')]``) turns the first such
signal into a request: training stops after the current iteration, or, when that
iteration ends an epoch, after the epoch's checkpoint is written; during validation, after
the current validation batch. Nothing is saved for a partial epoch, so it is never taken
for a finished one: ``--resume`` continues from the last checkpoint (for
``EpochBasedTrainLoop``, the last finished epoch's), which the stop message names. A
second signal stops at once, as without the hook.

The stop is a :class:`TrainingStopped` raised out of ``Runner.train``; ``tools/train.py``
prints its message in one line and exits with 128 + the signal's number (130 for SIGINT,
143 for SIGTERM), as a shell reports a process ended by that signal.
"""
import os
import os.path as osp
import signal
import threading
from typing import Sequence

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

# The hooks whose handlers are installed in this process (see _reset_in_forked_children).
_INSTALLED = []
_AT_FORK = []  # [True] once _restore_in_child is registered


def _restore_in_child() -> None:
    for hook in list(_INSTALLED):
        hook._restore_handlers()


def _reset_in_forked_children(hook) -> None:
    """A process forked while ``hook``'s handlers are installed (mmdet's ``eval_map`` pool,
    data loader workers) gets the handlers from before training back: a Python handler
    runs only when the process's main thread runs Python, and a pool ends its workers with
    SIGTERM, which such a handler can leave unanswered (a hang at the pool's end)."""
    if not _AT_FORK:
        os.register_at_fork(after_in_child=_restore_in_child)
        _AT_FORK.append(True)
    _INSTALLED.append(hook)


class TrainingStopped(Exception):
    """Training stopped on ``signum``; the message says where and how to continue."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


@HOOKS.register_module()
class ScratchStopOnSignalHook(Hook):
    """Stop training at the next clean point on the first of ``signals``.

    Args:
        signals (Sequence[str]): names of the signals handled, ``signal.Signals`` names.
            Defaults to ``('SIGINT', 'SIGTERM')``.
    """

    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved what it saves

    def __init__(self, signals: Sequence[str] = ('SIGINT', 'SIGTERM')):
        self.signals = [signal.Signals[name] for name in signals]
        self._received = None
        self._previous = {}

    def before_train(self, runner) -> None:
        self._received = None
        if threading.current_thread() is threading.main_thread():  # Python's rule
            self._previous = {signum: signal.signal(signum, self._receive)
                              for signum in self.signals}
            _reset_in_forked_children(self)

    def _receive(self, signum, frame) -> None:
        if self._received is not None:
            self._restore_handlers()
            signal.raise_signal(signum)  # the handler from before training: stops now
            return
        self._received = signum
        # os.write: a signal handler must not take the logging locks
        os.write(2, f'\n{signal.Signals(signum).name} received: training stops at the '
                 'next clean point (send it again to stop at once)\n'.encode())

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        if self in _INSTALLED:
            _INSTALLED.remove(self)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self._received is None:
            return
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            if not self.end_of_epoch(loop.dataloader, batch_idx):  # else: after its checkpoint
                self._stop(runner, f'after iteration {runner.iter + 1}, in epoch '
                           f'{runner.epoch + 1}; that unfinished epoch is not saved')
        else:
            self._stop(runner, f'after iteration {runner.iter + 1}; the iterations after '
                       'the last checkpoint are not saved')

    def after_train_epoch(self, runner) -> None:
        if self._received is not None:
            self._stop(runner, f'after epoch {runner.epoch + 1}')

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self._received is not None:
            self._stop(runner, 'during validation')

    def after_train(self, runner) -> None:
        self._restore_handlers()

    def _stop(self, runner, where: str):
        self._restore_handlers()
        last = osp.join(runner.work_dir, 'last_checkpoint')
        if osp.isfile(last):
            with open(last) as file:
                resume = f'--resume continues from {file.read().strip()}'
        else:
            resume = 'no checkpoint yet: training again starts from the beginning'
        raise TrainingStopped(self._received, f'training stopped by '
                              f'{signal.Signals(self._received).name} {where}; {resume}')
