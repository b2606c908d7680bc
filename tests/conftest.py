import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from mmdet.utils import register_all_modules

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (`make test` runs one worker per core), each worker and the tools it
# runs compute with one thread: two-thread workers on two cores would contend for them.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'
    torch.set_num_threads(1)

# As mmdet's own tests: every mmdet module registered, 'mmdet' the default scope, so
# configs with bare type names (pipelines, oracles) build outside a runner.
register_all_modules()

def compiled_mmcv() -> bool:
    """Whether ``mmcv._ext`` is compiled mmcv's extension (not backend/mmcv_ext.py)."""
    return not importlib.util.find_spec('mmcv._ext').origin.endswith('.py')


# Markers whose tests are deselected (not skipped) where the environment cannot run them:
# marker -> (whether it can, why not).
ENVIRONMENT_MARKERS = {
    'cuda': (torch.cuda.is_available,
             'torch sees no CUDA device (tools/gpu_check.sh runs them on a GPU machine)'),
    'compiled_mmcv': (compiled_mmcv,
                      'mmcv-lite here, not compiled mmcv (MMCV_OPS=compiled make env)'),
    'lite_mmcv': (lambda: not compiled_mmcv(), 'compiled mmcv here, not mmcv-lite'),
}
# How many tests of each marker were deselected, for the summary.
DESELECTED = pytest.StashKey[dict]()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` (without a CUDA device), ``compiled_mmcv`` or ``lite_mmcv``
    (in the other environment) are deselected, not skipped: they are counted in pytest's
    "N deselected" (without xdist) and in a summary line (:func:`pytest_terminal_summary`),
    never reported as passed or skipped."""
    counts = {}
    for marker, (runs_here, _) in ENVIRONMENT_MARKERS.items():
        if runs_here():
            continue
        out = [item for item in items if item.get_closest_marker(marker)]
        if out:
            config.hook.pytest_deselected(items=out)
            items[:] = [item for item in items if not item.get_closest_marker(marker)]
        counts[marker] = len(out)
    config.stash[DESELECTED] = counts


def pytest_sessionfinish(session):
    """An xdist worker hands its counts to the controller, which prints the summary."""
    workeroutput = getattr(session.config, 'workeroutput', None)
    if workeroutput is not None:
        workeroutput['deselected'] = session.config.stash.get(DESELECTED, {})


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller (xdist): every worker collects every test, so any one's counts."""
    counts = node.config.stash.get(DESELECTED, {})
    for marker, count in getattr(node, 'workeroutput', {}).get('deselected', {}).items():
        counts[marker] = max(count, counts.get(marker, 0))
    node.config.stash[DESELECTED] = counts


def pytest_terminal_summary(terminalreporter, config):
    for marker, count in config.stash.get(DESELECTED, {}).items():
        if count:
            terminalreporter.write_line(f'{count} tests marked {marker} deselected: '
                                        f'{ENVIRONMENT_MARKERS[marker][1]}')


def find_kitti_tiny():
    """The prepared data/kitti_tiny (make test prepares it), else $KITTI_TINY_SRC."""
    for candidate in (REPO / 'data' / 'kitti_tiny', os.environ.get('KITTI_TINY_SRC')):
        if candidate and (Path(candidate) / 'train.txt').is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope='session')
def repo():
    return REPO


@pytest.fixture(scope='session')
def kitti_tiny_root():
    root = find_kitti_tiny()
    if root is None:
        pytest.fail('KittiTiny not found: run `make data` (tools/prepare_data.py kitti_tiny) '
                    'or set KITTI_TINY_SRC')
    return root


@pytest.fixture(scope='session')
def python():
    """The interpreter running the tests, for the tools' subprocesses."""
    return sys.executable

