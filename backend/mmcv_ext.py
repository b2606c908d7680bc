"""``mmcv._ext`` for mmcv-lite: the compiled functions that mmdet's Faster R-CNN path calls,
on torchvision's precompiled kernels (CPU and CUDA), with compiled mmcv 2.1's semantics.

Not a component of frcnn_plugin and never imported by one: it serves mmdet's own layers
(``mmcv.ops.nms``, ``RoIAlign``, ``RoIPool``) and the tests' reference oracles, so that the
whole stack installs from wheels, without compiling mmcv. ``tools/setup_env.sh`` copies this
file to ``<site-packages>/mmcv/_ext.py`` (where compiled mmcv keeps its extension); remove
that file, or install compiled mmcv (``MMCV_OPS=compiled make env``), to undo it.

The functions keep the signatures of mmcv's bindings (``mmcv/ops/csrc/pytorch/pybind.cpp``):
each writes into the output tensors it is handed, as the kernels do.

* ``nms``: greedy NMS, best score first. The order is ``scores.sort(0, descending=True)``,
  the call mmcv's kernel makes, so tied scores fall as in mmcv; the IoU is compared with the
  threshold as a C ``float``. ``offset=1`` (boxes in inclusive pixel coordinates) has no
  torchvision kernel: :func:`greedy_nms` is mmcv's CPU loop, written out.
* ``roi_align_forward`` / ``roi_align_backward``: the average mode is torchvision's kernel
  (both are detectron2's, operation for operation); the max mode has no torchvision kernel:
  :func:`roi_align_max_forward` / :func:`roi_align_max_backward` are mmcv's CPU kernel,
  written out. With ``aligned=True`` a RoI of negative size is refused, as mmcv's CPU
  kernel refuses it.
* ``roi_pool_forward`` / ``roi_pool_backward``: compiled mmcv has only a CUDA kernel, whose
  quantisation differs from torchvision's (float bin edges, ``x2 + 1``); :func:`roi_pool_bins`
  and the two functions are that kernel written out, on CPU and CUDA alike.

The dtypes are the kernels': NMS takes float32 boxes, the RoI ops float32, float64 and
float16; bfloat16 gets compiled mmcv's errors.

Every other name of compiled mmcv's extension is a function that raises a one-line
``NotImplementedError`` naming the op and how to get compiled mmcv.

On CUDA the NMS and RoIAlign (avg) kernels are torchvision's; compiled mmcv's CUDA NMS
compares ``inter > threshold * union`` instead of dividing, so a pair exactly at the
threshold can fall the other way there (as between mmcv's own CPU and CUDA kernels).
"""
import numpy as np
import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)

FLT_MAX = float(np.finfo(np.float32).max)
COMPILED_MMCV = ('compiled mmcv (MMCV_OPS=compiled make env, or pip install mmcv with a '
                 'compiler: https://mmcv.readthedocs.io/en/2.x/get_started/installation.html)')


# ------------------------------------------------------------------------------ NMS
# The dtypes compiled mmcv's kernels take, and the errors they give for others.
KERNEL_DTYPES = (torch.float32, torch.float64, torch.float16)
TYPE_NAMES = {torch.float64: 'Double', torch.float16: 'Half', torch.bfloat16: 'BFloat16'}


def check_dtype(kernel, tensor):
    """mmcv dispatches its RoI kernels for float, double and half (not bfloat16)."""
    if tensor.dtype not in KERNEL_DTYPES:
        name = TYPE_NAMES.get(tensor.dtype, str(tensor.dtype))
        raise NotImplementedError(f'"{kernel}" not implemented for \'{name}\'')


def nms(boxes, scores, iou_threshold, offset):
    """``boxes (N, 4)``, ``scores (N,)`` -> indices kept ``(K,)`` int64, best score first."""
    if boxes.dtype != torch.float32:  # the kernels read the boxes as C floats
        name = TYPE_NAMES.get(boxes.dtype, str(boxes.dtype))
        raise RuntimeError(f'expected scalar type Float but found {name}')
    if boxes.numel() == 0:
        return boxes.new_empty(0, dtype=torch.long)
    order = scores.sort(0, descending=True)[1]  # [N]: mmcv's call, so ties fall as in mmcv
    # The kernel holds the threshold in a C float; torchvision's holds a double.
    threshold = float(np.float32(iou_threshold))
    if offset == 0:
        rank = torch.arange(order.numel(), 0, -1, dtype=torch.float32, device=boxes.device)
        kept = torch.ops.torchvision.nms(boxes[order], rank, threshold)  # [K] positions
        return order[kept.sort()[0]]
    return order[greedy_nms(boxes[order], threshold, offset)]


def greedy_nms(boxes, threshold, offset):
    """mmcv's CPU NMS loop on ``boxes (N, 4)`` in score order -> kept positions, ascending.

    Each kept box drops every later box whose IoU with it is above ``threshold``::

        area  = (x2 - x1 + offset) * (y2 - y1 + offset)
        inter = max(0, min(x2, x2') - max(x1, x1') + offset) * (same in y)
        iou   = inter / (area + area' - inter)
    """
    x1, y1, x2, y2 = boxes.float().unbind(1)  # [N] each
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    alive = torch.ones(boxes.size(0), dtype=torch.bool, device=boxes.device)
    for i in range(boxes.size(0)):
        if not alive[i]:
            continue
        w = (torch.minimum(x2[i], x2[i + 1:]) - torch.maximum(x1[i], x1[i + 1:]) + offset)
        h = (torch.minimum(y2[i], y2[i + 1:]) - torch.maximum(y1[i], y1[i + 1:]) + offset)
        inter = w.clamp(min=0) * h.clamp(min=0)
        iou = inter / (areas[i] + areas[i + 1:] - inter)
        alive[i + 1:] &= ~(iou > threshold)
    return alive.nonzero()[:, 0]


# ------------------------------------------------------------------------------ RoIAlign
def roi_start_and_size(rois, spatial_scale, aligned):
    """``rois (K, 5)`` -> ``start (K, 2)`` (x, y) and ``size (K, 2)`` (w, h) on the map,
    in the kernel's float arithmetic; ``aligned`` refuses negative sizes as mmcv does."""
    scale = torch.tensor(spatial_scale, dtype=rois.dtype, device=rois.device)
    offset = 0.5 if aligned else 0.0
    start = rois[:, 1:3] * scale - offset  # [K, 2]
    end = rois[:, 3:5] * scale - offset
    size = end - start
    if aligned:
        if not bool((size >= 0).all()):
            raise RuntimeError('ROIs in ROIAlign cannot have non-negative size!')
    else:  # mmcv: "for backward-compatibility only"
        size = size.clamp(min=1)
    return start, size


def check_rois(input, rois):
    if rois.dim() != 2 or rois.size(1) != 5:
        raise ValueError(f'RoIs must be (K, 5) (batch index, x1, y1, x2, y2), got '
                         f'{tuple(rois.shape)}')
    if rois.dtype != input.dtype:
        raise TypeError(f'RoIs ({rois.dtype}) and features ({input.dtype}) must have one dtype')


def roi_align_forward(input, rois, output, argmax_y, argmax_x, aligned_height, aligned_width,
                      spatial_scale, sampling_ratio, pool_mode, aligned):
    """Writes ``output (K, C, PH, PW)``; in max mode (``pool_mode=0``) also the sample
    coordinates each bin's maximum came from (``argmax_y``, ``argmax_x``)."""
    check_dtype('ROIAlign_forward', input)
    check_rois(input, rois)
    roi_start_and_size(rois, spatial_scale, aligned)  # mmcv's negative-size error
    if pool_mode == 1:
        output.copy_(torch.ops.torchvision.roi_align(
            input, rois, spatial_scale, aligned_height, aligned_width, sampling_ratio, aligned))
        return
    out, y, x = roi_align_max_forward(input, rois, aligned_height, aligned_width,
                                      spatial_scale, sampling_ratio, aligned)
    output.copy_(out)
    argmax_y.copy_(y)
    argmax_x.copy_(x)


def roi_align_backward(grad_output, rois, argmax_y, argmax_x, grad_input, aligned_height,
                       aligned_width, spatial_scale, sampling_ratio, pool_mode, aligned):
    """Adds the gradient of ``output`` with respect to ``input`` into ``grad_input``."""
    roi_start_and_size(rois, spatial_scale, aligned)
    if pool_mode == 1:
        batch, channels, height, width = grad_input.shape
        grad_input.add_(torch.ops.torchvision._roi_align_backward(
            grad_output, rois, spatial_scale, aligned_height, aligned_width, batch, channels,
            height, width, sampling_ratio, aligned))
        return
    roi_align_max_backward(grad_output, rois, argmax_y, argmax_x, grad_input)


def sample_points(rois, pooled, spatial_scale, sampling_ratio, aligned):
    """The bilinear sample points of every bin, as mmcv's kernel places them.

    Returns ``y (K, PH, GH)``, ``x (K, PW, GW)`` (``G*``: the most samples per bin of any
    RoI) and ``valid_y (K, 1, GH)``, ``valid_x (K, 1, GW)``: which of those a RoI has::

        grid = sampling_ratio if > 0 else ceil(roi_size / pooled)   (per RoI, per axis)
        y    = start + ph * bin + (iy + 0.5) * bin / grid
    """
    start, size = roi_start_and_size(rois, spatial_scale, aligned)  # [K, 2] (x, y)
    pooled_t = torch.tensor(pooled[::-1], dtype=rois.dtype, device=rois.device)  # (PW, PH)
    bin_size = size / pooled_t  # [K, 2]
    if sampling_ratio > 0:
        grid = torch.full_like(size, sampling_ratio).long()
    else:
        grid = (size / pooled_t).ceil().long()
    axes = []
    for axis, bins in ((1, pooled[0]), (0, pooled[1])):  # y, then x
        most = max(int(grid[:, axis].max()) if grid.numel() else 0, 1)
        b = torch.arange(bins, dtype=rois.dtype, device=rois.device)[None, :, None]
        i = torch.arange(most, dtype=rois.dtype, device=rois.device)[None, None, :]
        s, bs = start[:, axis, None, None], bin_size[:, axis, None, None]
        g = grid[:, axis, None, None]
        points = s + b * bs + (i + 0.5) * bs / g.to(rois.dtype)  # [K, bins, most]
        valid = torch.arange(most, device=rois.device)[None, None, :] < g
        axes.append((torch.where(valid, points, 0), valid))  # 0: a harmless stand-in
    (y, valid_y), (x, valid_x) = axes
    return y, x, valid_y, valid_x


def bilinear(coord, length):
    """mmcv's ``bilinear_interpolate`` on one axis: ``coord`` -> low / high cell and their
    weights ``(1 - l, l)``; a point more than a cell outside the map gets weights 0."""
    outside = (coord < -1.0) | (coord > length)
    c = coord.clamp(min=0)
    low = c.long()  # C's (int) cast: truncation, c >= 0
    last = low >= length - 1
    low = torch.where(last, length - 1, low)
    high = torch.where(last, low, low + 1)
    c = torch.where(last, low.to(c.dtype), c)
    lw = c - low.to(c.dtype)
    hw = (1.0 - lw.double()).to(c.dtype)  # ``T hy = 1. - ly``: a double, stored as T
    zero = torch.zeros((), dtype=c.dtype, device=c.device)
    return (torch.where(outside, 0, low), torch.where(outside, 0, high),
            torch.where(outside, zero, hw), torch.where(outside, zero, lw), outside)


def roi_align_max_forward(input, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio,
                          aligned):
    """mmcv's RoIAlign, max mode: each bin's largest bilinear sample (above -10000, the
    kernel's start value) and its ``(y, x)`` (``-1`` where none is)."""
    channels, height, width = input.shape[1:]
    y, x, valid_y, valid_x = sample_points(rois, (pooled_h, pooled_w), spatial_scale,
                                           sampling_ratio, aligned)
    gh, gw = y.size(2), x.size(2)
    yl, yh, hy, ly, _ = bilinear(y, height)  # [K, PH, GH]
    xl, xh, hx, lx, _ = bilinear(x, width)   # [K, PW, GW]
    # [K, PH, PW, GH, GW]: every sample of every bin
    shape = (rois.size(0), pooled_h, pooled_w, gh, gw)

    def ys(t):
        return t[:, :, None, :, None].expand(shape)

    def xs(t):
        return t[:, None, :, None, :].expand(shape)

    feats = input[rois[:, 0].long()].flatten(2)  # [K, C, H * W]

    def at(row, col):  # [K, C, PH, PW, GH, GW]
        index = (row * width + col).flatten(1)[:, None, :].expand(-1, channels, -1)
        return feats.gather(2, index).view(-1, channels, *shape[1:])

    yl_, yh_, xl_, xh_ = ys(yl), ys(yh), xs(xl), xs(xh)
    w1, w2 = (ys(hy) * xs(hx))[:, None], (ys(hy) * xs(lx))[:, None]
    w3, w4 = (ys(ly) * xs(hx))[:, None], (ys(ly) * xs(lx))[:, None]
    val = w1 * at(yl_, xl_) + w2 * at(yl_, xh_) + w3 * at(yh_, xl_) + w4 * at(yh_, xh_)
    valid = (ys(valid_y) & xs(valid_x))[:, None]  # [K, 1, PH, PW, GH, GW]
    # The kernel's scan keeps the first sample strictly above the best so far (start -10000).
    val = torch.where(valid & (val > -10000), val, torch.full_like(val, float('-inf')))
    flat = val.flatten(-2)  # [K, C, PH, PW, GH * GW]
    best = flat.amax(-1, keepdim=True)
    found = best > float('-inf')
    first = torch.where(flat == best, torch.arange(gh * gw, device=input.device),
                        gh * gw).amin(-1)  # [K, C, PH, PW]
    iy, ix = first // gw, first % gw
    ky = y[:, None, :, None, :].expand(-1, channels, -1, pooled_w, -1)  # [K, C, PH, PW, GH]
    kx = x[:, None, None, :, :].expand(-1, channels, pooled_h, -1, -1)
    arg_y = ky.gather(-1, iy.clamp(max=gh - 1)[..., None])[..., 0]
    arg_x = kx.gather(-1, ix.clamp(max=gw - 1)[..., None])[..., 0]
    found = found[..., 0]
    minus_one = torch.full_like(arg_y, -1.0)
    out = torch.where(found, best[..., 0], torch.full_like(arg_y, -10000.0))
    return out, torch.where(found, arg_y, minus_one), torch.where(found, arg_x, minus_one)


def roi_align_max_backward(grad_output, rois, argmax_y, argmax_x, grad_input):
    """mmcv's max-mode backward: each bin's gradient goes to the four cells around the
    sample its maximum came from, by the bilinear weights, in the kernel's order (bins in
    ``(k, c, ph, pw)`` order, the four corners in turn) so the sums round as its do."""
    batch, channels, height, width = grad_input.shape
    y, x = argmax_y, argmax_x  # [K, C, PH, PW]
    yl, yh, hy, ly, out_y = bilinear(y, height)
    xl, xh, hx, lx, out_x = bilinear(x, width)
    take = (y != -1.0) & ~out_y & ~out_x  # [K, C, PH, PW]
    g = grad_output.contiguous()
    base = (rois[:, 0].long()[:, None] * channels
            + torch.arange(channels, device=g.device)[None])[..., None, None] * height * width
    corners = [(yl, xl, hy * hx), (yl, xh, hy * lx), (yh, xl, ly * hx), (yh, xh, ly * lx)]
    index = torch.stack([base + r * width + c for r, c, _ in corners], -1)  # [K, C, PH, PW, 4]
    value = torch.stack([g * w for _, _, w in corners], -1)
    mask = take[..., None].expand_as(index)
    # index_add_ adds in the order given, one value at a time, as the kernel's loop does
    # (index_put_ with accumulate=True adds in parallel, in another order).
    grad_input.view(-1).index_add_(0, index[mask], value[mask])


# ------------------------------------------------------------------------------ RoIPool
def roi_pool_bins(rois, pooled_h, pooled_w, spatial_scale, height, width):
    """mmcv's RoIPool bins: ``[y1, y2) (K, PH)``, ``[x1, x2) (K, PW)`` cells, and which RoIs
    pool at all (``(K,)``: a RoI of zero or negative size leaves its bins untouched)::

        x1' = x1 * scale,  x2' = (x2 + 1) * scale,  bin = (x2' - x1') / PW
        bin pw covers [floor(pw * bin + x1'), ceil((pw + 1) * bin + x1')), clipped to the map
    """
    scale = torch.tensor(spatial_scale, dtype=rois.dtype, device=rois.device)
    start = rois[:, 1:3] * scale  # [K, 2] (x, y)
    size = (rois[:, 3:5] + 1) * scale - start
    pools = (size > 0).all(1)
    out = []
    for axis, bins, length in ((1, pooled_h, height), (0, pooled_w, width)):
        bin_size = size[:, axis, None] / bins  # [K, 1]
        p = torch.arange(bins + 1, dtype=rois.dtype, device=rois.device)[None]
        lo = (p[:, :-1] * bin_size + start[:, axis, None]).floor()
        hi = (p[:, 1:] * bin_size + start[:, axis, None]).ceil()
        out += [lo.clamp(0, length).long(), hi.clamp(0, length).long()]
    return (*out, pools)


def roi_pool_forward(input, rois, output, argmax, pooled_height, pooled_width, spatial_scale):
    """Writes ``output (K, C, PH, PW)``, each bin's maximum (0 for an empty bin) and
    ``argmax``, its cell ``h * W + w`` (the first in row order; -1 where none)."""
    check_dtype('roi_pool_forward_cuda_kernel', input)
    check_rois(input, rois)
    channels, height, width = input.shape[1:]
    y1, y2, x1, x2, pools = roi_pool_bins(rois, pooled_height, pooled_width, spatial_scale,
                                          height, width)
    # One RoI at a time, the window's maximum as the maximum over its rows of each row's
    # maximum: (C, H, PW, W) temporaries, never (K, C, PH, PW, H, W).
    for k in pools.nonzero()[:, 0].tolist():
        feats = input[int(rois[k, 0])]  # [C, H, W]
        row_best, row_arg = window_max(feats[:, :, None, :], x1[k], x2[k])  # [C, H, PW]
        best, arg_h = window_max(row_best.transpose(1, 2)[:, :, None, :], y1[k], y2[k])
        best, arg_h = best.transpose(1, 2), arg_h.transpose(1, 2)  # [C, PH, PW]
        arg_w = row_arg.gather(1, arg_h.clamp(max=height - 1))  # the first such row's cell
        found = best > float('-inf')
        empty = ((y2[k] <= y1[k])[:, None] | (x2[k] <= x1[k])[None, :])  # [PH, PW]
        output[k] = torch.where(found, best, torch.where(empty, 0.0, -FLT_MAX))
        argmax[k] = torch.where(found, arg_h * width + arg_w, -1).to(argmax.dtype)


def window_max(values, lo, hi):
    """``values (..., L)``, windows ``[lo, hi) (B,)`` over the last axis -> per window the
    largest value above -FLT_MAX and the first position holding it ``(..., B)`` (``-inf``
    and ``L`` where none): the kernel's scan, which keeps a value strictly above the best
    so far, starting from -FLT_MAX (so NaN and -FLT_MAX never win)."""
    length = values.size(-1)
    pos = torch.arange(length, device=values.device)
    inside = (pos >= lo[:, None]) & (pos < hi[:, None])  # [B, L]
    vals = torch.where(inside & (values > -FLT_MAX), values, float('-inf'))  # [..., B, L]
    best = vals.amax(-1)
    first = torch.where(vals == best[..., None], pos, length).amin(-1)
    return best, first


def roi_pool_backward(grad_output, rois, argmax, grad_input, pooled_height, pooled_width,
                      spatial_scale):
    """Adds each bin's gradient into the cell its maximum came from."""
    batch, channels, height, width = grad_input.shape
    base = (rois[:, 0].long()[:, None] * channels
            + torch.arange(channels, device=argmax.device)[None])[..., None, None]
    take = argmax != -1
    index = (base * height * width + argmax.long())[take]
    grad_input.view(-1).index_add_(0, index, grad_output[take])


# ------------------------------------------------------------------------------ info
def get_compiler_version():
    return f'none: torchvision {torchvision.__version__} kernels (mmcv-lite backend)'


def get_compiling_cuda_version():
    """What compiled mmcv reports: the CUDA its kernels run on, or 'not available'."""
    return torch.version.cuda or 'not available'


def __getattr__(name):
    """Every other op of compiled mmcv: a function that says it is missing."""
    if name.startswith('__'):
        raise AttributeError(name)

    def missing(*args, **kwargs):
        raise NotImplementedError(
            f'mmcv op {name!r} is compiled mmcv only; this environment has mmcv-lite with '
            f'the nms / roi_align / roi_pool backend: install {COMPILED_MMCV}')

    missing.__name__ = name
    return missing
