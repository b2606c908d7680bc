"""Run mmdet's own command-line tools (``mmdet/.mim/tools/*.py``) unchanged.

Our ``tools/train.py`` and ``tools/test.py`` are these scripts, so they take
exactly mmdet's flags and behave as mmdet's; importing :mod:`frcnn_plugin` first is
what they add (our registries, and mmengine checkpoints readable under
torch >= 2.6, see :mod:`frcnn_plugin.checkpoint`).
"""
import os.path as osp
import runpy
import sys
from typing import List


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
    runpy.run_path(path, run_name='__main__')


def amp_argv(argv: List[str]) -> List[str]:
    """mmdet's ``train.py`` arguments with ``--amp`` made to work without a GPU.

    mmdet turns ``--amp`` into ``optim_wrapper.type='AmpOptimWrapper'``, which
    refuses to start on a CPU-only machine. There, ``--amp`` becomes
    ``--cfg-options optim_wrapper.type=ScratchAmpOptimWrapper`` (bfloat16 autocast on
    the CPU, :mod:`frcnn_plugin.amp_optim_wrapper`), given last so that it wins as
    ``--amp`` does, and one line says so. With a GPU, ``argv`` is returned as it is.
    """
    from .amp_optim_wrapper import accelerator_available
    if '--amp' not in argv or accelerator_available():
        return argv
    print('tools/train.py: --amp without a GPU: training with '
          'optim_wrapper.type=ScratchAmpOptimWrapper (bfloat16 autocast on the CPU)',
          file=sys.stderr)
    return ([arg for arg in argv if arg != '--amp']
            + ['--cfg-options', 'optim_wrapper.type=ScratchAmpOptimWrapper',
               'optim_wrapper.loss_scale=dynamic'])
