"""Mixed-precision training everywhere: mmengine's ``AmpOptimWrapper`` on a GPU, bfloat16
autocast on a CPU.

mmdet's ``tools/train.py --amp`` sets ``optim_wrapper.type='AmpOptimWrapper'``, which
refuses to start without a GPU (its loss scaler is ``torch.cuda.amp``'s). Our
``tools/train.py`` asks for :class:`ScratchAmpOptimWrapper` instead when no GPU is
present (:func:`frcnn_plugin.utils.mmdet_tools.amp_argv`); a config may also name it
directly, and then runs in mixed precision on either kind of machine.
"""
import logging
from typing import Optional, Union

import torch
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper


def accelerator_available() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` can run here (it asks the same)."""
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (x86: AVX512-BF16 or AMX-BF16;
    Arm: the BF16 extension). Without it oneDNN emulates bf16 and autocast is slower
    than float32."""
    caps = torch.cpu.get_capabilities()
    return any(caps.get(flag, False)
               for flag in ('avx512_bf16', 'amx_bf16', 'bf16', 'sve_bf16'))


@OPTIM_WRAPPERS.register_module()
class ScratchAmpOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` that also trains on a CPU-only machine.

    With a GPU (or NPU, MLU, MUSA) it *is* mmengine's ``AmpOptimWrapper``: autocast
    in ``dtype`` (default float16) and a loss scaler configured by ``loss_scale``.
    Without one, the forward runs under ``torch.autocast('cpu', dtype=torch.bfloat16)``
    (the only dtype mmengine's CPU autocast takes) and the loss is not scaled:
    bfloat16 has float32's exponent range, so gradients do not underflow the way
    float16's do, and ``loss_scale`` is ignored. Parameters, gradients and the
    optimizer state stay float32 on both.

    Checkpoints move between the two: a GPU run's loss-scaler state is dropped when
    it is resumed on a CPU, and a CPU run has none to give a GPU (whose scaler then
    starts afresh).

    Args:
        loss_scale: ``'dynamic'``, a float or a ``GradScaler`` dict (GPU only).
        dtype: autocast dtype; on a CPU ``None`` or ``'bfloat16'``.
        use_fsdp: a ``ShardedGradScaler`` (GPU only).
        **kwargs: ``OptimWrapper``'s (``optimizer``, ``clip_grad``, ...).
    """

    def __init__(self, loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Optional[Union[str, torch.dtype]] = None, use_fsdp: bool = False,
                 **kwargs):
        if accelerator_available():
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(f'{type(self).__name__}: CPU autocast runs in bfloat16 only, '
                             f'got dtype={dtype!r} (no GPU here)')
        OptimWrapper.__init__(self, **kwargs)
        self.loss_scaler = None
        self._scale_update_param = None
        self.cast_dtype = torch.bfloat16
        print_log(f'{type(self).__name__}: no GPU, so mixed precision is bfloat16 autocast '
                  'on the CPU, without loss scaling', logger='current')
        if not cpu_has_native_bf16():
            print_log(f'{type(self).__name__}: this CPU has no bfloat16 instructions '
                      '(AVX512-BF16, AMX or Arm BF16); bf16 is emulated and usually slower '
                      'than float32', logger='current', level=logging.WARNING)

    def backward(self, loss: torch.Tensor, **kwargs):
        if self.loss_scaler is not None:
            return super().backward(loss, **kwargs)
        return OptimWrapper.backward(self, loss, **kwargs)

    def step(self, **kwargs):
        if self.loss_scaler is not None:
            return super().step(**kwargs)
        return OptimWrapper.step(self, **kwargs)

    def state_dict(self) -> dict:
        if self.loss_scaler is not None:
            return super().state_dict()
        return OptimWrapper.state_dict(self)

    def load_state_dict(self, state_dict: dict):
        if self.loss_scaler is None and state_dict.pop('loss_scaler', None) is not None:
            print_log(f'{type(self).__name__}: the checkpoint\'s loss-scaler state is not '
                      'used on a CPU (bfloat16 needs no loss scaling)', logger='current')
        super().load_state_dict(state_dict)
