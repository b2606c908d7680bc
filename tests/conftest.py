import os
import sys
from pathlib import Path

import pytest
from mmdet.utils import register_all_modules

REPO = Path(__file__).resolve().parents[1]

# As mmdet's own tests: every mmdet module registered, 'mmdet' the default scope, so
# configs with bare type names (pipelines, oracles) build outside a runner.
register_all_modules()


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

