"""The tools' test pipelines: without annotations (infer, explain), annotations loaded
before Resize (diagnose)."""
import pytest
from mmengine.config import Config

from frcnn_plugin.utils.pipelines import annotated_pipeline, inference_pipeline

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(1, 1)),
            dict(type='mmdet.LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]


def config(pipeline):
    return Config(dict(test_dataloader=dict(dataset=dict(type='X', pipeline=pipeline))))


def test_inference_pipeline_drops_annotations():
    assert [t['type'] for t in inference_pipeline(config(PIPELINE))] == [
        'LoadImageFromFile', 'Resize', 'PackDetInputs']


def test_annotated_pipeline_loads_annotations_first():
    assert [t['type'] for t in annotated_pipeline(config(PIPELINE))] == [
        'LoadImageFromFile', 'mmdet.LoadAnnotations', 'Resize', 'PackDetInputs']
    with pytest.raises(ValueError, match='no LoadAnnotations step'):
        annotated_pipeline(config(PIPELINE[:2] + PIPELINE[3:]))
