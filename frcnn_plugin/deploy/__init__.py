"""Deployment: the detector exported to ONNX with standard operators only
(:mod:`.export`), and the exported file run by onnxruntime as a detector
(:mod:`.onnx_runtime_detector`, :mod:`.onnx_runtime_runner`). Needs the ``export`` extra
(onnx, onnxruntime, onnxscript)."""
from .onnx_runtime_detector import ScratchOnnxRuntimeDetector, UnloadableOnnxModel, open_onnx_model
from .onnx_runtime_runner import ScratchOnnxRuntimeRunner

__all__ = ['ScratchOnnxRuntimeDetector', 'ScratchOnnxRuntimeRunner', 'UnloadableOnnxModel',
           'open_onnx_model']
