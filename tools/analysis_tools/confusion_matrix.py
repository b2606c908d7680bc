#!/usr/bin/env python
"""Confusion matrix (classes + background) of a results file written by
`tools/test.py CONFIG CKPT --out RESULTS.pkl`, drawn to SAVE_DIR/confusion_matrix.png.

    python tools/analysis_tools/confusion_matrix.py CONFIG RESULTS.pkl SAVE_DIR [--show]
        [--score-thr 0.3] [--tp-iou-thr 0.5] [--nms-iou-thr T] [--color-theme plasma]
        [--cfg-options KEY=VALUE ...]

mmdet's own tools/analysis_tools/confusion_matrix.py, same flags, same behaviour, with this
checkout's frcnn_plugin imported first (configs find our components, checkpoints and
result files load under torch >= 2.6).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from frcnn_plugin.utils.mmdet_tools import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/confusion_matrix.py')
