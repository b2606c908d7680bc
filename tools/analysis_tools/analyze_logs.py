#!/usr/bin/env python
"""Plot loss / mAP curves of training runs, or report their iteration times, from the
JSON log a run writes (WORK_DIR/<timestamp>/vis_data/<timestamp>.json).

    python tools/analysis_tools/analyze_logs.py plot_curve LOG.json [LOG.json ...]
        [--keys loss_cls loss_bbox] [--legend ...] [--title T] [--out curves.png]
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG.json [--include-outliers]

mmdet's own tools/analysis_tools/analyze_logs.py, same flags, same behaviour, with this
checkout's frcnn_plugin imported first (configs find our components, checkpoints and
result files load under torch >= 2.6).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from frcnn_plugin.utils.mmdet_tools import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/analyze_logs.py')
