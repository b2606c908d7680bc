"""Training hooks, registered in mmdet's ``HOOKS``."""
from .finetune_hook import FineTuneHook
from .freeze_modules_hook import FreezeModulesHook

__all__ = ['FineTuneHook', 'FreezeModulesHook']
