"""tools/train.py --resume, before mmdet's tool starts: a newest checkpoint that does not
load is replaced by the newest one that does (one line naming both), none that loads or
a --resume PATH that does not exist is one line and a non-zero exit, and every other
tool and flag is left alone. (The whole command: test_resume_chaos.py.)"""
from argparse import Namespace

import pytest
import torch
from mmengine.config import Config

from frcnn_plugin.utils.mmdet_tools import resume_argv, tool_work_dir


def train_args(work_dir, resume='auto', config='configs/frcnn_shapes.py'):
    return Namespace(config=config, work_dir=str(work_dir), resume=resume)


@pytest.fixture
def truncated_newest(tmp_path):
    torch.save({'state_dict': {'w': torch.ones(2)}}, tmp_path / 'epoch_1.pth')
    (tmp_path / 'epoch_2.pth').write_bytes((tmp_path / 'epoch_1.pth').read_bytes()[:-50])
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    return tmp_path


def test_a_truncated_newest_checkpoint_resumes_from_the_one_before(truncated_newest, capsys):
    work_dir = truncated_newest
    expected = ['--resume', str(work_dir / 'epoch_1.pth')]
    assert resume_argv(train_args(work_dir), Config()) == expected
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f'frcnn_plugin: {work_dir / "epoch_2.pth"} (named by {work_dir / "last_checkpoint"}) '
        'is unreadable (')
    # The config's own resume = True (no --resume) is the same resume.
    assert resume_argv(train_args(work_dir, resume=None), Config(dict(resume=True))) == expected


def test_no_checkpoint_that_loads_is_one_line(truncated_newest):
    (truncated_newest / 'epoch_1.pth').write_bytes(b'')
    with pytest.raises(SystemExit) as stop:
        resume_argv(train_args(truncated_newest), Config())
    assert str(stop.value).startswith(
        f'frcnn_plugin: cannot resume: {truncated_newest / "epoch_2.pth"} (named by ')
    assert '\n' not in str(stop.value)


def test_left_alone(truncated_newest, tmp_path):
    assert resume_argv(train_args(tmp_path / 'new'), Config()) == []  # nothing saved yet
    assert resume_argv(train_args(truncated_newest, resume=None), Config()) == []  # no resume
    loaded = Config(dict(resume=True, load_from='x.pth'))  # resumes from load_from
    assert resume_argv(train_args(truncated_newest, resume=None), loaded) == []
    assert resume_argv(train_args(truncated_newest, resume=str(truncated_newest / 'epoch_1.pth')),
                       Config()) == []
    test_args = Namespace(config='c.py', work_dir=str(truncated_newest), checkpoint='x.pth')
    assert resume_argv(test_args, Config(dict(resume=True))) == []  # test.py


def test_a_resume_path_that_does_not_exist_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as stop:
        resume_argv(train_args(tmp_path, resume=str(tmp_path / 'epoch_9.pth')), Config())
    assert str(stop.value) == (
        f'frcnn_plugin: checkpoint {tmp_path / "epoch_9.pth"} (--resume) not found')


def test_the_work_dir_as_mmdet_chooses_it():
    args = Namespace(config='configs/frcnn_shapes.py', work_dir=None)
    assert tool_work_dir(args, Config()) == './work_dirs/frcnn_shapes'
    assert tool_work_dir(args, Config(dict(work_dir='elsewhere'))) == 'elsewhere'
    args = Namespace(config='c.py', work_dir='cli')
    assert tool_work_dir(args, Config(dict(work_dir='x'))) == 'cli'
