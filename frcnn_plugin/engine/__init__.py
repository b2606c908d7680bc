"""What runs around the model during training: hooks, the optimizer wrapper for CPU
mixed precision, safe checkpoint loading, and the stages of alternating training."""
from .hooks import FineTuneHook, FreezeModulesHook
from .optimizers import ScratchAmpOptimWrapper

__all__ = ['FineTuneHook', 'FreezeModulesHook', 'ScratchAmpOptimWrapper']
