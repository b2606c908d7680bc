"""Each custom operator of frcnn_plugin.deploy.onnx_ops, exported alone and run by
onnxruntime, computes what our eager function computes (the function it calls): NMS
keeps the same boxes in the same order, RoIAlign matches to float rounding, RoI max
pooling exactly. Control: the same ONNX operators with other settings (RoiAlign
without the half-pixel shift, NMS at another IoU) differ."""
import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from frcnn_plugin.deploy import onnx_ops
from frcnn_plugin.ops.nms import nms
from frcnn_plugin.ops.roi_align import roi_align_avg_sparse
from frcnn_plugin.ops.roi_pool import roi_pool_by_bin_shape


class Call(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, first, second):
        return self.fn(first, second)


def run_exported(fn, args, tmp_path, dynamic_dims):
    """``fn(*args)`` exported (each arg's ``dynamic_dims`` dynamic) and run by onnxruntime."""
    dynamic = torch.export.Dim.DYNAMIC
    program = torch.onnx.export(
        Call(fn).eval(), args, dynamo=True, opset_version=onnx_ops.OPSET, verbose=False,
        custom_translation_table=onnx_ops.ONNX_TRANSLATIONS,
        dynamic_shapes=tuple({d: dynamic for d in dims} for dims in dynamic_dims))
    path = tmp_path / 'op.onnx'
    program.save(str(path))
    assert {node.domain for node in program.model_proto.graph.node} == {''}
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: a.numpy() for n, a in zip(names, args)})[0]


def random_boxes(n, generator, size=100.):
    """``(n, 4)`` boxes in clusters (many overlaps near 0.5), some of zero width."""
    centres = torch.rand(n // 10 + 1, 2, generator=generator)[
        torch.randint(0, n // 10 + 1, (n,), generator=generator)] * size
    centres += torch.randn(n, 2, generator=generator) * 3
    half = torch.rand(n, 2, generator=generator) * 10 + 2
    half[::17, 0] = 0
    return torch.cat((centres - half, centres + half), 1)


@pytest.mark.parametrize('max_num', [0, 25])
def test_nms_exports_as_nonmaxsuppression(tmp_path, max_num):
    generator = torch.Generator().manual_seed(0)
    boxes = random_boxes(300, generator)
    scores = torch.rand(300, generator=generator)

    def fn(b, s):
        return onnx_ops.nms(b, s, 0.5, max_num)

    kept = run_exported(fn, (boxes, scores), tmp_path, ((0,), (0,)))
    ours = nms(boxes, scores, 0.5, max_num=max_num)
    assert 0 < len(ours) < 300
    assert kept.tolist() == ours.tolist()
    # Control: NMS at another threshold keeps other boxes.
    assert nms(boxes, scores, 0.3, max_num=max_num).tolist() != kept.tolist()


@pytest.mark.parametrize('aligned,sampling_ratio', [(True, 2), (True, 0), (False, 2)])
def test_roi_align_exports_as_roialign(tmp_path, aligned, sampling_ratio):
    generator = torch.Generator().manual_seed(0)
    feat = torch.randn(1, 8, 20, 30, generator=generator)
    boxes = random_boxes(50, generator, size=16 * 30)
    rois = torch.cat((torch.zeros(50, 1), boxes), 1)

    def fn(f, r):
        return onnx_ops.roi_align(f, r, 7, 7, 1 / 16, sampling_ratio, aligned)

    pooled = run_exported(fn, (feat, rois), tmp_path, ((2, 3), (0,)))
    ours = roi_align_avg_sparse(feat, rois, (7, 7), 1 / 16, sampling_ratio, aligned)
    np.testing.assert_allclose(pooled, ours.numpy(), rtol=0, atol=1e-5)
    # Control: the other coordinate convention samples elsewhere.
    other = roi_align_avg_sparse(feat, rois, (7, 7), 1 / 16, sampling_ratio, not aligned)
    assert np.abs(pooled - other.numpy()).max() > 1e-2


def test_roi_pool_exports_as_maxroipool(tmp_path):
    generator = torch.Generator().manual_seed(0)
    feat = torch.randn(1, 8, 20, 30, generator=generator)
    boxes = random_boxes(50, generator, size=16 * 30)
    # Corners on half cells: C's round (half away from zero) decides them.
    boxes[:10] = (boxes[:10] / 8).round() * 8
    rois = torch.cat((torch.zeros(50, 1), boxes), 1)

    def fn(f, r):
        return onnx_ops.roi_pool(f, r, 7, 7, 1 / 16)

    pooled = run_exported(fn, (feat, rois), tmp_path, ((2, 3), (0,)))
    assert np.array_equal(pooled, roi_pool_by_bin_shape(feat, rois, (7, 7), 1 / 16).numpy())
