"""Pretrained weights a config downloads, and whether they can be had: a machine without
internet trains from random initialisation with one warning line instead of stopping
at a ``URLError`` traceback from the download.

A config names downloads in two places: ``init_cfg=dict(type='Pretrained',
checkpoint=SOURCE)`` of any model part (the backbone's ImageNet weights) and
``load_from`` (a whole detector). A SOURCE is downloaded when it is a URL
(``http(s)://``) or a model-zoo name that mmengine maps to one (``torchvision://``,
``modelzoo://``, ``open-mmlab://``, ``openmmlab://``, ``mmcls://``), into torch's hub
cache (``<torch.hub.get_dir()>/checkpoints/<file name>``), unless it is already there.
Such a source is *unfetchable* when it is not in that cache and the server cannot be
reached (no route, no name resolution, a refused connection or a timeout). Every other
source is left to mmengine, which fails loudly as it always does: a local path (missing
or corrupt), an unknown model name, a server that answers with an HTTP error.
"""
import os.path as osp
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple
from urllib.parse import urlparse

# Seconds to wait for the server before calling a source unfetchable.
PROBE_TIMEOUT_S = 5.


@dataclass
class UnfetchableWeights:
    """A config's download that cannot be had: its config ``key`` (set to None to drop
    it), the ``source`` the config names, the ``url`` behind it and why it failed."""
    key: str
    source: str
    url: str
    reason: str

    @property
    def cache_file(self) -> str:
        return cached_file(self.url)

    def warning(self) -> str:
        """One line: what could not be fetched, what training does instead, what that
        means for accuracy, how to supply the file."""
        name = osp.basename(self.cache_file)
        via = '' if self.url == self.source else f' ({self.url})'
        if self.key == 'load_from':
            what, instead, option = ('the detector weights of load_from',
                                     'its init_cfg', 'load_from')
        else:
            what, instead, option = (f'the pretrained weights of {self.key}',
                                     'random initialisation', f'{self.key}.checkpoint')
        return (f'frcnn_plugin: warning: cannot fetch {what}, {self.source}{via}: '
                f'{self.reason}; the model starts from {instead} instead, so expect a much '
                f'lower mAP (it needs far more data and epochs; small sets such as KittiTiny '
                f'learn next to nothing); to use them, put {name} in '
                f'{osp.dirname(self.cache_file)}/ or pass --cfg-options {option}=/path/to/{name}')


def cached_file(url: str) -> str:
    """Where mmengine's ``load_from_http`` (torch.hub's ``load_state_dict_from_url``)
    keeps ``url``'s download."""
    import torch.hub
    return osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urlparse(url).path))


def source_url(source: str) -> Optional[str]:
    """The URL mmengine's ``CheckpointLoader`` downloads ``source`` from, or None when it
    does not download it (a local path, another storage backend, an unknown name)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    if source.startswith(('http://', 'https://')):
        return source
    zoos = {
        'torchvision://': mmengine_checkpoint.get_torchvision_models,
        'modelzoo://': mmengine_checkpoint.get_torchvision_models,
        'mmcls://': mmengine_checkpoint.get_mmcls_models,
        'open-mmlab://': mmengine_checkpoint.get_external_models,
        'openmmlab://': mmengine_checkpoint.get_external_models,
    }
    for prefix, models in zoos.items():
        if source.startswith(prefix):
            name = source[len(prefix):]
            if models is mmengine_checkpoint.get_external_models:
                name = mmengine_checkpoint.get_deprecated_model_names().get(name, name)
            url = models().get(name)
            return url if url and url.startswith(('http://', 'https://')) else None
    return None


def unreachable_reason(url: str, timeout: float = PROBE_TIMEOUT_S) -> Optional[str]:
    """Why ``url``'s server cannot be reached, or None when it answers at all (an HTTP
    error is an answer: the download then reports it)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method='HEAD'),
                                    timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as e:
        return str(e.reason)
    except OSError as e:  # timeouts, resets
        return str(e) or type(e).__name__


def weight_sources(cfg) -> Iterator[Tuple[str, str]]:
    """(config key, source) of ``load_from`` and of each ``Pretrained`` init_cfg in
    ``cfg.model``. The key is the one to set to None to drop the download:
    ``'load_from'`` or ``'model.backbone.init_cfg'`` (an init_cfg list holding a
    Pretrained entry is dropped as a whole)."""
    if isinstance(cfg.get('load_from'), str):
        yield 'load_from', cfg.load_from

    def walk(node, key):
        if isinstance(node, (list, tuple)):
            for i, item in enumerate(node):
                yield from walk(item, f'{key}.{i}')
        elif isinstance(node, dict):
            init_cfg = node.get('init_cfg')
            for entry in init_cfg if isinstance(init_cfg, list) else [init_cfg]:
                if (isinstance(entry, dict) and entry.get('type') == 'Pretrained'
                        and isinstance(entry.get('checkpoint'), str)):
                    yield f'{key}.init_cfg', entry['checkpoint']
            for name, value in node.items():
                if name != 'init_cfg':
                    yield from walk(value, f'{key}.{name}')

    yield from walk(cfg.get('model'), 'model')


def unfetchable_weights(cfg, timeout: float = PROBE_TIMEOUT_S) -> List[UnfetchableWeights]:
    """The downloads of ``cfg`` that are neither in torch's hub cache nor reachable."""
    found = []
    for key, source in weight_sources(cfg):
        url = source_url(source)
        if url is None or osp.isfile(cached_file(url)):
            continue
        reason = unreachable_reason(url, timeout)
        if reason is not None:
            found.append(UnfetchableWeights(key, source, url, reason))
    return found


def drop_unfetchable_weights(cfg, timeout: float = PROBE_TIMEOUT_S) -> List[str]:
    """Drop each unfetchable download of ``cfg`` (its key set to None) with its warning
    line on stderr; returns the keys dropped."""
    dropped = []
    for weights in unfetchable_weights(cfg, timeout):
        print(weights.warning(), file=sys.stderr, flush=True)
        cfg.merge_from_dict({weights.key: None})
        dropped.append(weights.key)
    return dropped
