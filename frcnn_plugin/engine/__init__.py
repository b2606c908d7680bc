"""What runs around the model during training: hooks (exact and atomic checkpoints among
them), the optimizer wrapper for CPU mixed precision, safe checkpoint loading, and the
stages of alternating training."""
from .hooks import (
                    FineTuneHook,
                    FreezeModulesHook,
                    ScratchCheckpointHook,
                    ScratchRandomStateHook,
                    ScratchStopOnSignalHook,
)
from .optimizers import ScratchAmpOptimWrapper

__all__ = ['FineTuneHook', 'FreezeModulesHook', 'ScratchAmpOptimWrapper',
           'ScratchCheckpointHook', 'ScratchRandomStateHook', 'ScratchStopOnSignalHook']
