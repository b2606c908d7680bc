"""Freezing the layers shared by the RPN and the Fast R-CNN, as stages 3 and 4 of the
paper's alternating training do (Ren et al. 2015, sec. 3.2)."""
from typing import List, Sequence

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

#: The layers the RPN and the Fast R-CNN share (frozen in stages 3 and 4).
SHARED = ('backbone', 'neck')


@HOOKS.register_module()
class FreezeModulesHook(Hook):
    """Keep the named submodules of the model bit-for-bit unchanged while training.

    ``requires_grad=False`` leaves their ``.grad`` at ``None``, which torch optimizers
    skip entirely (no momentum, no weight decay); eval mode before every iteration
    stops BatchNorm running statistics (and dropout) from moving. Single-process
    only: under DDP the parameters would have to be frozen before wrapping.

    Args:
        modules (Sequence[str]): attribute names on the detector, e.g. ``backbone``;
            missing or ``None`` ones (a model without neck) are skipped.
    """

    priority = 'VERY_HIGH'

    def __init__(self, modules: Sequence[str] = SHARED) -> None:
        self.modules = tuple(modules)

    def _frozen(self, runner) -> List[torch.nn.Module]:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return [m for m in (getattr(model, n, None) for n in self.modules) if m is not None]

    def before_train(self, runner) -> None:
        for module in self._frozen(runner):
            module.requires_grad_(False)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # The train loop calls model.train() at every epoch start: undo it here.
        for module in self._frozen(runner):
            module.eval()
