"""tools/gpu_check.sh as far as a machine without a GPU can check it: why mmcv with CPU
ops is enough there (an all-Scratch detector calls none of mmcv's compiled kernels), and
that the script refuses to start without a GPU."""
import copy
import subprocess
import sys

import mmcv.ops
import pytest
import torch
from detector_parity import all_scratch_r50_fpn, detector_batch


class KernelRecorder:
    """Stands in for an mmcv.ops module's compiled ``ext_module``: records each kernel
    looked up, then hands out the real one."""

    def __init__(self, ext_module, calls):
        self._ext_module, self._calls = ext_module, calls

    def __getattr__(self, name):
        self._calls.append(name)
        return getattr(self._ext_module, name)


@pytest.fixture
def mmcv_kernel_calls(monkeypatch):
    calls = []
    for name, module in list(sys.modules.items()):
        if name.startswith('mmcv.ops.') and hasattr(module, 'ext_module'):
            monkeypatch.setattr(module, 'ext_module', KernelRecorder(module.ext_module, calls))
    return calls


@pytest.mark.slow
def test_all_scratch_detector_calls_no_mmcv_kernel(repo, mmcv_kernel_calls):
    """A training step and a prediction of the all-Scratch R50-FPN detector; mmdet's own
    NMS (the control) is seen calling its kernel."""
    model, optim = all_scratch_r50_fpn(repo)
    batch = detector_batch()
    model.train_step(copy.deepcopy(batch), optim)
    model.eval()
    with torch.no_grad():
        assert len(model.test_step(copy.deepcopy(batch))) == 2
    assert mmcv_kernel_calls == []
    mmcv.ops.nms(torch.tensor([[0., 0., 1., 1.]]), torch.tensor([1.]), 0.5)
    assert mmcv_kernel_calls == ['nms']


def test_refuses_to_start_without_a_gpu(repo, tmp_path):
    """Where nvidia-smi finds no GPU it stops before setting anything up."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'nvidia-smi').write_text('#!/bin/sh\necho "No devices were found" >&2\nexit 6\n')
    (bin_dir / 'nvidia-smi').chmod(0o755)
    proc = subprocess.run(['bash', 'tools/gpu_check.sh', str(tmp_path / 'work')], cwd=repo,
                          capture_output=True, text=True,
                          env={'PATH': f'{bin_dir}:/usr/bin:/bin'})
    if proc.returncode != 2:
        pytest.fail(f'expected exit status 2 without a GPU, got {proc.returncode}: '
                    f'{proc.stdout[-2000:]}{proc.stderr[-2000:]}')
    assert 'no NVIDIA GPU here' in proc.stderr
    assert not (tmp_path / 'work' / 'setup.log').exists()
