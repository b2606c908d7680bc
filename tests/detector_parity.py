"""Detector-level parity: a model config retyped to other components, trained two
seeded SGD steps and then run on the same images, beside the original config.

Imported by the tests as ``detector_parity`` (pytest puts tests/ on sys.path for its
conftest.py)."""
import copy
from contextlib import contextmanager

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

from frcnn_plugin.utils.swap import retyped  # noqa: F401  (the tests import it from here)


def detector_batch(sizes=((96, 128, 4), (112, 96, 1)), num_classes=80):
    """Images (uint8, as loaded) with random gt boxes: one (h, w, number of boxes) each."""
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for h, w, n in sizes:
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.4, h * 0.4]) + 2
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], dim=1),
            labels=torch.randint(0, num_classes, (n,), generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def random_boxes(n, h, w, g):
    """``n`` random boxes ``(n, 4)`` inside an ``h x w`` image, at least 1 pixel a side."""
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3]) + 1
    return torch.cat([xy, xy + wh], 1)


def load_random_weights(theirs, ours, seed, scale=0.05):
    """Randomise ``theirs``' parameters (larger than the default init, so predictions
    vary) and load them strictly into ``ours``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    ours.load_state_dict(theirs.state_dict(), strict=True)


@contextmanager
def one_thread():
    """Run on one CPU thread, restoring the count afterwards.

    Step 1 of a training run from random weights is chaotic: one anchor assigned
    differently changes how many candidates the sampler draws from, hence every RoI it
    draws (mmdet's own detector gives a 20 % different step-1 loss on 1 and on 2
    threads). Parity at step 1 therefore needs the same reduction order on both sides:
    one thread, where our RoIAlign's gradients differ from mmcv's in the last bits only.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_and_predict(cfg, state_dict, batch):
    """Build ``cfg``, load ``state_dict`` strictly, take two SGD steps on ``batch``
    (seeded: the samplers draw from torch's RNG), then predict it, on one thread.
    Returns (the two steps' loss dicts, the predicted InstanceData per image)."""
    with one_thread():
        return _train_and_predict(cfg, state_dict, batch)


def _train_and_predict(cfg, state_dict, batch):
    model = MODELS.build(cfg)
    model.load_state_dict(state_dict, strict=True)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    losses = []
    for step in range(2):
        torch.manual_seed(step)
        losses.append(model.train_step(copy.deepcopy(batch), optim))
    model.eval()
    with torch.no_grad():
        predictions = model.test_step(copy.deepcopy(batch))
    return losses, [p.pred_instances for p in predictions]


def assert_same_training(ours, theirs, rel=1e-6):
    """Equal losses at every step and equal detections (two ``train_and_predict`` runs)."""
    (our_losses, our_preds), (their_losses, their_preds) = ours, theirs
    for step, (mine, ref) in enumerate(zip(our_losses, their_losses)):
        assert mine.keys() == ref.keys()
        for key in ref:
            assert mine[key].item() == pytest.approx(ref[key].item(), rel=rel, abs=1e-7), \
                f'step {step} {key}'
    assert all(torch.isfinite(v) for v in our_losses[-1].values())
    for mine, ref in zip(our_preds, their_preds):
        assert torch.equal(mine.labels, ref.labels)
        torch.testing.assert_close(mine.bboxes, ref.bboxes, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(mine.scores, ref.scores, rtol=1e-5, atol=1e-6)


def loss_and_gradients(cfg, state_dict, batch, before=None):
    """Build ``cfg``, load ``state_dict`` strictly, call ``before(model)`` (to watch a
    module), then one seeded forward and backward on ``batch``, on one thread.
    Returns (the logged losses, {parameter name: gradient, None where none flowed})."""
    with one_thread():
        model = MODELS.build(cfg)
        model.load_state_dict(state_dict, strict=True)
        if before is not None:
            before(model)
        torch.manual_seed(0)
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        loss, log_vars = model.parse_losses(model(**data, mode='loss'))
        loss.backward()
    return log_vars, {name: p.grad for name, p in model.named_parameters()}


def assert_same_gradients(ours, theirs, rel=1e-4):
    """Equal losses and gradients (two ``loss_and_gradients`` results)."""
    (our_losses, our_grads), (their_losses, their_grads) = ours, theirs
    assert our_losses.keys() == their_losses.keys()
    for key, value in their_losses.items():
        assert our_losses[key].item() == pytest.approx(value.item(), rel=rel, abs=1e-7), key
    assert our_grads.keys() == their_grads.keys()
    for name, grad in their_grads.items():
        assert (our_grads[name] is None) == (grad is None), name
        if grad is not None:
            torch.testing.assert_close(our_grads[name], grad, rtol=rel, atol=1e-6,
                                       msg=lambda text, name=name: f'{name}: {text}')


def recorded(obj, name):
    """Replace method ``name`` of ``obj`` (an instance) by one that also keeps each
    call's ``(args, kwargs, result)`` in the returned list."""
    calls, method = [], getattr(obj, name)

    def wrapper(*args, **kwargs):
        result = method(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result
    setattr(obj, name, wrapper)
    return calls


def all_scratch_r50_fpn(repo):
    """Our R50-FPN detector (configs/_base_/models/faster-rcnn_r50_fpn_scratch.py: every
    head, RoI layer and task module ours), random weights drawn after ``manual_seed(0)``,
    and a plain SGD wrapper for its ``train_step``."""
    from mmengine.config import Config
    cfg = Config.fromfile(repo / 'configs/_base_/models/faster-rcnn_r50_fpn_scratch.py').model
    cfg.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    return model, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
