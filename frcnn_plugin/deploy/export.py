"""Export a config's detector to one ONNX file: :class:`.ExportableFasterRCNN` through
``torch.onnx.export(..., dynamo=True)`` with the translations of :mod:`.onnx_ops`,
then ``onnx.checker`` with ``full_check`` and a check that every node is in the default
ONNX domain."""
import json
import os
import os.path as osp
from typing import Optional

import torch

from . import onnx_ops
from .exportable_detector import ExportableFasterRCNN

INPUT_NAMES = ['image', 'img_shape']
OUTPUT_NAMES = ['bboxes', 'scores', 'labels']


def export_detector(detector: torch.nn.Module, out: str, example_size=(320, 320),
                    dataset_meta: Optional[dict] = None) -> 'onnx.ModelProto':  # noqa: F821
    """Write ``detector`` (ours, eval mode, on the CPU) to ``out``; inputs ``image (1, 3,
    H, W)`` float (any ``H, W``) and ``img_shape (2,)`` int64, outputs ``bboxes (K, 4)``,
    ``scores (K,)``, ``labels (K,)`` (:class:`.ExportableFasterRCNN`). The class names of
    ``dataset_meta`` go into the file's metadata (``classes``, JSON). Returns the
    checked model."""
    import onnx

    wrapper = ExportableFasterRCNN(detector).eval()
    height, width = example_size
    example = (torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0)),
               torch.tensor([height, width]))
    dynamic = torch.export.Dim.DYNAMIC
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper, example, dynamo=True, opset_version=onnx_ops.OPSET,
            custom_translation_table=onnx_ops.ONNX_TRANSLATIONS,
            dynamic_shapes=({2: dynamic, 3: dynamic}, None),
            input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, verbose=False)
    model = program.model_proto
    if dataset_meta and dataset_meta.get('classes'):
        entry = model.metadata_props.add()
        entry.key, entry.value = 'classes', json.dumps(list(dataset_meta['classes']))
    check_standard(model)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    onnx.save(model, out)
    return model


def export_config(cfg, checkpoint: str, out: str) -> str:
    """Build ``cfg``'s detector with ``checkpoint``'s weights (on the CPU), export it to
    ``out`` (:func:`export_detector`) and return the one-line summary: opset, file
    size, the check passed."""
    from ..utils.detector import load_detector

    detector = load_detector(cfg, checkpoint, 'cpu')
    model = export_detector(detector, out, dataset_meta=detector.dataset_meta)
    size = os.path.getsize(out) / 2**20
    return (f'opset {onnx_ops.OPSET}, {size:.1f} MB, {len(model.graph.node)} nodes, '
            'onnx.checker full_check passed, every node in the default ONNX domain')


def check_standard(model) -> None:
    """``onnx.checker.check_model(full_check=True)`` (types and shapes inferred), and no
    node outside the default domain nor any local function: ``ValueError`` otherwise."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    foreign = sorted({f'{node.domain}::{node.op_type}' for node in model.graph.node
                      if node.domain not in ('', 'ai.onnx')})
    if foreign or model.functions:
        raise ValueError(f'the graph uses non-standard operators: '
                         f'{foreign + [f.name for f in model.functions]}')
