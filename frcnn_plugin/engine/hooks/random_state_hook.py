"""Exact resume: a resumed run draws the same random numbers as the run it continues.

What mmengine 0.10.7 does on ``--resume`` (``Runner.resume``): it restores the weights,
the optimizer, the parameter schedulers, the message hub and the epoch / iteration
counters, and re-seeds the generators only when the checkpoint's ``meta['seed']``
differs from the config's (``set_randomness``, i.e. from the *start* of the schedule).
The generators are otherwise where the new process's start-up left them, so the
proposal sampler's draws, the flips and every later step differ from the interrupted
run's. The data order does not: ``DefaultSampler`` shuffles each epoch with a generator
seeded with ``seed + epoch`` (``DistSamplerSeedHook`` sets the epoch), but the sampler is
built before the checkpoint is read, with the config's seed (a random one when the config
sets none).

:class:`ScratchRandomStateHook` (config: ``custom_hooks = [dict(type='ScratchRandomStateHook')]``)

- saves the random states (:mod:`frcnn_plugin.engine.random_state`) and the train
  sampler's ``seed`` in every checkpoint (``before_save_checkpoint``), under
  ``'random_state'``;
- on a resume, restores them where the interrupted run was when it saved:
  ``EpochBasedTrainLoop`` saves at the end of an epoch and resumes at the start of the
  next one, so the states are restored on the first ``before_train_epoch``.
  ``IterBasedTrainLoop`` resumes mid-epoch by drawing (and discarding) as many batches as
  were trained, which runs the random transforms; the states are restored after those
  batches, just before the first batch it trains;
- makes validation leave the generators as it found them (``before_val`` / ``after_val``):
  a resumed run does not repeat the validation that followed its checkpoint, and the
  data loader of every validation draws a base seed from torch's generator.

A checkpoint counts as resumed when the runner starts training at the epoch and
iteration it records (``load_from`` starts at 0): nothing is restored after a
``load_from``. A checkpoint without the states (saved without this hook) resumes as
mmengine does, with a warning.
"""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

from ..random_state import capture_random_state, restore_random_state, seeded_sampler

KEY = 'random_state'


class _RestoreAfter:
    """Wraps ``IterBasedTrainLoop.dataloader_iterator``: after ``skip`` batches, restores
    ``state`` just before the next one is drawn, then puts the loop's iterator back."""

    def __init__(self, loop, skip: int, state: dict):
        self.loop, self.skip, self.state = loop, skip, state
        self.iterator = loop.dataloader_iterator

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0:
            restore_random_state(self.state)
            self.loop.dataloader_iterator = self.iterator
        self.skip -= 1
        return next(self.iterator)


@HOOKS.register_module()
class ScratchRandomStateHook(Hook):
    """Saves the random states in each checkpoint and restores them on ``--resume``."""

    priority = 'VERY_HIGH'  # restores before every other hook's before_train_epoch

    def __init__(self):
        self._loaded = None  # (epoch, iter, random state) of the last checkpoint loaded
        self._to_restore = None  # restored at the next before_train_epoch
        self._before_val = None  # the states validation started from

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # During validation (save_best): the states it will give back.
        state = self._before_val or capture_random_state()
        sampler = seeded_sampler(runner.train_dataloader)
        if sampler is not None:
            state = dict(state, sampler_seed=sampler.seed)
        checkpoint[KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {})
        self._loaded = (meta.get('epoch'), meta.get('iter'), checkpoint.get(KEY))

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is None or loaded[:2] != (runner.epoch, runner.iter):
            return  # a fresh start, or load_from
        state = loaded[2]
        if state is None:
            runner.logger.warning(
                'ScratchRandomStateHook: the resumed checkpoint holds no random state (saved '
                'without this hook): training goes on with new random draws, not those of '
                'the run it continues')
            return
        sampler = seeded_sampler(runner.train_dataloader)
        if sampler is not None and 'sampler_seed' in state:
            sampler.seed = state['sampler_seed']
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreAfter(loop, runner.iter, state)
        else:
            self._to_restore = state

    def before_train_epoch(self, runner) -> None:
        if self._to_restore is not None:
            restore_random_state(self._to_restore)
            self._to_restore = None

    def before_val(self, runner) -> None:
        self._before_val = capture_random_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_random_state(self._before_val)
            self._before_val = None
