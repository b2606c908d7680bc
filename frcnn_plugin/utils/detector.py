"""A config's detector, built and loaded for the tools that run it outside a runner
(``tools/infer.py``, ``tools/explain.py``, ``tools/diagnose.py``): one way for all
three, so they see the same model with the same class names.
"""
import os.path as osp
from typing import Optional

from .dataset_wrappers import leaves

#: The dataloaders whose dataset names a config's classes, in the order looked at.
LOADERS = ('test_dataloader', 'val_dataloader', 'train_dataloader')


def config_dataset_meta(cfg) -> dict:
    """The metainfo (``classes``, ``palette``, ...) of the config's test dataset (else
    its val or train dataset; the first dataset inside wrappers), merged as mmengine's
    ``BaseDataset`` merges it: the dataset class's ``METAINFO`` updated by the config's
    ``metainfo``. Nothing is built or read. ``{}`` without a dataset."""
    from mmdet.registry import DATASETS
    for loader in LOADERS:
        if cfg.get(loader) and cfg[loader].get('dataset'):
            dataset = leaves(cfg[loader]['dataset'])[0]
            break
    else:
        return {}
    dataset_type = dataset.get('type')
    cls = dataset_type if isinstance(dataset_type, type) else DATASETS.get(dataset_type)
    meta = dict(getattr(cls, 'METAINFO', None) or {})
    meta.update(dataset.get('metainfo') or {})
    return meta


def checkpoint_dataset_meta(checkpoint_meta: Optional[dict]) -> dict:
    """The dataset metainfo a checkpoint's ``meta`` holds: ``dataset_meta`` (mmengine's
    runner saves it; keys lowercased, as mmdet 3.x reads them) or an mmdet 2.x
    ``CLASSES``; ``{}`` if neither."""
    meta = checkpoint_meta or {}
    if meta.get('dataset_meta'):
        return {key.lower(): value for key, value in meta['dataset_meta'].items()}
    if meta.get('CLASSES'):
        return dict(classes=tuple(meta['CLASSES']))
    return {}


def load_detector(cfg, checkpoint: Optional[str] = None, device: str = 'cpu'):
    """The detector of ``cfg`` (an mmengine ``Config``) in eval mode on ``device``.

    With ``checkpoint`` (a file, or a URL mmengine downloads) its weights are loaded and
    the backbone's pretrained ``init_cfg`` is not fetched; a missing file is a
    ``FileNotFoundError`` with one line. Without, the model gets the config's own init
    (``init_weights``), its pretrained weights dropped with a warning line when they
    cannot be fetched (:mod:`.pretrained`).

    ``model.dataset_meta``: ``classes`` from the checkpoint's meta, else from the
    config's test dataset (:func:`config_dataset_meta`); ``palette`` from the config,
    else the checkpoint, else ``'random'`` (as mmdet's ``init_detector``). ``model.cfg``
    is ``cfg`` (mmdet's ``inference_detector`` reads it). The default scope is set to
    the config's.
    """
    from mmdet.registry import MODELS
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from .pretrained import drop_unfetchable_weights

    if checkpoint and '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if checkpoint:
        if cfg.model.get('backbone') and 'init_cfg' in cfg.model.backbone:
            cfg.model.backbone.init_cfg = None  # the checkpoint has the weights
    else:
        drop_unfetchable_weights(cfg)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    configured = config_dataset_meta(cfg)
    if checkpoint:
        loaded = load_checkpoint(model, checkpoint, map_location='cpu')
        meta = checkpoint_dataset_meta(loaded.get('meta'))
    else:
        model.init_weights()
        meta = {}
    if not meta.get('classes'):
        meta = dict(meta, classes=tuple(configured.get('classes') or ()))
    if not meta['classes']:
        raise ValueError('no class names: neither the checkpoint\'s meta nor the config\'s '
                         'datasets name them')
    meta['palette'] = configured.get('palette') or meta.get('palette') or 'random'
    model.dataset_meta = meta
    model.cfg = cfg
    return model.to(device).eval()
