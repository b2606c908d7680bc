"""The datasets inside dataset wrappers, for configs and built datasets alike.

mmengine's and mmdet's wrappers hold their datasets in one of two fields:
``datasets`` (a list: ``ConcatDataset``) or ``dataset`` (one: ``RepeatDataset``,
``ClassBalancedDataset`` and every other wrapper of one dataset). A config names them
as dict keys, a built wrapper as attributes; :func:`leaf_datasets` walks both, so
every tool that looks for "the datasets that read files" finds the same ones.
"""
from typing import Any, Iterator, List, Tuple


def inner(dataset: Any, name: str) -> Any:
    """``dataset``'s ``name`` field: a key of a config (dict), else an attribute."""
    if isinstance(dataset, dict):
        return dataset.get(name)
    return getattr(dataset, name, None)


def leaf_datasets(dataset: Any, key: str = 'dataset') -> Iterator[Tuple[str, Any]]:
    """``(config key, leaf)`` of each dataset that reads files, through wrappers, in
    order: ``key`` is where the leaf sits under ``dataset`` (e.g.
    ``'dataset.datasets.1.dataset'``). ``dataset`` a config dict or a built dataset;
    the leaves are the same objects, so a config leaf can be edited in place."""
    datasets = inner(dataset, 'datasets')
    if datasets is not None:
        for i, each in enumerate(datasets):
            yield from leaf_datasets(each, f'{key}.datasets.{i}')
        return
    wrapped = inner(dataset, 'dataset')
    if wrapped is not None:
        yield from leaf_datasets(wrapped, f'{key}.dataset')
    else:
        yield key, dataset


def leaves(dataset: Any) -> List[Any]:
    """The leaves of :func:`leaf_datasets`, without their keys."""
    return [leaf for _, leaf in leaf_datasets(dataset)]
