"""An exported detector (``tools/export.py``) run by onnxruntime behind mmdet's detector
interface, so that mmengine's test loop, the config's evaluator and mmdet's
``inference_detector`` run it as they run the PyTorch model."""
import json
import os
from typing import Optional

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.structures import InstanceData
from torch import Tensor

from ..boxes import rescale_boxes
from .export import INPUT_NAMES


class UnloadableOnnxModel(ValueError):
    """An ``.onnx`` file that onnxruntime cannot run as an exported detector (one line,
    naming the file)."""


def open_onnx_model(onnx_file: str, num_threads: int = 0):
    """``(onnxruntime.InferenceSession, class names or None)`` of an exported model;
    :class:`UnloadableOnnxModel` for a missing file, one onnxruntime cannot load (not a
    protobuf, an unknown operator...), one without the graph's inputs, or ``classes``
    metadata that is not a JSON list of names."""
    import onnxruntime

    if not os.path.isfile(onnx_file):
        raise UnloadableOnnxModel(f'ONNX model not found: {onnx_file}')
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    try:
        session = onnxruntime.InferenceSession(onnx_file, options,
                                               providers=['CPUExecutionProvider'])
    except Exception as error:  # onnxruntime's own error types, one per failure kind
        reason = str(error).strip().split('\n')[0]
        raise UnloadableOnnxModel(f'{onnx_file}: onnxruntime cannot load it: {reason}')
    inputs = [i.name for i in session.get_inputs()]
    if inputs != INPUT_NAMES:
        raise UnloadableOnnxModel(f'{onnx_file}: inputs {inputs}, not those of '
                                  f'tools/export.py {INPUT_NAMES}')
    metadata = session.get_modelmeta().custom_metadata_map
    if 'classes' not in metadata:
        return session, None
    try:
        classes = json.loads(metadata['classes'])
    except json.JSONDecodeError:
        classes = None
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise UnloadableOnnxModel(f'{onnx_file}: its "classes" metadata is not a JSON list '
                                  'of names')
    return session, tuple(classes)


@MODELS.register_module()
class ScratchOnnxRuntimeDetector(BaseDetector):
    """``predict(batch_inputs, batch_data_samples, rescale=True)`` as
    ``TwoStageDetector.predict``: each image of the preprocessed batch ``(B, 3, H, W)``
    (its data preprocessor: the config's) runs through the ONNX graph with its
    ``img_shape``; with ``rescale`` the boxes are then divided by the image's
    ``scale_factor`` (:func:`~frcnn_plugin.boxes.rescale_boxes`, as our heads do).

    The PyTorch model rescales the boxes of its box head before their per-class NMS,
    the graph after it: the kept boxes differ only where an IoU lies within float
    rounding of the threshold (never when ``scale_factor`` is 1).

    Args:
        onnx_file: the exported model.
        data_preprocessor: the config's ``model.data_preprocessor``.
        num_threads: onnxruntime's intra-op threads; 0: its default (one per core).
    """

    def __init__(self, onnx_file: str, data_preprocessor: Optional[dict] = None,
                 num_threads: int = 0, init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.session, self.onnx_classes = open_onnx_model(onnx_file, num_threads)

    def run(self, image: Tensor, img_shape) -> InstanceData:
        """One ``(1, 3, H, W)`` image -> ``InstanceData(bboxes, scores, labels)`` in the
        pixels of its ``img_shape`` ``(h, w)``."""
        bboxes, scores, labels = self.session.run(None, {
            'image': image.detach().cpu().float().contiguous().numpy(),
            'img_shape': torch.tensor(img_shape[:2], dtype=torch.long).numpy()})
        return InstanceData(bboxes=torch.from_numpy(bboxes), scores=torch.from_numpy(scores),
                            labels=torch.from_numpy(labels))

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        for i, sample in enumerate(batch_data_samples):
            results = self.run(batch_inputs[i:i + 1], sample.img_shape)
            if rescale and results.bboxes.numel():
                results.bboxes = rescale_boxes(results.bboxes, sample.scale_factor)
            sample.pred_instances = results.to(batch_inputs.device)
        return batch_data_samples

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList = None):
        raise NotImplementedError('an ONNX model gives detections only (mode="predict")')

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList):
        raise NotImplementedError('an ONNX model cannot be trained')

    def extract_feat(self, batch_inputs: Tensor):
        raise NotImplementedError('the ONNX graph gives detections, not features')


def load_onnx_detector(cfg, onnx_file: str, num_threads: int = 0) -> ScratchOnnxRuntimeDetector:
    """:func:`~frcnn_plugin.utils.detector.load_detector` for an exported model: the
    detector in eval mode with ``cfg``'s data preprocessor, ``dataset_meta`` (classes
    from the file's metadata, else from the config's test dataset; the config's
    palette, else ``'random'``) and ``cfg``."""
    from mmengine.registry import init_default_scope

    from ..utils.detector import config_dataset_meta

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = ScratchOnnxRuntimeDetector(onnx_file, cfg.model.get('data_preprocessor'),
                                       num_threads=num_threads)
    configured = config_dataset_meta(cfg)
    classes = model.onnx_classes or tuple(configured.get('classes') or ())
    if not classes:
        raise ValueError('no class names: neither the ONNX file\'s metadata nor the '
                         'config\'s datasets name them')
    model.dataset_meta = dict(classes=classes, palette=configured.get('palette') or 'random')
    model.cfg = cfg
    return model.eval()
