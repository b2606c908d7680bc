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

# How many tests marked ``cuda`` were deselected, for the summary.
CUDA_DESELECTED = pytest.StashKey[int]()


def pytest_collection_modifyitems(config, items):
    """Without a CUDA device, tests marked ``cuda`` are deselected, not skipped: they
    are counted in pytest's "N deselected" (without xdist) and in a summary line
    (:func:`pytest_terminal_summary`), never reported as passed or skipped."""
    if torch.cuda.is_available():
        return
    cuda = [item for item in items if item.get_closest_marker('cuda')]
    if cuda:
        config.hook.pytest_deselected(items=cuda)
        items[:] = [item for item in items if not item.get_closest_marker('cuda')]
    config.stash[CUDA_DESELECTED] = len(cuda)


def pytest_sessionfinish(session):
    """An xdist worker hands its count to the controller, which prints the summary."""
    workeroutput = getattr(session.config, 'workeroutput', None)
    if workeroutput is not None:
        workeroutput['cuda_deselected'] = session.config.stash.get(CUDA_DESELECTED, 0)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller (xdist): every worker collects every test, so any one's count."""
    deselected = getattr(node, 'workeroutput', {}).get('cuda_deselected', 0)
    node.config.stash[CUDA_DESELECTED] = max(deselected,
                                             node.config.stash.get(CUDA_DESELECTED, 0))


def pytest_terminal_summary(terminalreporter, config):
    deselected = config.stash.get(CUDA_DESELECTED, 0)
    if deselected:
        terminalreporter.write_line(
            f'{deselected} tests marked cuda deselected: torch sees no CUDA device '
            '(tools/gpu_check.sh runs them on a GPU machine)')


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

