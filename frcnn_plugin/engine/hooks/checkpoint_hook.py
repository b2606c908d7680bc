"""mmengine's ``CheckpointHook`` whose checkpoints survive a kill at any instant.

mmengine 0.10.7's ``CheckpointHook._save_checkpoint_with_step``, with ``max_keep_ckpts``:

1. removes the oldest kept checkpoint (with ``max_keep_ckpts=1``: the one that
   ``last_checkpoint`` names),
2. writes the new one in place (``Runner.save_checkpoint`` -> ``LocalBackend.put``),
3. writes ``last_checkpoint`` in place (``open(..., 'w')``).

A kill during 2 leaves a truncated checkpoint and, after 1, no complete one at all; a kill
during 3 leaves an empty ``last_checkpoint``. :class:`ScratchCheckpointHook` (config:
``default_hooks = dict(checkpoint=dict(type='ScratchCheckpointHook', ...))``, every
argument mmengine's) writes the new checkpoint atomically (the ``'ScratchAtomicLocal'``
file backend, :mod:`frcnn_plugin.engine.atomic_files`), then ``last_checkpoint``
atomically, and only then removes the outdated checkpoint. A kill at any instant leaves
``last_checkpoint`` naming a complete checkpoint (at worst, one outdated file stays).
"""
import os.path as osp
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from ..atomic_files import write_atomically

ATOMIC_BACKEND = dict(backend='ScratchAtomicLocal')


@HOOKS.register_module()
class ScratchCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic writes and removal after the new checkpoint is in place.

    Args:
        backend_args (dict, optional): mmengine's; ``None`` (the default) writes local
            files atomically (``dict(backend='ScratchAtomicLocal')``). Another backend
            (e.g. ``petrel``) is used as given, with that backend's own guarantees.
        **kwargs: every other argument of mmengine's ``CheckpointHook``.
    """

    def __init__(self, *args, backend_args: Optional[dict] = None, **kwargs):
        if backend_args is None and kwargs.get('file_client_args') is None:
            backend_args = ATOMIC_BACKEND
        super().__init__(*args, backend_args=backend_args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = self._keep(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        write_atomically(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt.encode())
        if outdated is not None:
            self._remove(outdated)

    def _keep(self, runner, step) -> Optional[str]:
        """Records ``step`` among the kept checkpoints (as mmengine does, in the message hub
        that the checkpoint saves); returns the path of the one it displaces, if any."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return None  # nothing kept, or this step's checkpoint again (save_best)
        outdated = None
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            outdated = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(self.keep_ckpt_ids.popleft()))
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return outdated

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # deepspeed saves checkpoints as folders
            self.file_backend.rmtree(path)
