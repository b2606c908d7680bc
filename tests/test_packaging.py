import subprocess
import sys
import sysconfig
from pathlib import Path

import torch
from mmdet.registry import DATASETS

import frcnn_plugin


def sh(*args, **kwargs):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_the_stack_imports_and_the_dataset_is_registered(python):
    out = sh(python, '-c', 'import frcnn_plugin, mmdet, mmcv.ops, torchvision.ops; '
                           'from mmdet.registry import DATASETS; '
                           'print(DATASETS.get("KittiTinyDataset").__module__)', cwd='/')
    assert out.strip() == 'frcnn_plugin.datasets.kitti_tiny'
    assert DATASETS.get('KittiTinyDataset') is frcnn_plugin.KittiTinyDataset


def test_pip_install_editable(repo, tmp_path):
    """`pip install -e .` into a fresh venv that sees this environment's packages."""
    venv = tmp_path / 'venv'
    sh(sys._base_executable, '-m', 'venv', '--without-pip', venv)
    site = sh(venv / 'bin' / 'python', '-c',
              'import sysconfig; print(sysconfig.get_path("purelib"))').strip()
    deps = Path(torch.__file__).parents[1]  # where the stack is installed
    (Path(site) / 'deps.pth').write_text(f'import site; site.addsitedir({str(deps)!r})\n')
    sh(venv / 'bin' / 'python', '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
       '-e', repo)
    code = ('import frcnn_plugin, importlib.metadata as m; print(frcnn_plugin.__file__); '
            'print(m.version("frcnn_plugin")); print(*m.requires("frcnn_plugin"), sep="|")')
    origin, version, requires = sh(venv / 'bin' / 'python', '-c', code, cwd='/').split('\n')[:3]
    assert origin == str(repo / 'frcnn_plugin' / '__init__.py')
    assert version == frcnn_plugin.__version__
    # No mmcv among the requirements: pip would build compiled mmcv from its sdist.
    assert requires.split('|') == ['torch>=2.1', 'torchvision', 'mmengine<1.0,>=0.10',
                                   'mmdet<3.4,>=3.3', 'numpy',
                                   'mmcv-lite<2.2.0,>=2.0.0rc4; extra == "lite"',
                                   'mmcv<2.2.0,>=2.0.0rc4; extra == "compiled"',
                                   'onnx; extra == "export"',
                                   'onnxruntime; extra == "export"',
                                   'onnxscript; extra == "export"',
                                   'pytest; extra == "tests"',
                                   'pytest-xdist; extra == "tests"',
                                   'ruff; extra == "tests"']
    assert sysconfig.get_path('purelib') != site  # the test environment was not touched


def test_tools_take_mmdets_flags(repo, python):
    train = sh(python, repo / 'tools' / 'train.py', '--help')
    for flag in ('--work-dir', '--resume', '--amp', '--auto-scale-lr', '--cfg-options',
                 '--launcher'):
        assert flag in train
    test = sh(python, repo / 'tools' / 'test.py', '--help')
    for flag in ('checkpoint', '--out', '--show-dir', '--tta', '--cfg-options', '--launcher'):
        assert flag in test


def test_pip_check_finds_no_broken_requirement(python):
    """The environment's packages agree with each other's requirements, frcnn_plugin's
    included (it asks for no mmcv, which mmcv-lite would not satisfy)."""
    assert 'No broken requirements found' in sh(python, '-m', 'pip', 'check')
