"""Fine-tuning from a checkpoint trained on other classes (``load_from`` with another
``num_classes``): say plainly which weights are not loaded.

What mmengine 0.10.7 already does (``Runner.load_checkpoint`` ->
``mmengine.runner.checkpoint.load_state_dict`` with ``strict=False``): each module's
``_load_from_state_dict`` skips a tensor whose shape differs from the model's and
records ``size mismatch for roi_head.bbox_head.fc_cls.weight: copying a param with
shape torch.Size([81, 1024]) from checkpoint, the shape in current model is
torch.Size([4, 1024])``; every other tensor is copied, and the collected messages are
logged as one WARNING. The runner initialises the model *before* ``load_from``, so the
skipped ``fc_cls`` / ``fc_reg`` keep the model's own initialisation (Normal 0.01 /
0.001, bias 0): the class-specific layers start fresh, which is what fine-tuning needs.
Nothing has to change in the loading itself.

That warning does not say what happens to the skipped layers and looks like an error.
:class:`FineTuneHook` (config: ``custom_hooks = [dict(type='FineTuneHook')]``) adds
one INFO line, before the weights are copied, naming each checkpoint tensor that does
not fit, both shapes, and that it keeps its initialisation.
"""
import re
from typing import Dict, List, Tuple

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import nn

Mismatch = Tuple[str, Tuple[int, ...], Tuple[int, ...]]


def shape_mismatches(model: nn.Module, state_dict: Dict, revise_keys=((r'^module\.', ''),)
                     ) -> List[Mismatch]:
    """``(name, checkpoint shape, model shape)`` of each tensor present in both with
    different shapes, in the model's order; ``revise_keys`` renames checkpoint keys as
    ``Runner.load_checkpoint`` does (default: drop a DataParallel ``module.`` prefix)."""
    revised = {}
    for key, value in state_dict.items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    return [(name, tuple(revised[name].shape), tuple(tensor.shape))
            for name, tensor in model.state_dict().items()
            if name in revised and hasattr(revised[name], 'shape')
            and revised[name].shape != tensor.shape]


def describe_mismatches(mismatches: List[Mismatch]) -> str:
    """The log text for :func:`shape_mismatches`."""
    lines = [f'  {name}: checkpoint {list(ckpt)} -> model {list(model)}'
             for name, ckpt, model in mismatches]
    return (f'Fine-tuning: {len(mismatches)} checkpoint tensor(s) do not fit this model '
            '(e.g. another num_classes) and are not loaded; they keep the model\'s own '
            'initialisation (re-initialised), everything else is loaded:\n' + '\n'.join(lines))


@HOOKS.register_module()
class FineTuneHook(Hook):
    """Log which checkpoint tensors ``load_from`` (or a resume) cannot load for shape.

    Runs on ``after_load_checkpoint``, i.e. on the raw checkpoint just before the runner
    copies it into the model; logs nothing when every shape fits.
    """

    priority = 'VERY_LOW'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state_dict = checkpoint.get('state_dict', checkpoint)
        mismatches = shape_mismatches(model, state_dict)
        if mismatches:
            print_log(describe_mismatches(mismatches), logger=runner.logger)
