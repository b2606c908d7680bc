"""tools/env_check.py: every tool, run by a python without torch and mmdet, prints one
line (what is missing, the command that fixes it) and exits 1, without a traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tools'))
import env_check  # noqa: E402

# Each tool with arguments it would accept.
TOOLS = {
    'train.py': ['configs/frcnn_voc.py'],
    'test.py': ['configs/frcnn_voc.py', 'epoch_1.pth'],
    'infer.py': ['configs/frcnn_voc.py', 'epoch_1.pth', 'a.jpg', '--out-dir', 'out'],
    'explain.py': ['configs/frcnn_voc.py', 'a.jpg', '--out-dir', 'out'],
    'benchmark.py': ['--quick'],
    'check_dataset.py': ['configs/frcnn_voc.py'],
    'train_alternating.py': ['configs/frcnn_voc.py', '--work-dir', 'out'],
}
STACK = 'torch, torchvision, mmengine, mmcv, mmdet'


@pytest.fixture(scope='module')
def bare_python(tmp_path_factory):
    """A fresh venv's python: the standard library and nothing else."""
    venv = tmp_path_factory.mktemp('bare') / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    return str(venv / 'bin' / 'python')


@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_a_tool_without_the_environment_says_so_in_one_line(tool, bare_python, repo):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    result = subprocess.run([bare_python, f'tools/{tool}', *TOOLS[tool]], cwd=repo, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ''
    assert result.stderr.count('\n') == 1, result.stderr
    assert result.stderr.startswith(
        f'frcnn_plugin: this python ({bare_python}) lacks {STACK}; run ')


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A checkout without .venv, the working directory."""
    monkeypatch.setattr(env_check, 'REPO', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_fix_depends_on_what_is_there(checkout, monkeypatch):
    lacks = f'frcnn_plugin: this python ({sys.executable}) lacks torch, mmdet; '
    assert env_check.missing_stack_message(['torch', 'mmdet']) == (
        lacks + "run 'make env && source .venv/bin/activate'")
    python = checkout / '.venv' / 'bin' / 'python'
    python.parent.mkdir(parents=True)
    python.write_text('')
    assert env_check.missing_stack_message(['torch', 'mmdet']) == (
        lacks + "run 'source .venv/bin/activate' or use .venv/bin/python")
    monkeypatch.setattr(sys, 'prefix', str(checkout / '.venv'))
    assert env_check.missing_stack_message(['torch', 'mmdet']) == (
        lacks + "run 'make env' (this checkout's .venv is incomplete)")


def test_from_another_folder_the_commands_name_the_checkout(checkout, monkeypatch):
    elsewhere = checkout / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert env_check.missing_stack_message(['torch']).endswith(
        f"run 'make -C {checkout} env && source {checkout}/.venv/bin/activate'")
