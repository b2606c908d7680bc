"""The weights alternating training passes between its stages: read from one stage's
checkpoint, taken by module prefix, saved as the next stage's ``load_from``."""
from typing import Dict, Optional, Sequence

import torch

from .checkpoint import load as load_mmengine_checkpoint


def read_checkpoint(path: str) -> dict:
    """An mmengine checkpoint, read with ``weights_only=True`` (see ``checkpoint.py``)."""
    return load_mmengine_checkpoint(path, map_location='cpu')


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The ``state_dict`` of an mmengine checkpoint."""
    return read_checkpoint(path)['state_dict']


def take(state_dict: dict, prefixes: Sequence[str], rename: Optional[Dict[str, str]] = None
         ) -> Dict[str, torch.Tensor]:
    """The entries under ``prefixes`` (``'backbone'`` takes ``backbone.*``), with
    their first component renamed by ``rename`` (``{'bbox_head': 'rpn_head'}``:
    mmdet's ``RPN`` detector calls its head ``bbox_head``, ``FasterRCNN`` ``rpn_head``).
    """
    rename = rename or {}
    out = {}
    for key, value in state_dict.items():
        head, _, rest = key.partition('.')
        if head in prefixes:
            out[f'{rename.get(head, head)}.{rest}'] = value
    return out


def save_weights(state_dict: dict, path: str, meta: Optional[dict] = None) -> None:
    """An mmengine-format checkpoint holding only weights: ``{'meta', 'state_dict'}``."""
    torch.save({'meta': dict(meta or {}), 'state_dict': dict(state_dict)}, path)
