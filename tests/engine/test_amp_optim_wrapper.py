"""ScratchAmpOptimWrapper on a CPU-only machine (bfloat16 autocast, no loss scaler) and
tools/train.py's --amp made to use it there."""
import copy

import pytest
import torch
from detector_parity import detector_batch
from mmdet.registry import MODELS, OPTIM_WRAPPERS
from mmengine.config import Config
from mmengine.optim import OptimWrapper

import frcnn_plugin.engine.optimizers.amp_optim_wrapper as amp_module
import frcnn_plugin.utils.mmdet_tools as mmdet_tools
from frcnn_plugin.engine.optimizers.amp_optim_wrapper import ScratchAmpOptimWrapper


@pytest.fixture
def no_gpu(monkeypatch):
    """What a CPU-only machine sees, also on a machine with a GPU."""
    monkeypatch.setattr(amp_module, 'accelerator_available', lambda: False)


def sgd_wrapper(model, **kwargs):
    return OPTIM_WRAPPERS.build(dict(
        type='ScratchAmpOptimWrapper', optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        **kwargs))


def test_cpu_wrapper_autocasts_in_bfloat16_without_a_scaler(no_gpu):
    model = torch.nn.Conv2d(3, 4, 3)
    wrapper = sgd_wrapper(model, loss_scale='dynamic')  # what mmdet's --amp passes
    assert isinstance(wrapper, ScratchAmpOptimWrapper)
    assert wrapper.loss_scaler is None and wrapper.cast_dtype == torch.bfloat16
    x = torch.randn(2, 3, 8, 8)
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        out = model(x)
    assert out.dtype == torch.bfloat16
    assert model(x).dtype == torch.float32  # only inside the context

    # The update is a plain SGD step on the float32 gradient (nothing scaled).
    reference = copy.deepcopy(model)
    loss = out.float().square().mean()
    wrapper.update_params(loss)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ref_loss = reference(x).float().square().mean()
    ref_loss.backward()
    plain = OptimWrapper(torch.optim.SGD(reference.parameters(), lr=0.1))
    plain.step()
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_cpu_wrapper_takes_bfloat16_only(no_gpu):
    model = torch.nn.Linear(2, 2)
    assert sgd_wrapper(model, dtype='bfloat16').cast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="bfloat16 only, got dtype='float16'"):
        sgd_wrapper(model, dtype='float16')


def test_cpu_wrapper_checkpoints_without_a_scaler_and_reads_a_gpu_ones(no_gpu):
    model = torch.nn.Linear(2, 2)
    wrapper = sgd_wrapper(model)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state and 'state' in state and 'param_groups' in state
    # A GPU run's checkpoint holds its scaler's state: dropped here, the optimizer loads.
    gpu_state = copy.deepcopy(state)
    gpu_state['param_groups'][0]['lr'] = 0.5
    gpu_state['loss_scaler'] = dict(scale=65536.0, growth_factor=2.0, backoff_factor=0.5,
                                    growth_interval=2000, _growth_tracker=3)
    wrapper.load_state_dict(gpu_state)
    assert wrapper.optimizer.param_groups[0]['lr'] == 0.5


@pytest.mark.parametrize('native', [True, False])
def test_cpu_wrapper_says_when_the_cpu_has_no_bf16_instructions(no_gpu, monkeypatch, native):
    logged = []
    monkeypatch.setattr(amp_module, 'print_log', lambda msg, **kwargs: logged.append(msg))
    monkeypatch.setattr(amp_module, 'cpu_has_native_bf16', lambda: native)
    sgd_wrapper(torch.nn.Linear(2, 2))
    assert 'bfloat16 autocast on the CPU' in logged[0]
    assert any('no bfloat16 instructions' in msg for msg in logged) is not native


def test_detector_train_step_runs_under_bfloat16(no_gpu, repo):
    """One train step of the all-Scratch VGG16 detector through the wrapper, as the
    runner does it: convolutions and FCs in bfloat16, losses finite, weights float32."""
    model_cfg = Config.fromfile(repo / 'configs/frcnn_kitti_tiny.py').model
    model_cfg.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    seen = {}

    def record(module, args, out):
        seen[module] = out.dtype

    for name in ('backbone.features.28', 'rpn_head.rpn_conv', 'roi_head.bbox_head.fc_cls'):
        model.get_submodule(name).register_forward_hook(record)
    wrapper = sgd_wrapper(model)
    losses = model.train_step(detector_batch(sizes=((224, 256, 3),), num_classes=3), wrapper)
    assert seen == dict.fromkeys(seen, torch.bfloat16) and len(seen) == 3
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_train_tool_turns_amp_into_the_cpu_wrapper(no_gpu, capsys):
    argv = ['cfg.py', '--amp', '--cfg-options', 'a=1']
    assert mmdet_tools.amp_argv(argv) == [
        'cfg.py', '--cfg-options', 'a=1', '--cfg-options',
        'optim_wrapper.type=ScratchAmpOptimWrapper', 'optim_wrapper.loss_scale=dynamic']
    assert 'ScratchAmpOptimWrapper' in capsys.readouterr().err
    assert mmdet_tools.amp_argv(['cfg.py']) == ['cfg.py']


def test_train_tool_leaves_amp_to_mmdet_with_a_gpu(monkeypatch):
    monkeypatch.setattr(amp_module, 'accelerator_available', lambda: True)
    assert mmdet_tools.amp_argv(['cfg.py', '--amp']) == ['cfg.py', '--amp']
