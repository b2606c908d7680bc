"""Files that are either complete or absent: a write that is killed, or that fails on a
full disk, leaves the previous file (or no file) in place, never a truncated one.

mmengine's ``LocalBackend.put`` (through which ``Runner.save_checkpoint`` writes every
checkpoint) and ``CheckpointHook`` (which writes ``last_checkpoint``) open the final path
and write into it. :func:`write_atomically` writes a temporary file in the same folder,
flushes it to the disk (``fsync``), then renames it over the final path (``os.replace``,
atomic on POSIX and Windows within one file system) and flushes the folder, so that the
rename itself survives a power cut. :class:`AtomicLocalBackend` is mmengine's local file
backend with that ``put``, registered as mmengine file backend ``'ScratchAtomicLocal'``
(``backend_args=dict(backend='ScratchAtomicLocal')``).
"""
import os
import os.path as osp
import uuid
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

# Temporary files are named '.<final name>.<random>.tmp' in the final file's folder.
TEMPORARY_SUFFIX = '.tmp'


def write_atomically(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` (its folder created) so that ``path`` holds either its
    previous content or all of ``data``, whenever the process dies. A failed write (e.g. a
    full disk) removes its temporary file and raises."""
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = osp.join(folder, f'.{osp.basename(path)}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}')
    # Created as open() would create the file (permissions from the umask), never reused.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, 'O_BINARY', 0), 0o666)
    try:
        with os.fdopen(descriptor, 'wb') as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if osp.exists(temporary):
            os.remove(temporary)
        raise
    _sync_folder(folder)


def _sync_folder(folder: str) -> None:
    """Flush the folder's entries (the rename) to the disk, where the system allows it."""
    if not hasattr(os, 'O_DIRECTORY'):  # Windows: folders cannot be opened
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@register_backend('ScratchAtomicLocal')
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` and ``put_text`` write atomically
    (:func:`write_atomically`); reading, listing and removing are mmengine's."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        write_atomically(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        write_atomically(filepath, obj.encode(encoding))
