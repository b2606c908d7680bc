#!/usr/bin/env python
"""Export a trained detector to ONNX, standard operators only.

    python tools/export.py CONFIG CHECKPOINT --out model.onnx [--cfg-options KEY=VALUE ...]

The graph takes the preprocessed image ``image (1, 3, H, W)`` (normalised and padded
by the config's data preprocessor; any H, W) and ``img_shape (2,)`` (the resized
image's h, w inside it) and gives ``bboxes (K, 4)`` in that image's pixels, ``scores
(K,)``, ``labels (K,)``: the whole Faster R-CNN, proposal NMS, RoI pooling and per-class
NMS included (frcnn_plugin.deploy). It prints one line: the opset, the file size and
the check it passed. A component with no standard ONNX form (a stock mmdet head, an
mmcv op) is a one-line error naming it. Then ``tools/test.py CONFIG model.onnx``
evaluates it and ``tools/infer.py CONFIG model.onnx IMAGE ...`` draws its detections.
"""
import argparse
import os.path as osp
import sys

import env_check  # first: without the environment, one line instead of a traceback

env_check.require_environment()
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='detector config file')
    parser.add_argument('checkpoint', help='checkpoint file (or URL)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, KEY=VALUE as in tools/test.py')
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        parser.error(f'config not found: {args.config}')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint not found: {args.checkpoint}')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    import frcnn_plugin  # noqa: F401  our registries; mmengine checkpoints under torch >= 2.6
    from frcnn_plugin.deploy.export import export_config
    from frcnn_plugin.deploy.exportable_detector import NotExportable

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        summary = export_config(cfg, args.checkpoint, args.out)
    except NotExportable as error:
        sys.exit(f'tools/export.py: {args.config}: {error}')
    print(f'tools/export.py: wrote {args.out}: {summary}')


if __name__ == '__main__':
    main()
