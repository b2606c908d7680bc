"""frcnn_plugin.utils.missing_data: the first missing path of a config's datasets, and the
command that provides it, for the configs a user runs, in an empty working directory."""
import pytest
from mmengine.config import Config

from frcnn_plugin.utils.missing_data import missing_data_message

TRAIN_VAL = ('train_dataloader', 'val_dataloader')
PREPARE_VOC = "run 'python tools/prepare_data.py voc --years {}' " \
              '(a download; --src VOCDEVKIT links a copy you have)'
PREPARE_KITTI = "run 'python tools/prepare_data.py kitti_tiny{}' (from $KITTI_TINY_SRC, " \
                'else a download; --src DIR_OR_ZIP for a copy you have)'


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    """The configs' relative data paths resolve here, where nothing exists yet."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def config(repo, name, **options):
    cfg = Config.fromfile(repo / name)
    cfg.merge_from_dict(options)
    return cfg


def touch(root, *files):
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('')


def test_voc07_names_the_data_root_and_the_voc_command(repo, empty_cwd):
    message = missing_data_message(config(repo, 'configs/frcnn_voc.py'), TRAIN_VAL,
                                   'configs/frcnn_voc.py')
    assert message == ('frcnn_plugin: data/VOCdevkit/ not found (train_dataloader.dataset.'
                       'data_root of configs/frcnn_voc.py); ' + PREPARE_VOC.format('2007'))


def test_voc0712_names_the_missing_year_inside_the_concat_dataset(repo, empty_cwd):
    cfg = config(repo, 'configs/frcnn_voc0712.py')
    message = missing_data_message(cfg, TRAIN_VAL, 'voc0712.py')
    assert message == ('frcnn_plugin: data/VOCdevkit/ not found (train_dataloader.dataset.'
                       'datasets.0.data_root of voc0712.py); '
                       + PREPARE_VOC.format('2007 2012'))
    touch(empty_cwd / 'data/VOCdevkit/VOC2007', 'ImageSets/Main/trainval.txt',
          'ImageSets/Main/test.txt')
    message = missing_data_message(cfg, TRAIN_VAL, 'voc0712.py')
    assert message.startswith('frcnn_plugin: data/VOCdevkit/VOC2012/ not found (train_'
                              'dataloader.dataset.datasets.1.data_prefix.sub_data_root of ')
    touch(empty_cwd / 'data/VOCdevkit/VOC2012', 'ImageSets/Main/trainval.txt')
    assert missing_data_message(cfg, TRAIN_VAL, 'voc0712.py') is None


def test_an_annotation_file_is_named_when_its_folder_exists(repo, empty_cwd):
    (empty_cwd / 'data/VOCdevkit/VOC2007').mkdir(parents=True)
    message = missing_data_message(config(repo, 'configs/frcnn_voc.py'), TRAIN_VAL, 'voc.py')
    assert message.startswith('frcnn_plugin: data/VOCdevkit/VOC2007/ImageSets/Main/'
                              'trainval.txt not found (train_dataloader.dataset.ann_file of ')


def test_kitti_tiny_default_and_other_roots(repo, empty_cwd):
    cfg = config(repo, 'configs/frcnn_kitti_tiny.py')
    assert missing_data_message(cfg, TRAIN_VAL, 'kitti.py') == (
        'frcnn_plugin: data/kitti_tiny/ not found (train_dataloader.dataset.data_root of '
        'kitti.py); ' + PREPARE_KITTI.format(''))
    touch(empty_cwd / 'data/kitti_tiny', 'train.txt', 'val.txt', 'training/image_2/0.jpeg')
    assert missing_data_message(cfg, TRAIN_VAL, 'kitti.py') is None
    # Test data only: the train set's absence does not matter to tools/test.py.
    moved = config(repo, 'configs/frcnn_kitti_tiny.py',
                   **{'train_dataloader.dataset.data_root': '/nowhere/kitti/',
                      'test_dataloader.dataset.data_root': 'data/kitti_tiny/'})
    assert missing_data_message(moved, ('test_dataloader',), 'kitti.py') is None
    assert missing_data_message(moved, TRAIN_VAL, 'kitti.py') == (
        'frcnn_plugin: /nowhere/kitti/ not found (train_dataloader.dataset.data_root of '
        'kitti.py); ' + PREPARE_KITTI.format(' --out /nowhere/kitti/'))


def test_shapes_and_custom_data(repo, empty_cwd):
    shapes = config(repo, 'configs/examples/frcnn_custom_voc.py',
                    **{f'{loader}.dataset.data_root': 'data/shapes/' for loader in TRAIN_VAL})
    assert missing_data_message(shapes, TRAIN_VAL, 'shapes.py') == (
        'frcnn_plugin: data/shapes/ not found (train_dataloader.dataset.data_root of '
        "shapes.py); run 'python tools/prepare_data.py shapes'")
    custom = config(repo, 'configs/examples/frcnn_custom_voc.py')
    assert missing_data_message(custom, TRAIN_VAL, 'custom.py') == (
        'frcnn_plugin: data/my_voc/ not found (train_dataloader.dataset.data_root of '
        'custom.py); put your data there or set the path with --cfg-options: see the '
        "README's custom-data recipe ('Fine-tuning on your own data')")


def test_wrappers_unset_loaders_absolute_paths_and_urls(empty_cwd):
    touch(empty_cwd, 'root/ids.txt')
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='RepeatDataset', times=3, dataset=dict(
            type='CocoDataset', data_root='root/', ann_file='ids.txt',
            data_prefix=dict(img=f'{empty_cwd}/images/', seg='s3://bucket/seg/')))),
        val_dataloader=None))
    assert missing_data_message(cfg, TRAIN_VAL, 'c.py').startswith(
        f'frcnn_plugin: {empty_cwd}/images/ not found (train_dataloader.dataset.dataset.'
        'data_prefix.img of c.py); put your data there')
    (empty_cwd / 'images').mkdir()
    assert missing_data_message(cfg, TRAIN_VAL, 'c.py') is None
