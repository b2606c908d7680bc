"""Which checkpoint ``--resume`` (without a path) continues from, checked before it starts.

mmengine 0.10.7 (``Runner.load_or_resume`` -> ``find_latest_checkpoint``) resumes from
the file that ``<work_dir>/last_checkpoint`` names: a missing file fails with
``FileNotFoundError``, a truncated or foreign one with an unpickling traceback, and a
missing ``last_checkpoint`` starts training from the beginning. :func:`resume_checkpoint`
loads the named file weights-only (:func:`frcnn_plugin.engine.checkpoint.load`, exactly
what the resume will do); when it does not load, the newest checkpoint of the folder that
does (``epoch_*.pth`` / ``iter_*.pth``, newest by modification time) is chosen instead,
with one line naming both files. When none loads, :class:`NoCompleteCheckpoint` says so in
one line.
"""
import os
import os.path as osp
import re
from typing import Optional, Tuple

from .checkpoint import load

# The names mmengine's CheckpointHook gives (filename_tmpl 'epoch_{}.pth' / 'iter_{}.pth').
CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


class NoCompleteCheckpoint(Exception):
    """``last_checkpoint`` names a checkpoint that does not load, and no other does."""


def load_error(path: str) -> Optional[str]:
    """Why the checkpoint at ``path`` does not load (one line), or ``None`` if it does."""
    if not osp.isfile(path):
        return 'missing'
    if os.path.getsize(path) == 0:
        return 'empty'
    try:
        load(path, map_location='cpu')
    except Exception as error:  # torch, zip and pickle errors alike: it does not load
        # The first sentence: torch's zip errors go on with advice over several lines.
        text = str(error).strip().split('\n')[0].split('. ')[0]
        return f'unreadable ({text or type(error).__name__})'
    return None


def checkpoints_newest_first(folder: str) -> list:
    """The ``epoch_*.pth`` / ``iter_*.pth`` files in ``folder``, newest first (by
    modification time, then by number)."""
    if not osp.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        match = CHECKPOINT_NAME.match(name)
        path = osp.join(folder, name)
        if match and osp.isfile(path):
            found.append((os.stat(path).st_mtime_ns, int(match.group(2)), path))
    return [path for _, _, path in sorted(found, reverse=True)]


def resume_checkpoint(work_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """``(checkpoint, note)`` for ``--resume`` in ``work_dir``.

    ``(None, None)``: mmengine's own choice stands (the checkpoint ``last_checkpoint``
    names loads, or there is no checkpoint at all: training starts from the beginning).
    Otherwise the newest checkpoint that loads, and the line that says why it replaces
    the named one. Raises :class:`NoCompleteCheckpoint` when checkpoints exist but none loads.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(pointer):
        with open(pointer) as file:
            named = file.read().strip() or None
    if named and ('://' in named or osp.isdir(named)):
        return None, None  # a remote backend's or a folder checkpoint (deepspeed): mmengine's
    named_error = load_error(named) if named else None
    if named and named_error is None:
        return None, None
    folder = osp.dirname(named) if named else work_dir
    candidates = [path for path in checkpoints_newest_first(folder)
                  if not (named and osp.abspath(path) == osp.abspath(named))]
    if named:
        problem = f'{named} (named by {pointer}) is {named_error}'
    elif osp.isfile(pointer):
        problem = f'{pointer} is empty'
    elif candidates:
        problem = f'{pointer} is missing'
    else:
        return None, None  # nothing was saved yet: mmengine starts from the beginning
    for path in candidates:
        if load_error(path) is None:
            return path, f'{problem}: resuming from {path}, the newest checkpoint that loads'
    raise NoCompleteCheckpoint(
        f'cannot resume: {problem}, and no other checkpoint (epoch_*.pth, iter_*.pth) in '
        f'{folder} loads; train without --resume to start again')
