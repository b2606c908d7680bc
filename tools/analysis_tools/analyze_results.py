#!/usr/bin/env python
"""Per-image mAP of a results file written by `tools/test.py CONFIG CKPT --out
RESULTS.pkl`: the top-k best and worst images, drawn with their gts and detections to
SHOW_DIR/good/ and SHOW_DIR/bad/.

    python tools/analysis_tools/analyze_results.py CONFIG RESULTS.pkl SHOW_DIR [--topk 20]
        [--show-score-thr 0.3] [--show] [--wait-time S] [--cfg-options KEY=VALUE ...]

mmdet's own tools/analysis_tools/analyze_results.py, same flags, same behaviour, with this
checkout's frcnn_plugin imported first (configs find our components, checkpoints and
result files load under torch >= 2.6).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from frcnn_plugin.utils.mmdet_tools import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/analyze_results.py')
