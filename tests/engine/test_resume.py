"""Which checkpoint ``--resume`` continues from: the one ``last_checkpoint`` names if it
loads, else the newest one that does, with one line naming both; none: one error."""
import os

import pytest
import torch

from frcnn_plugin.engine.resume import NoCompleteCheckpoint, load_error, resume_checkpoint


def save(folder, name, mtime):
    path = folder / name
    torch.save({'meta': {'epoch': 1}, 'state_dict': {'w': torch.ones(2)}}, path)
    os.utime(path, ns=(mtime, mtime))
    return path


@pytest.fixture
def work_dir(tmp_path):
    """epoch_1 < epoch_2 < epoch_3 in time; last_checkpoint names epoch_3."""
    for epoch in (1, 2, 3):
        save(tmp_path, f'epoch_{epoch}.pth', epoch * 10**9)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    return tmp_path


def test_a_checkpoint_that_loads_is_mmenginess_choice(work_dir):
    assert resume_checkpoint(str(work_dir)) == (None, None)


@pytest.mark.parametrize('damage, reason', [
    (lambda path: path.write_bytes(path.read_bytes()[:-100]), 'unreadable ('),
    (lambda path: path.write_bytes(b''), 'empty'),
    (lambda path: path.write_text('not a checkpoint'), 'unreadable ('),
    (os.remove, 'missing'),
])
def test_a_damaged_newest_checkpoint_gives_way_to_the_one_before(work_dir, damage, reason):
    newest = work_dir / 'epoch_3.pth'
    damage(newest)
    os.utime(work_dir / 'epoch_1.pth', ns=(5 * 10**9, 5 * 10**9))  # newer than epoch_2
    checkpoint, note = resume_checkpoint(str(work_dir))
    assert checkpoint == str(work_dir / 'epoch_1.pth')
    assert note.startswith(f'{newest} (named by {work_dir / "last_checkpoint"}) is {reason}')
    assert note.endswith(f': resuming from {checkpoint}, the newest checkpoint that loads')


def test_no_checkpoint_that_loads_is_one_error(work_dir):
    for epoch in (1, 2, 3):
        (work_dir / f'epoch_{epoch}.pth').write_bytes(b'PK\x03\x04')
    with pytest.raises(NoCompleteCheckpoint) as error:
        resume_checkpoint(str(work_dir))
    message = str(error.value)
    assert message.startswith(f'cannot resume: {work_dir / "epoch_3.pth"} (named by '
                              f'{work_dir / "last_checkpoint"}) is unreadable (')
    assert message.endswith(f'), and no other checkpoint (epoch_*.pth, iter_*.pth) in '
                            f'{work_dir} loads; train without --resume to start again')
    reason = message.split(' is unreadable (')[1].split('), and no other')[0]
    assert '\n' not in message and '. ' not in reason  # torch's first sentence only


def test_without_last_checkpoint(tmp_path):
    assert resume_checkpoint(str(tmp_path / 'new')) == (None, None)  # a first run
    save(tmp_path, 'iter_4.pth', 10**9)
    (tmp_path / 'last_checkpoint').write_text('')
    assert resume_checkpoint(str(tmp_path)) == (
        str(tmp_path / 'iter_4.pth'),
        f'{tmp_path / "last_checkpoint"} is empty: resuming from {tmp_path / "iter_4.pth"}, '
        'the newest checkpoint that loads')
    (tmp_path / 'last_checkpoint').unlink()
    assert resume_checkpoint(str(tmp_path))[1].startswith(
        f'{tmp_path / "last_checkpoint"} is missing: resuming from')


def test_load_error_is_none_for_a_checkpoint_that_loads(work_dir):
    assert load_error(str(work_dir / 'epoch_1.pth')) is None


def test_remote_and_folder_checkpoints_are_mmengines(work_dir):
    for named in ('s3://bucket/epoch_3.pth', str(work_dir)):
        (work_dir / 'last_checkpoint').write_text(named)
        assert resume_checkpoint(str(work_dir)) == (None, None)
