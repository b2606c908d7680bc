#!/usr/bin/env python
"""Test (and evaluate) a detector: mmdet's own tools/test.py, same flags, same behaviour.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl] [--show]
        [--show-dir DIR] [--wait-time S] [--cfg-options KEY=VALUE ...] [--launcher ...] [--tta]

This checkout's frcnn_plugin is imported first, whatever else is installed, so
configs find our components and checkpoints load under torch >= 2.6. Missing test data
stops it before mmdet's tool starts, with one line naming the path and the command
that provides it.

A CHECKPOINT ending in ``.onnx`` (``tools/export.py``) is run by onnxruntime through the
same test pipeline, evaluator and metric lines: the config's runner becomes
``ScratchOnnxRuntimeRunner`` (frcnn_plugin.deploy), whose model is the file.
"""
import os.path as osp
import sys

import env_check  # first: without the environment, one line instead of a traceback

env_check.require_environment()
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from frcnn_plugin.utils.mmdet_tools import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    positional = [arg for arg in sys.argv[1:3] if not arg.startswith('-')]
    if len(positional) == 2 and positional[1].endswith('.onnx'):
        from frcnn_plugin.deploy import UnloadableOnnxModel, open_onnx_model
        try:  # a file onnxruntime cannot run: one line now, not a traceback in the runner
            open_onnx_model(positional[1])
        except UnloadableOnnxModel as error:
            sys.exit(f'tools/test.py: {error}')
        sys.argv += ['--cfg-options', 'runner_type=ScratchOnnxRuntimeRunner']
    run_mmdet_tool('test.py', loaders=('test_dataloader',))
