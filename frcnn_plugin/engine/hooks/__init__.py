"""Training hooks, registered in mmdet's ``HOOKS``."""
from .checkpoint_hook import ScratchCheckpointHook
from .finetune_hook import FineTuneHook
from .freeze_modules_hook import FreezeModulesHook
from .random_state_hook import ScratchRandomStateHook
from .stop_on_signal_hook import ScratchStopOnSignalHook, TrainingStopped

__all__ = ['FineTuneHook', 'FreezeModulesHook', 'ScratchCheckpointHook',
           'ScratchRandomStateHook', 'ScratchStopOnSignalHook', 'TrainingStopped']
