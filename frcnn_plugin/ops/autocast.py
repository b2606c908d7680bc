"""Mixed precision for the ops: computed in float32 under autocast, as torchvision's.

Under ``torch.autocast`` the backbone's features arrive in bfloat16 or float16.
Box coordinates in those types are coarse (bfloat16 keeps 8 significant bits: a
coordinate near 1000 moves in steps of 4 pixels), so sampling positions, bin
edges and IoUs would all shift. torchvision's ``roi_align``, ``roi_pool`` and
``nms`` register autocast wrappers that cast their floating inputs to float32, run
the float32 kernel and cast a floating result back to the input's dtype; the
public ops here follow that rule on every device.
"""
import functools
from typing import Any, Callable

import torch
from torch import Tensor

# What autocast lowers; float64 inputs stay float64, as in torchvision's wrappers.
LOW_PRECISION = (torch.float16, torch.bfloat16)


def _autocast_device(values) -> str:
    """The device type of the first tensor among ``values`` whose autocast is on, or ''."""
    for value in values:
        if isinstance(value, Tensor):
            device = value.device.type
            return device if torch.is_autocast_enabled(device) else ''
    return ''


def _to_float32(value: Any) -> Any:
    if isinstance(value, Tensor) and value.dtype in LOW_PRECISION:
        return value.float()
    return value


def _to_dtype(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, tuple):
        return tuple(_to_dtype(v, dtype) for v in value)
    return value


def float32_under_autocast(op: Callable) -> Callable:
    """Decorate an op (a function or a ``forward``) so that under autocast it runs in float32.

    When autocast is on for the device of the op's first tensor argument: every
    float16 / bfloat16 tensor argument is cast to float32, the op runs with autocast
    off, and the floating tensors it returns (alone or in a tuple) are cast to the
    dtype of that first tensor argument (RoI features in the features' dtype,
    ``batched_nms``'s ``dets`` in the boxes' dtype; indices stay int64). Without
    autocast the op runs as it is, in whatever dtype it is given.
    """

    @functools.wraps(op)
    def run(*args, **kwargs):
        values = (*args, *kwargs.values())
        device = _autocast_device(values)
        if not device:
            return op(*args, **kwargs)
        dtype = next(v.dtype for v in values if isinstance(v, Tensor))
        with torch.autocast(device, enabled=False):
            result = op(*map(_to_float32, args),
                        **{k: _to_float32(v) for k, v in kwargs.items()})
        return _to_dtype(result, dtype)

    return run
