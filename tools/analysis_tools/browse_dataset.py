#!/usr/bin/env python
"""Draw a config's training images as the model gets them (after the train pipeline:
resized, flipped) with their ground-truth boxes.

    python tools/analysis_tools/browse_dataset.py CONFIG [--output-dir DIR] [--not-show]
        [--show-interval S] [--cfg-options KEY=VALUE ...]

mmdet's own tools/analysis_tools/browse_dataset.py, same flags, same behaviour, with this
checkout's frcnn_plugin imported first (configs find our components, checkpoints and
result files load under torch >= 2.6).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from frcnn_plugin.utils.mmdet_tools import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/browse_dataset.py')
