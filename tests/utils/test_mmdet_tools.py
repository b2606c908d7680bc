"""frcnn_plugin.utils.mmdet_tools: the checks before mmdet's train.py / test.py run, in this
process (each ends it with one line, before mmdet's tool starts)."""
import sys

import pytest

from frcnn_plugin.utils.mmdet_tools import run_mmdet_tool

TRAIN_VAL = ('train_dataloader', 'val_dataloader')


def run(monkeypatch, name, *argv, **checks):
    monkeypatch.setattr(sys, 'argv', [f'tools/{name}', *map(str, argv)])
    monkeypatch.setenv('LOCAL_RANK', '0')  # mmdet's parse_args sets it: undone after the test
    with pytest.raises(SystemExit) as stop:
        run_mmdet_tool(name, **checks)
    return stop.value.code


def test_a_missing_config(monkeypatch):
    assert run(monkeypatch, 'train.py', 'configs/frcnn_vco.py', loaders=TRAIN_VAL,
               downloads=True) == 'frcnn_plugin: config file configs/frcnn_vco.py not found'


def test_a_missing_checkpoint(monkeypatch, repo, kitti_tiny_root, tmp_path):
    config = repo / 'configs/frcnn_kitti_tiny.py'
    assert run(monkeypatch, 'test.py', config, tmp_path / 'epoch_12.pth', '--cfg-options',
               f'test_dataloader.dataset.data_root={kitti_tiny_root}/',
               loaders=('test_dataloader',)) == (
        f'frcnn_plugin: checkpoint {tmp_path}/epoch_12.pth not found')


def test_missing_data_comes_from_the_merged_config(monkeypatch, repo, tmp_path):
    config = repo / 'configs/frcnn_kitti_tiny.py'
    code = run(monkeypatch, 'train.py', config, '--cfg-options',
               f'train_dataloader.dataset.data_root={tmp_path}/kitti/', loaders=TRAIN_VAL)
    assert code.startswith(f'frcnn_plugin: {tmp_path}/kitti/ not found (train_dataloader.'
                           f'dataset.data_root of {config}); run ')


def test_dataset_errors_end_the_tool_without_a_traceback(monkeypatch, repo, tmp_path):
    """A defect found when the runner builds its data loader (here an inverted box) ends
    the process with the dataset's ``path:line:`` list, not a traceback via mmengine."""
    from voc_files import CLASSES, copy_recipe, write_voc
    root = write_voc(tmp_path / 'site')
    xml = root / 'Annotations' / 'frame_0004.xml'
    xml.write_bytes(xml.read_bytes().replace(b'<xmin>1</xmin>', b'<xmin>500</xmin>'))
    config = copy_recipe(repo / 'configs/examples/frcnn_custom_voc.py', tmp_path / 'mine.py', {
        "classes = ('cat', 'dog')": f'classes = {CLASSES}',
        "data_root = 'data/my_voc/'": f"data_root = '{root}/'"})
    checkpoint = tmp_path / 'epoch_1.pth'
    checkpoint.write_bytes(b'')  # only its existence is checked before the loader is built
    code = run(monkeypatch, 'test.py', config, checkpoint, '--work-dir', tmp_path / 'work',
               loaders=('test_dataloader', ))
    assert code == ('frcnn_plugin: the dataset has errors:\n'
                    f"{xml}:19: inverted box of 'forklift' (xmax < xmin or ymax < ymin): "
                    '[500, 1, 380, 420]')
