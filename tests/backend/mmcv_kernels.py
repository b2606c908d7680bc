"""Compiled mmcv 2.1's kernels, scalar by scalar in numpy float32: the oracles of
backend/mmcv_ext.py where compiled mmcv is not installed.

Each function is the C++ / CUDA source read line by line (``mmcv/ops/csrc``: ``cpu/nms.cpp``,
``cpu/roi_align.cpp``, ``common/cuda/roi_pool_cuda_kernel.cuh``), one Python statement per
C statement, with float32 scalars so that every operation rounds as the kernel's does.
Slow (pure Python loops): for a few dozen boxes or RoIs.
"""
import numpy as np
import torch

f32 = np.float32
FLT_MAX = np.finfo(np.float32).max


def cmax(a, b):
    """``std::max(a, b)``: ``a < b ? b : a``."""
    return b if a < b else a


def cmin(a, b):
    """``std::min(a, b)``: ``b < a ? b : a``."""
    return b if b < a else a


def nms(boxes, scores, iou_threshold, offset):
    """``nms_cpu``: indices kept, best score first."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    b = boxes.numpy().astype(np.float32)
    order = scores.sort(0, descending=True)[1].numpy()  # the kernel's call
    threshold, off = f32(iou_threshold), f32(offset)
    areas = [(b[i, 2] - b[i, 0] + off) * (b[i, 3] - b[i, 1] + off) for i in range(len(b))]
    select = [True] * len(b)
    for _i in range(len(b)):
        if not select[_i]:
            continue
        i = order[_i]
        for _j in range(_i + 1, len(b)):
            if not select[_j]:
                continue
            j = order[_j]
            xx1, yy1 = cmax(b[i, 0], b[j, 0]), cmax(b[i, 1], b[j, 1])
            xx2, yy2 = cmin(b[i, 2], b[j, 2]), cmin(b[i, 3], b[j, 3])
            w = cmax(f32(0), xx2 - xx1 + off)
            h = cmax(f32(0), yy2 - yy1 + off)
            inter = w * h
            with np.errstate(invalid='ignore', divide='ignore'):
                ovr = inter / (areas[i] + areas[j] - inter)
            if ovr > threshold:
                select[_j] = False
    return torch.from_numpy(order[np.array(select)])


def roi_geometry(roi, spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio):
    offset = f32(0.5) if aligned else f32(0)
    scale = f32(spatial_scale)
    start_w, start_h = roi[1] * scale - offset, roi[2] * scale - offset
    end_w, end_h = roi[3] * scale - offset, roi[4] * scale - offset
    width, height = end_w - start_w, end_h - start_h
    if aligned:
        assert width >= 0 and height >= 0
    else:
        width, height = cmax(width, f32(1)), cmax(height, f32(1))
    bin_h, bin_w = height / f32(pooled_h), width / f32(pooled_w)
    grid_h = sampling_ratio if sampling_ratio > 0 else int(np.ceil(height / f32(pooled_h)))
    grid_w = sampling_ratio if sampling_ratio > 0 else int(np.ceil(width / f32(pooled_w)))
    return start_h, start_w, bin_h, bin_w, grid_h, grid_w


def sample(start, p, bin_size, i, grid):
    """``roi_start + p * bin_size + (i + .5f) * bin_size / grid``."""
    return start + f32(p) * bin_size + f32(i + 0.5) * bin_size / f32(grid)


def bilinear(height, width, y, x):
    """``bilinear_interpolate_gradient``: the four cells and weights; ``None`` outside."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return None
    if y <= 0:
        y = f32(0)
    if x <= 0:
        x = f32(0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = f32(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = f32(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - f32(y_low), x - f32(x_low)
    hy, hx = f32(1. - float(ly)), f32(1. - float(lx))  # ``T hy = 1. - ly``: a double
    return ((y_low, x_low, hy * hx), (y_low, x_high, hy * lx), (y_high, x_low, ly * hx),
            (y_high, x_high, ly * lx))


def roi_align_forward(feats, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio,
                      pool_mode, aligned):
    """``ROIAlignForward``: output, argmax_y, argmax_x (the last two: max mode)."""
    x_in, r = feats.numpy(), rois.numpy()
    channels, height, width = x_in.shape[1:]
    out = np.zeros((len(r), channels, pooled_h, pooled_w), np.float32)
    arg_y, arg_x = np.zeros_like(out), np.zeros_like(out)
    for n, roi in enumerate(r):
        start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry(
            roi, spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio)
        count = f32(max(grid_h * grid_w, 1))
        plane = x_in[int(roi[0])]
        for c in range(channels):
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    total, maxval, my, mx = f32(0), f32(-10000), f32(-1), f32(-1)
                    for iy in range(grid_h):
                        y = sample(start_h, ph, bin_h, iy, grid_h)
                        for ix in range(grid_w):
                            x = sample(start_w, pw, bin_w, ix, grid_w)
                            corners = bilinear(height, width, y, x)
                            if corners is None:  # pre_calc: positions 0, weights 0
                                corners = [(0, 0, f32(0))] * 4
                            val = f32(0)
                            for k, (yy, xx, w) in enumerate(corners):
                                term = w * plane[c, yy, xx]
                                val = term if k == 0 else val + term
                            if val > maxval:
                                maxval, my, mx = val, y, x
                            total = total + val
                    if pool_mode == 0:
                        out[n, c, ph, pw], arg_y[n, c, ph, pw], arg_x[n, c, ph, pw] = maxval, my, mx
                    else:
                        out[n, c, ph, pw] = total / count
    return torch.from_numpy(out), torch.from_numpy(arg_y), torch.from_numpy(arg_x)


def roi_align_backward(grad_output, rois, arg_y, arg_x, input_shape, spatial_scale,
                       sampling_ratio, pool_mode, aligned):
    """``ROIAlignBackward``: the input gradient, added in the kernel's order."""
    g, r = grad_output.numpy(), rois.numpy()
    _, channels, pooled_h, pooled_w = g.shape
    height, width = input_shape[2:]
    grad = np.zeros(input_shape, np.float32)
    for n, roi in enumerate(r):
        start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry(
            roi, spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio)
        count = f32(grid_h * grid_w)
        b = int(roi[0])
        for c in range(channels):
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    this = g[n, c, ph, pw]
                    if pool_mode == 0:
                        y, x = arg_y[n, c, ph, pw].item(), arg_x[n, c, ph, pw].item()
                        points = [] if y == -1 else [(f32(y), f32(x), None)]
                    else:
                        points = [(sample(start_h, ph, bin_h, iy, grid_h),
                                   sample(start_w, pw, bin_w, ix, grid_w), count)
                                  for iy in range(grid_h) for ix in range(grid_w)]
                    for y, x, cnt in points:
                        corners = bilinear(height, width, y, x)
                        if corners is None:
                            continue
                        for yy, xx, w in corners:
                            add = this * w if cnt is None else this * w / cnt
                            grad[b, c, yy, xx] = grad[b, c, yy, xx] + add
    return torch.from_numpy(grad)


def roi_pool_forward(feats, rois, pooled_h, pooled_w, spatial_scale):
    """``roi_pool_forward_cuda_kernel``: output and argmax (int32), from zeros."""
    x_in, r = feats.numpy(), rois.numpy()
    channels, height, width = x_in.shape[1:]
    out = np.zeros((len(r), channels, pooled_h, pooled_w), np.float32)
    argmax = np.zeros(out.shape, np.int32)
    scale = f32(spatial_scale)
    for n, roi in enumerate(r):
        x1, y1 = roi[1] * scale, roi[2] * scale
        x2, y2 = (roi[3] + f32(1)) * scale, (roi[4] + f32(1)) * scale
        roi_w, roi_h = x2 - x1, y2 - y1
        if roi_w <= 0 or roi_h <= 0:
            continue
        bin_w, bin_h = roi_w / f32(pooled_w), roi_h / f32(pooled_h)
        plane = x_in[int(roi[0])]
        for c in range(channels):
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    bx1 = min(max(int(np.floor(f32(pw) * bin_w + x1)), 0), width)
                    by1 = min(max(int(np.floor(f32(ph) * bin_h + y1)), 0), height)
                    bx2 = min(max(int(np.ceil(f32(pw + 1) * bin_w + x1)), 0), width)
                    by2 = min(max(int(np.ceil(f32(ph + 1) * bin_h + y1)), 0), height)
                    empty = by2 <= by1 or bx2 <= bx1
                    best, idx = (f32(0) if empty else -FLT_MAX), -1
                    for h in range(by1, by2):
                        for w in range(bx1, bx2):
                            if plane[c, h, w] > best:
                                best, idx = plane[c, h, w], h * width + w
                    out[n, c, ph, pw], argmax[n, c, ph, pw] = best, idx
    return torch.from_numpy(out), torch.from_numpy(argmax)


def roi_pool_backward(grad_output, rois, argmax, input_shape):
    """``roi_pool_backward_cuda_kernel``, one bin after another."""
    g, r, a = grad_output.numpy(), rois.numpy(), argmax.numpy()
    grad = np.zeros(input_shape, np.float32)
    flat = grad.reshape(input_shape[0], input_shape[1], -1)
    for n, c, ph, pw in np.ndindex(*g.shape):
        if a[n, c, ph, pw] != -1:
            cell = (int(r[n, 0]), c, a[n, c, ph, pw])
            flat[cell] = flat[cell] + g[n, c, ph, pw]
    return torch.from_numpy(grad)
