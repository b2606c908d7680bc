"""Let ``torch.load(weights_only=True)`` (the default from torch 2.6) read mmengine checkpoints.

mmengine's runner saves, beside the tensors, its ``MessageHub`` state: ``HistoryBuffer``
objects holding numpy arrays, plus numpy scalars in ``meta``. The weights-only unpickler
refuses those globals, so stock ``tools/test.py`` and ``--resume`` fail with
``UnpicklingError ... HistoryBuffer``. Instead of loading with ``weights_only=False``
(which runs any pickled code), we allowlist exactly what such a checkpoint holds:

- ``HistoryBuffer`` and the numpy pieces an array or scalar is rebuilt from
  (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``, ``bytes``);
- ``builtins.getattr``, which a ``HistoryBuffer`` pickles its statistics methods with
  (``getattr(HistoryBuffer, 'mean')``), bound to :func:`history_buffer_getattr`, which
  only looks up those methods: the real ``getattr`` would reach anything.

Everything else in a checkpoint is still refused.
"""
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


# The statistics HistoryBuffer registers by default; its class-level registry is only
# filled by the first instance, so a fresh process (test.py, --resume) has it empty.
DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj, name: str):
    """``getattr`` for the unpickler, limited to ``HistoryBuffer``'s statistics methods."""
    if obj is HistoryBuffer and (name in DEFAULT_STATISTICS
                                 or name in HistoryBuffer._statistics_methods):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights_only load refuses getattr({obj!r}, {name!r}): only the statistics '
        'methods of mmengine.logging.HistoryBuffer are allowed')


def _numpy_core():
    # numpy 2 moved numpy.core to numpy._core; checkpoints name whichever wrote them.
    return getattr(np, '_core', None) or np.core


def mmengine_checkpoint_globals() -> list:
    """The globals :func:`allow_mmengine_checkpoints` marks safe."""
    core = _numpy_core()
    safe = [HistoryBuffer, np.ndarray, np.dtype, bytes,
            core.multiarray._reconstruct, core.multiarray.scalar,
            (history_buffer_getattr, 'builtins.getattr')]
    # numpy 2 pickles the dtype classes by name too (numpy.dtypes.Float64DType...).
    safe += [cls for cls in vars(np.dtypes).values()
             if isinstance(cls, type) and issubclass(cls, np.dtype)]
    return safe


def allow_mmengine_checkpoints() -> None:
    """Mark :func:`mmengine_checkpoint_globals` safe for ``torch.load`` (idempotent).

    A no-op on torch < 2.4, which has no allowlist (and loads with ``weights_only=False``).
    """
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
