"""frcnn_plugin.utils.dataset_wrappers: one walk through dataset wrappers, for configs
(dict keys) and built datasets (attributes), with the same leaves in the same order."""
from types import SimpleNamespace

from mmengine.config import Config
from mmengine.dataset import BaseDataset, ConcatDataset, RepeatDataset

from frcnn_plugin.utils.dataset_wrappers import leaf_datasets, leaves


def leaf(name):
    return dict(type='CocoDataset', ann_file=f'{name}.json')


CONFIG = dict(type='ConcatDataset', datasets=[
    dict(type='RepeatDataset', times=2, dataset=leaf('a')),
    leaf('b'),
    dict(type='ClassBalancedDataset', oversample_thr=0.1, dataset=dict(
        type='ConcatDataset', datasets=[leaf('c'), leaf('d')]))])


def test_config_leaves_with_their_keys_in_order():
    cfg = Config(dict(train_dataloader=dict(dataset=CONFIG)))
    found = list(leaf_datasets(cfg.train_dataloader.dataset, 'train_dataloader.dataset'))
    assert [(key, d['ann_file']) for key, d in found] == [
        ('train_dataloader.dataset.datasets.0.dataset', 'a.json'),
        ('train_dataloader.dataset.datasets.1', 'b.json'),
        ('train_dataloader.dataset.datasets.2.dataset.datasets.0', 'c.json'),
        ('train_dataloader.dataset.datasets.2.dataset.datasets.1', 'd.json')]
    # The leaves are the config's own dicts: editing one edits the config.
    leaves(cfg.train_dataloader.dataset)[0].test_mode = True
    assert cfg.train_dataloader.dataset.datasets[0].dataset.test_mode is True
    plain = leaf('e')
    assert list(leaf_datasets(plain)) == [('dataset', plain)]


class Dataset(BaseDataset):
    """A plain dataset (neither ``dataset`` nor ``datasets``), never loaded."""

    def __init__(self, name):
        super().__init__(lazy_init=True)
        self.name = name


def test_built_wrappers_give_the_same_leaves():
    a, b, c = Dataset('a'), Dataset('b'), Dataset('c')
    # mmengine's wrappers as built (a ConcatDataset holds plain datasets only)...
    assert leaves(ConcatDataset([a, b], lazy_init=True)) == [a, b]
    assert leaves(RepeatDataset(c, times=3, lazy_init=True)) == [c]
    # ... and any nesting of objects holding ``datasets`` / ``dataset``, as the configs.
    built = SimpleNamespace(datasets=[SimpleNamespace(dataset=a), b,
                                      SimpleNamespace(dataset=SimpleNamespace(datasets=[c]))])
    assert [(key, leaf.name) for key, leaf in leaf_datasets(built)] == [
        ('dataset.datasets.0.dataset', 'a'), ('dataset.datasets.1', 'b'),
        ('dataset.datasets.2.dataset.datasets.0', 'c')]
