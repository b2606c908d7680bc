"""frcnn_plugin.utils.pretrained: which downloads a config asks for, where they are cached, and
which cannot be fetched. No test needs the internet: an unreachable server is a closed
port on this machine, an answering one a local HTTP server."""
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from mmengine.config import Config

from frcnn_plugin.utils.pretrained import (
    drop_unfetchable_weights,
    source_url,
    unfetchable_weights,
    weight_sources,
)

VGG16_URL = 'https://download.pytorch.org/models/vgg16-397923af.pth'


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache: nothing downloaded yet."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    return tmp_path / 'torch'


@pytest.fixture
def closed_port():
    """A localhost port nothing listens on: connections to it are refused."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server():
    """A local HTTP server: 200 for paths under /ok/, 404 for the others."""
    class Answers(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200 if self.path.startswith('/ok/') else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(('127.0.0.1', 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def vgg16_config(checkpoint):
    return Config(dict(model=dict(type='FasterRCNN', backbone=dict(
        type='ScratchVGG16', init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))))


def test_the_configs_downloads(repo):
    kitti = Config.fromfile(repo / 'configs/frcnn_kitti_tiny.py')
    assert list(weight_sources(kitti)) == [('model.backbone.init_cfg', 'torchvision://vgg16')]
    baseline = Config.fromfile(repo / 'configs/baselines/faster-rcnn_r50_fpn_kitti_tiny.py')
    (key, source), backbone = weight_sources(baseline)
    assert key == 'load_from' and source.startswith('https://download.openmmlab.com/')
    assert backbone == ('model.backbone.init_cfg', 'torchvision://resnet50')
    # Inside lists (cascade heads) and init_cfg lists: the key drops the whole init_cfg.
    nested = Config(dict(model=dict(roi_head=dict(bbox_head=[
        dict(init_cfg=None), dict(init_cfg=[dict(type='Normal', std=0.01),
                                            dict(type='Pretrained', checkpoint='a.pth')])]))))
    assert list(weight_sources(nested)) == [('model.roi_head.bbox_head.1.init_cfg', 'a.pth')]


def test_source_urls():
    assert source_url('torchvision://vgg16') == VGG16_URL
    assert source_url('modelzoo://vgg16') == VGG16_URL
    assert source_url('open-mmlab://resnet50_caffe').startswith('https://download.openmmlab')
    assert source_url('http://example.org/w.pth') == 'http://example.org/w.pth'
    # Not downloads, or unknown names: mmengine reports them itself.
    for local in ('work_dirs/epoch_1.pth', '/abs/w.pth', 's3://bucket/w.pth',
                  'torchvision://no_such_model'):
        assert source_url(local) is None


def test_an_unreachable_source_is_reported_in_one_warning_line(torch_home, closed_port):
    url = f'http://127.0.0.1:{closed_port}/models/vgg16-test.pth'
    cfg = vgg16_config(url)
    [weights] = unfetchable_weights(cfg, timeout=2)
    assert (weights.key, weights.source, weights.url) == ('model.backbone.init_cfg', url, url)
    assert 'refused' in weights.reason
    warning = weights.warning()
    assert '\n' not in warning
    assert warning.startswith(
        'frcnn_plugin: warning: cannot fetch the pretrained weights of model.backbone.'
        f'init_cfg, {url}: ')
    assert 'starts from random initialisation instead, so expect a much lower mAP' in warning
    assert warning.endswith(
        f'put vgg16-test.pth in {torch_home}/hub/checkpoints/ or pass --cfg-options '
        'model.backbone.init_cfg.checkpoint=/path/to/vgg16-test.pth')


def test_a_cached_download_is_used_even_offline(torch_home, closed_port):
    cached = torch_home / 'hub/checkpoints/vgg16-test.pth'
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b'not even a checkpoint: mmengine reports that when it loads it')
    cfg = vgg16_config(f'http://127.0.0.1:{closed_port}/models/vgg16-test.pth')
    assert unfetchable_weights(cfg, timeout=2) == []


def test_reachable_sources_and_other_failures_are_left_to_mmengine(torch_home, http_server,
                                                                    tmp_path):
    """A server that answers (with the file, or with 404), a corrupt or missing local file:
    not offline problems; the config is left as it is, for mmengine to download the file
    or to fail loudly."""
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'garbage')
    for source in (f'{http_server}/ok/vgg16-test.pth', f'{http_server}/vgg16-test.pth',
                   str(corrupt), str(tmp_path / 'no.pth')):
        cfg = vgg16_config(source)
        assert drop_unfetchable_weights(cfg, timeout=2) == []
        assert cfg.model.backbone.init_cfg.checkpoint == source


def test_drop_sets_the_key_to_none_and_warns(torch_home, closed_port, capsys):
    url = f'http://127.0.0.1:{closed_port}/detector.pth'
    cfg = vgg16_config(f'http://127.0.0.1:{closed_port}/vgg16-test.pth')
    cfg.load_from = url
    assert drop_unfetchable_weights(cfg, timeout=2) == ['load_from', 'model.backbone.init_cfg']
    assert cfg.load_from is None and cfg.model.backbone.init_cfg is None
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f'frcnn_plugin: warning: cannot fetch the detector weights of '
                               f'load_from, {url}: ')
    assert 'the model starts from its init_cfg instead' in lines[0]
    assert lines[0].endswith('--cfg-options load_from=/path/to/detector.pth')
