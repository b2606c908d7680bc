"""The config's test pipeline, as the tools that run a detector outside a runner need it.

``tools/infer.py`` and ``tools/explain.py`` read images without annotations;
``tools/diagnose.py`` reads a dataset's annotations and wants them in the resized
image's pixels, like the anchors and the proposals.
"""
from typing import List

from mmdet.utils import get_test_pipeline_cfg


def is_load_annotations(transform: dict) -> bool:
    """``LoadAnnotations`` of any scope (``'mmdet.LoadAnnotations'``, a subclass name
    starting with it, ...)."""
    return str(transform['type']).split('.')[-1].startswith('LoadAnnotations')


def inference_pipeline(cfg) -> List[dict]:
    """The test pipeline of ``cfg`` without its ``LoadAnnotations`` steps: an image
    given at inference has no annotations (mmdet's ``DetInferencer`` drops them so)."""
    return [t for t in get_test_pipeline_cfg(cfg) if not is_load_annotations(t)]


def annotated_pipeline(cfg) -> List[dict]:
    """The test pipeline of ``cfg`` with ``LoadAnnotations`` moved right after the
    first step (loading the image), so ``Resize`` scales the gt boxes with the image.

    mmdet's test pipelines load annotations after ``Resize``: the evaluator compares
    them with detections rescaled to the original image. The stages of a detector
    work in the resized image, so an analysis of them wants the gts there too.
    """
    pipeline = get_test_pipeline_cfg(cfg)
    annotations = [t for t in pipeline if is_load_annotations(t)]
    if not annotations:
        raise ValueError('the test pipeline has no LoadAnnotations step: no gt to compare with')
    rest = [t for t in pipeline if not is_load_annotations(t)]
    return rest[:1] + annotations + rest[1:]
