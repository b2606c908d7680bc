"""Run mmdet's own command-line tools (``mmdet/.mim/tools/*.py``) unchanged.

Our ``tools/train.py`` and ``tools/test.py`` are these scripts, so they take
exactly mmdet's flags and behave as mmdet's; importing :mod:`frcnn_plugin` first is
what they add (our registries, and mmengine checkpoints readable under
torch >= 2.6, see :mod:`frcnn_plugin.checkpoint`), and, for ``--launcher pytorch`` on a
machine without CUDA, the CPU work-around of :mod:`frcnn_plugin.dist`.
"""
import os.path as osp
import runpy
import sys

from .dist import skip_cuda_pinning_for_cpu_launch


def mmdet_tool_path(name: str) -> str:
    """Path of mmdet's ``tools/<name>`` as installed with the mmdet package."""
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'mmdet {mmdet.__version__} at {osp.dirname(mmdet.__file__)} ships no '
            f'.mim/tools/{name}; install mmdet from its wheel (pip install mmdet)')
    return path


def run_mmdet_tool(name: str) -> None:
    """Run mmdet's ``tools/<name>`` as ``__main__`` with the current ``sys.argv``."""
    path = mmdet_tool_path(name)
    sys.argv[0] = path
    skip_cuda_pinning_for_cpu_launch(sys.argv[1:])
    runpy.run_path(path, run_name='__main__')
