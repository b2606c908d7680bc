"""tools/dist_train.sh and tools/dist_test.sh: torchrun + `--launcher pytorch`.

The launch itself is checked with a stand-in interpreter that records its arguments
(fast, exact); the real thing with 2 CPU processes (gloo, loopback) training and
testing a shrunken VGG16 model on 4 + 4 KittiTiny images.
"""
import os
import pickle
import re
import socket
import stat
import subprocess
import sys

import pytest
from kitti_small import write_small_config

FAKE_PYTHON = """#!/bin/sh
# The scripts' CUDA probe (`python -c ...`) exits $FAKE_CUDA_RC; any other call
# records its arguments, one per line.
if [ "$1" = "-c" ]; then exit "$FAKE_CUDA_RC"; fi
printf '%s\\n' "$@" > "$FAKE_ARGS"
"""

CPU_OPTIONS = ['--cfg-options', 'env_cfg.dist_cfg.backend=gloo',
               'model_wrapper_cfg.type=MMDistributedDataParallel',
               'model_wrapper_cfg.device_ids=None', 'model_wrapper_cfg.broadcast_buffers=False']


def launch(repo, script, args, tmp_path, cuda, **env):
    """Run a dist script with the fake interpreter; the arguments it got."""
    fake = tmp_path / 'python'
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    record = tmp_path / 'args.txt'
    full_env = {k: v for k, v in os.environ.items()
                if k not in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT')}
    full_env.update(env, PYTHON=str(fake), FAKE_ARGS=str(record),
                    FAKE_CUDA_RC='0' if cuda else '1')
    proc = subprocess.run([str(repo / 'tools' / script), *args], cwd=tmp_path,
                          env=full_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return record.read_text().splitlines()


def torchrun_args(nnodes, node_rank, addr, nproc, port):
    return ['-m', 'torch.distributed.run', f'--nnodes={nnodes}', f'--node_rank={node_rank}',
            f'--master_addr={addr}', f'--nproc_per_node={nproc}', f'--master_port={port}']


def test_dist_train_passes_the_environment_to_torchrun(repo, tmp_path):
    args = launch(repo, 'dist_train.sh', ['my.py', '4', '--work-dir', 'w d', '--amp'],
                  tmp_path, cuda=True, NNODES='3', NODE_RANK='1', MASTER_ADDR='10.1.2.3',
                  PORT='12345')
    assert args == [*torchrun_args(3, 1, '10.1.2.3', 4, 12345), str(repo / 'tools/train.py'),
                    'my.py', '--launcher', 'pytorch', '--work-dir', 'w d', '--amp']


def test_dist_test_defaults_as_mmdet_and_cpu_options(repo, tmp_path):
    # mmdet's defaults; without CUDA the CPU options come before the user's, which win.
    args = launch(repo, 'dist_test.sh', ['my.py', 'e.pth', '2', '--cfg-options', 'a=1'],
                  tmp_path, cuda=False)
    assert args == [*torchrun_args(1, 0, '127.0.0.1', 2, 29500), str(repo / 'tools/test.py'),
                    'my.py', 'e.pth', '--launcher', 'pytorch', *CPU_OPTIONS,
                    '--cfg-options', 'a=1']


@pytest.mark.parametrize('script,nargs', [('dist_train.sh', 1), ('dist_test.sh', 2)])
def test_missing_arguments_print_usage(repo, script, nargs):
    proc = subprocess.run([str(repo / 'tools' / script), *['x'] * nargs],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert f'tools/{script} CONFIG' in proc.stderr


def test_mmengine_pytorch_launcher_initialises_without_cuda(monkeypatch):
    """mmengine's `--launcher pytorch` set-up as our tools run it: a 1-process gloo group
    on the CPU (mmengine alone pins a GPU first and fails). Importing frcnn_plugin
    changes nothing in mmengine; the tools' call does, only for that launcher, only
    without CUDA."""
    import torch
    import torch.distributed as dist
    from mmengine.dist import init_dist
    from mmengine.dist import utils as dist_utils

    import frcnn_plugin  # noqa: F401
    from frcnn_plugin.utils.dist import skip_cuda_pinning_for_cpu_launch
    unpatched = dist_utils._init_dist_pytorch
    assert not hasattr(unpatched, 'skips_cuda_pinning')
    monkeypatch.setattr(dist_utils, '_init_dist_pytorch', unpatched)  # restored afterwards
    for argv in (['cfg.py'], ['cfg.py', '--launcher', 'none'], ['--launcher', 'slurm']):
        assert not skip_cuda_pinning_for_cpu_launch(argv)
        assert dist_utils._init_dist_pytorch is unpatched
    cpu_only = not torch.cuda.is_available()
    assert skip_cuda_pinning_for_cpu_launch(['cfg.py', '--launcher=pytorch']) == cpu_only
    assert (dist_utils._init_dist_pytorch is not unpatched) == cpu_only
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
    init_dist('pytorch', backend='gloo')
    try:
        assert dist.get_world_size() == 1 and dist.get_backend() == 'gloo'
    finally:
        dist.destroy_process_group()


def one_process_group_env(monkeypatch):
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)


def gloo_threads():
    """The names of this process's gloo threads (a group's worker and transport threads)."""
    tasks = os.listdir('/proc/self/task')
    names = []
    for task in tasks:
        try:
            with open(f'/proc/self/task/{task}/comm') as f:
                names.append(f.read().strip())
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return sorted(name for name in names if 'gloo' in name)


# As mmdet's tools under a launcher: the runner initialises the group, wraps the model in
# DDP and ends in reference cycles that still hold the wrapper (and so the group).
FAKE_TOOL = """import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

def main():
    if not dist.is_initialized():
        dist.init_process_group('gloo')
    runner = dict(model=DistributedDataParallel(torch.nn.Linear(2, 2)))
    runner['self'] = runner
    runner['model'](torch.ones(1, 2)).sum().backward()
    dist.barrier()

main()
"""


def test_the_tools_destroy_the_process_group_their_runner_initialised(monkeypatch, tmp_path):
    """mmengine's runner initialises the default group and never destroys it; left to
    interpreter shutdown, a gloo worker thread releasing its last work can need the GIL
    while Python finalises and abort the process ("terminate called without an active
    exception") after the tool succeeded. run_mmdet_tool destroys the group the tool
    started once it has returned, and with it the group's threads; a group that already
    existed it leaves alone."""
    import torch.distributed as dist

    from frcnn_plugin.utils import mmdet_tools
    tool = tmp_path / 'tool.py'
    tool.write_text(FAKE_TOOL)
    monkeypatch.setattr(mmdet_tools, 'mmdet_tool_path', lambda name: str(tool))
    monkeypatch.setattr(sys, 'argv', ['tools/test.py'])
    one_process_group_env(monkeypatch)
    threads = gloo_threads()
    mmdet_tools.run_mmdet_tool('test.py')
    assert not dist.is_initialized()
    assert gloo_threads() == threads  # joined, not left running until exit

    dist.init_process_group('gloo')
    try:
        mmdet_tools.run_mmdet_tool('test.py')
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def test_a_failing_tool_keeps_its_process_group(monkeypatch):
    """When the tool raises, the process is failing already: the group is not torn down
    (its peers may be gone) and the error propagates unchanged."""
    import torch.distributed as dist

    from frcnn_plugin.utils.dist import destroy_process_group_started_by
    one_process_group_env(monkeypatch)

    def failing():
        dist.init_process_group('gloo')
        raise RuntimeError('the tool failed')

    try:
        with pytest.raises(RuntimeError, match='the tool failed'):
            destroy_process_group_started_by(failing)
        assert dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


# frcnn_kitti_tiny.py at 400 x 160: no download (random initialisation); fc6 / fc7 of 256
# instead of 4096 keep the gradients gloo all-reduces and the checkpoints small.
OVERRIDES = """
model = dict(backbone=dict(init_cfg=None),
             roi_head=dict(bbox_head=dict(fc_out_channels=256)))
train_cfg = dict(max_epochs=2, val_interval=2)
"""
VAL_IDS = ['000050', '000051', '000068', '000069']


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_dist(repo, python, script, *args):
    env = dict(os.environ, PYTHON=python, NNODES='1', NODE_RANK='0',
               MASTER_ADDR='127.0.0.1', PORT=str(free_port()))
    proc = subprocess.run([str(repo / 'tools' / script), *map(str, args)], cwd=repo, env=env,
                          capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    # torchrun exits 0 only when every process did.
    assert proc.returncode == 0, log[-8000:]
    return log


@pytest.mark.slow
def test_two_cpu_processes_train_and_test(repo, kitti_tiny_root, python, tmp_path):
    """2 processes x batch 2 over 4 train images: 1 iteration per epoch, 2 epochs (the
    second step would fail under DDP if a trainable parameter got no gradient); 4 val
    images, 2 per process."""
    config = write_small_config(
        tmp_path / 'small.py', repo / 'configs/frcnn_kitti_tiny.py', kitti_tiny_root,
        ['000000', '000001', '000002', '000003'], VAL_IDS, scale=(400, 160),
        overrides=OVERRIDES)
    work_dir = tmp_path / 'work'

    log = run_dist(repo, python, 'dist_train.sh', config, 2, '--work-dir', work_dir,
                   '--auto-scale-lr')
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log
    # Total batch 2 x 2 = 4 against the config's base_batch_size=2.
    assert 'the current batch size is 4. Scaling the original LR by 2.0' in log
    assert re.search(r'Epoch\(train\) \[2\]\[1/1\].*loss: \d', log)
    # Only rank 0 writes checkpoints: one per epoch.
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['epoch_1.pth', 'epoch_2.pth']
    assert len(re.findall(r'pascal_voc/mAP: \d', log)) == 1
    assert re.search(r'Epoch\(val\) \[2\]\[2/2\]', log)  # 2 of the 4 images on each rank

    out = tmp_path / 'results.pkl'
    log = run_dist(repo, python, 'dist_test.sh', config, work_dir / 'epoch_2.pth', 2,
                   '--work-dir', tmp_path / 'test', '--out', out)
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log
    assert re.search(r'Epoch\(test\) \[2/2\]', log)
    assert len(re.findall(r'pascal_voc/mAP: \d', log)) == 1
    # The metric and the dump gathered every rank's images: all 4, once each.
    cars = sum(line.startswith('Car ') for i in VAL_IDS for line in
               (kitti_tiny_root / 'training' / 'label_2' / f'{i}.txt').read_text().splitlines())
    assert re.search(rf'\| Car +\| {cars} ', log)  # every image has cars: 2 would count fewer
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert sorted(r['img_id'] for r in results) == VAL_IDS
