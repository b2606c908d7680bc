"""The first import of every tool: run by a python without the environment, a tool says
so in one line (what is missing, the command that fixes it) instead of a traceback.

``python tools/x.py`` puts ``tools/`` first on ``sys.path``, so each tool imports this
module before torch, mmdet or frcnn_plugin. Standard library only.
"""
import importlib.util
import os
import os.path as osp
import sys

# The packages the tools import (requirements/lock.txt: mmcv as mmcv-lite, or compiled mmcv).
STACK = ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet')
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def shown(path: str) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    relative = osp.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def missing_stack_message(missing) -> str:
    """The one line for a python that lacks the packages ``missing``."""
    venv = osp.join(REPO, '.venv')
    activate = f'source {shown(osp.join(venv, "bin", "activate"))}'
    make_env = 'make env' if osp.samefile(os.getcwd(), REPO) else f'make -C {REPO} env'
    if osp.realpath(sys.prefix) == osp.realpath(venv):
        fix = f"run '{make_env}' (this checkout's .venv is incomplete)"
    elif osp.isfile(osp.join(venv, 'bin', 'python')):
        fix = f"run '{activate}' or use {shown(osp.join(venv, 'bin', 'python'))}"
    else:
        fix = f"run '{make_env} && {activate}'"
    return (f'frcnn_plugin: this python ({sys.executable}) lacks {", ".join(missing)}; '
            f'{fix}')


def require_environment() -> None:
    """Exit (status 1) with one line on stderr unless every package of STACK is installed."""
    missing = [name for name in STACK if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(missing_stack_message(missing))
