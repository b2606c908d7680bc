"""Optimizer wrappers, registered in mmengine's ``OPTIM_WRAPPERS``."""
from .amp_optim_wrapper import ScratchAmpOptimWrapper

__all__ = ['ScratchAmpOptimWrapper']
