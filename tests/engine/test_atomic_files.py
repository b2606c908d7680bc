"""A checkpoint write either completes or leaves the previous file: mmengine's
``LocalBackend.put`` truncates the file before writing; ``write_atomically`` (and the
``'ScratchAtomicLocal'`` backend that checkpoints are written with) never does."""
import os

import pytest
from mmengine.fileio import LocalBackend, get_file_backend

from frcnn_plugin.engine import atomic_files
from frcnn_plugin.engine.atomic_files import AtomicLocalBackend, write_atomically


class Unwritable:
    """Not bytes: ``file.write`` raises once the file is open, as a full disk would."""


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    path.write_bytes(b'previous')
    with pytest.raises(TypeError):
        AtomicLocalBackend().put(Unwritable(), path)
    assert path.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no temporary file left
    # The control: mmengine's own backend has already emptied the file.
    with pytest.raises(TypeError):
        LocalBackend().put(Unwritable(), path)
    assert path.read_bytes() == b''


def test_a_write_killed_before_its_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / 'last_checkpoint'
    path.write_bytes(b'epoch_1.pth')

    def killed(descriptor):  # the bytes are written, not yet flushed nor renamed
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic_files.os, 'fsync', killed)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, b'epoch_2.pth')
    assert path.read_bytes() == b'epoch_1.pth'
    assert os.listdir(tmp_path) == ['last_checkpoint']


def test_writes_create_the_folder_with_the_umask_permissions(tmp_path):
    path = tmp_path / 'new' / 'epoch_1.pth'
    get_file_backend(str(path), backend_args=dict(backend='ScratchAtomicLocal')).put(b'x', path)
    AtomicLocalBackend().put_text('é', tmp_path / 'text')
    assert path.read_bytes() == b'x' and (tmp_path / 'text').read_text('utf-8') == 'é'
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ['new', 'text']
