"""Is a config's data on disk? One line naming the first missing path and the command
that provides it, checked before a runner builds the datasets (where the same mistake is
a ``FileNotFoundError`` traceback from deep inside mmengine or mmdet).

A dataset config reaches its files as mmengine's ``BaseDataset`` joins them:
``data_root``, then ``data_prefix`` values and ``ann_file``, each under ``data_root``
unless absolute. Wrappers are walked: ``ConcatDataset.datasets``,
``RepeatDataset.dataset`` (and every other wrapper that holds ``dataset``).
"""
import os.path as osp
from typing import Iterator, List, Optional, Tuple

from .dataset_wrappers import leaf_datasets

# Where tools/prepare_data.py puts each dataset by default (its --out).
KITTI_TINY_ROOT = 'data/kitti_tiny'
VOC_ROOT = 'data/VOCdevkit'
SHAPES_ROOT = 'data/shapes'
# The README section that shows how to lay out and configure your own data.
CUSTOM_DATA_RECIPE = "the README's custom-data recipe ('Fine-tuning on your own data')"


def dataset_paths(dataset: dict) -> Iterator[Tuple[str, str]]:
    """(field, path) of the files and folders a dataset config reads, ``data_root`` first,
    joined as ``BaseDataset`` joins them. URLs and other storage backends are skipped."""
    root = dataset.get('data_root') or ''
    paths = [('data_root', root)] if root else []
    for name, prefix in sorted((dataset.get('data_prefix') or {}).items()):
        if isinstance(prefix, str) and prefix:
            paths.append((f'data_prefix.{name}', prefix))
    if isinstance(dataset.get('ann_file'), str) and dataset['ann_file']:
        paths.append(('ann_file', dataset['ann_file']))
    for field, path in paths:
        if '://' in path:
            continue
        yield field, path if field == 'data_root' or osp.isabs(path) else osp.join(root, path)


def same_folder(a: str, b: str) -> bool:
    return osp.abspath(a) == osp.abspath(b)


def voc_year(dataset: dict) -> Optional[str]:
    """'2007' for a dataset under ``VOC2007/`` (mmdet's VOC configs), else None."""
    sub_root = osp.normpath((dataset.get('data_prefix') or {}).get('sub_data_root') or '.')
    name = osp.basename(sub_root)
    return name[3:] if name.startswith('VOC') and name[3:].isdigit() else None


def prepare_command(dataset: dict, datasets: List[dict]) -> str:
    """How to get ``dataset``'s data: a tools/prepare_data.py command, else the recipe.
    ``datasets``: every dataset config checked, for the VOC years the config needs."""
    root = dataset.get('data_root') or ''
    if same_folder(root, SHAPES_ROOT):
        return "run 'python tools/prepare_data.py shapes'"
    if dataset.get('type') == 'KittiTinyDataset' or same_folder(root, KITTI_TINY_ROOT):
        out = '' if same_folder(root, KITTI_TINY_ROOT) else f' --out {root}'
        return (f"run 'python tools/prepare_data.py kitti_tiny{out}' (from $KITTI_TINY_SRC, "
                'else a download; --src DIR_OR_ZIP for a copy you have)')
    if voc_year(dataset):
        years = sorted({voc_year(d) for d in datasets
                        if voc_year(d) and same_folder(d.get('data_root') or '', root)})
        out = '' if same_folder(root, VOC_ROOT) else f' --out {root}'
        return (f"run 'python tools/prepare_data.py voc --years {' '.join(years)}{out}' "
                '(a download; --src VOCDEVKIT links a copy you have)')
    return f'put your data there or set the path with --cfg-options: see {CUSTOM_DATA_RECIPE}'


def missing_data_message(cfg, loaders, config_name: str) -> Optional[str]:
    """One line for the first path that the datasets of ``loaders`` (config keys such as
    ``'train_dataloader'``; unset ones are skipped) read and that does not exist."""
    leaves = []
    for loader in loaders:
        if cfg.get(loader) and cfg[loader].get('dataset'):
            leaves += leaf_datasets(cfg[loader]['dataset'], f'{loader}.dataset')
    for key, dataset in leaves:
        for field, path in dataset_paths(dataset):
            if not osp.exists(path):
                return (f'frcnn_plugin: {path} not found ({key}.{field} of {config_name}); '
                        f'{prepare_command(dataset, [d for _, d in leaves])}')
    return None
