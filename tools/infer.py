#!/usr/bin/env python
"""Detect objects in images with a trained detector and draw them.

    python tools/infer.py CONFIG CHECKPOINT IMAGE [IMAGE ...] --out-dir DIR
        [--score-thr 0.3] [--json] [--device cpu]

CHECKPOINT may be a ``.onnx`` file written by ``tools/export.py``: onnxruntime then runs
it (on the CPU) after the same pipeline and data preprocessor, its class names from
the file.

For each image, ``DIR/<image file name>`` is the image with its detections drawn by
mmdet's ``DetLocalVisualizer`` (boxes, class names, scores). With ``--json``,
``DIR/<image name without extension>.json`` holds the same detections, in the original
image's pixels, as mmdet's ``DetInferencer`` writes them plus the class names::

    {"image": "path/to/000000.jpeg", "width": 1224, "height": 370, "score_thr": 0.3,
     "bboxes": [[x1, y1, x2, y2], ...], "scores": [...], "labels": [...],
     "class_names": [...]}

Only detections scoring above ``--score-thr`` are drawn and written. The class names
come from the checkpoint's ``meta['dataset_meta']`` (what mmengine's runner saves),
else from CONFIG's test dataset; the model is built and loaded as tools/explain.py and
tools/diagnose.py load it (``frcnn_plugin.utils.detector.load_detector``) and run by
mmdet's ``inference_detector`` on CONFIG's test pipeline. This checkout's frcnn_plugin
is imported first, so our components are registered and our checkpoints load under
torch >= 2.6.
"""
import argparse
import json
import os
import os.path as osp
import sys

import env_check  # first: without the environment, one line instead of a traceback

env_check.require_environment()

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='detector config file')
    parser.add_argument('checkpoint', help='checkpoint file (or URL), or a .onnx model')
    parser.add_argument('images', nargs='+', metavar='IMAGE', help='image files')
    parser.add_argument('--out-dir', required=True, help='where the results are written')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='keep detections scoring above this (default 0.3)')
    parser.add_argument('--json', action='store_true',
                        help='also write the detections of each image as JSON')
    parser.add_argument('--device', default=None,
                        help='e.g. cpu or cuda:0 (default: cuda:0 if available, else cpu)')
    args = parser.parse_args(argv)
    # Fail on a wrong path now, not after building the model.
    if not osp.isfile(args.config):
        parser.error(f'config not found: {args.config}')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint not found: {args.checkpoint}')
    for image in args.images:
        if not osp.isfile(image):
            parser.error(f'image not found: {image}')
    names = [osp.basename(image) for image in args.images]
    if len(set(names)) != len(names):
        parser.error('two images share a file name; their outputs would overwrite each other')
    return args


def detections_to_dict(pred_instances, class_names, score_thr: float) -> dict:
    """Columns of the detections scoring above ``score_thr`` (DetInferencer's keys)."""
    keep = pred_instances[pred_instances.scores > score_thr]
    labels = keep.labels.tolist()
    return dict(bboxes=keep.bboxes.tolist(), scores=keep.scores.tolist(), labels=labels,
                class_names=[class_names[label] for label in labels])


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, REPO)
    import mmcv
    import torch
    from mmcv.transforms import Compose
    from mmdet.apis import inference_detector
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.config import Config

    import frcnn_plugin  # noqa: F401  our registries; mmengine checkpoints under torch >= 2.6
    from frcnn_plugin.utils.detector import load_detector
    from frcnn_plugin.utils.pipelines import inference_pipeline

    device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    cfg = Config.fromfile(args.config)
    if args.checkpoint.endswith('.onnx'):
        from frcnn_plugin.deploy.onnx_runtime_detector import (
            UnloadableOnnxModel,
            load_onnx_detector,
        )
        try:
            model = load_onnx_detector(cfg, args.checkpoint)
        except UnloadableOnnxModel as error:
            sys.exit(f'tools/infer.py: {error}')
    else:
        model = load_detector(cfg, args.checkpoint, device)
    pipeline = Compose(inference_pipeline(cfg))
    visualizer = DetLocalVisualizer(name='frcnn_infer')
    visualizer.dataset_meta = model.dataset_meta
    class_names = model.dataset_meta['classes']
    os.makedirs(args.out_dir, exist_ok=True)

    for path in args.images:
        result = inference_detector(model, path, test_pipeline=pipeline)
        image = mmcv.imread(path, channel_order='rgb')
        name = osp.basename(path)
        visualizer.add_datasample(name, image, data_sample=result, draw_gt=False, show=False,
                                  pred_score_thr=args.score_thr,
                                  out_file=osp.join(args.out_dir, name))
        detections = detections_to_dict(result.pred_instances.cpu(), class_names,
                                        args.score_thr)
        if args.json:
            height, width = image.shape[:2]
            record = dict(image=path, width=width, height=height, score_thr=args.score_thr,
                          **detections)
            with open(osp.join(args.out_dir, osp.splitext(name)[0] + '.json'), 'w') as f:
                json.dump(record, f)
        print(f'{path}: {len(detections["scores"])} detections above {args.score_thr} '
              f'-> {osp.join(args.out_dir, name)}')


if __name__ == '__main__':
    main()
