"""Test-only: a hook that kills its own training process at a chosen moment.

Imported by the chaos test's configs (``custom_imports``, with tests/tools on
``PYTHONPATH``). ``CHAOS_KILL`` names the moment, ``<event>:<epoch>[:<iteration>]``
(epochs from 1, iterations within the epoch from 0):

- ``forward:E:I``: SIGKILL inside iteration I of epoch E, after the RPN and the proposal
  sampling, in the R-CNN box head's forward;
- ``val:E``: SIGKILL during the validation after epoch E (after its first batch);
- ``save:E``: SIGKILL inside the write of epoch E's checkpoint, when the file's bytes
  are written and being flushed to the disk (``os.fsync``), before it is renamed;
- ``term:E:I``: SIGTERM to itself after iteration I of epoch E (ScratchStopOnSignalHook
  stops the training at the end of that iteration).
"""
import os
import signal

from mmdet.registry import HOOKS
from mmengine.hooks import Hook


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def _moment():
    event, *numbers = os.environ.get('CHAOS_KILL', 'none:0').split(':')
    return event, tuple(int(n) for n in numbers)


@HOOKS.register_module()
class ChaosKillHook(Hook):
    priority = 'NORMAL'

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        event, at = _moment()
        if event == 'forward' and at == (runner.epoch + 1, batch_idx):
            runner.model.roi_head.bbox_head.register_forward_hook(lambda *args: _kill())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        event, at = _moment()
        if event == 'term' and at == (runner.epoch + 1, batch_idx):
            os.kill(os.getpid(), signal.SIGTERM)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        event, at = _moment()
        if event == 'val' and at == (runner.epoch, ):
            _kill()

    def before_save_checkpoint(self, runner, checkpoint):
        event, at = _moment()
        if event == 'save' and at == (checkpoint['meta']['epoch'], ):
            os.fsync = lambda descriptor: _kill()  # the next fsync: the checkpoint's
