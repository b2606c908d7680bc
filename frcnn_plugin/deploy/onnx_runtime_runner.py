"""mmengine's ``Runner`` for an exported model: ``load_from`` names the ``.onnx`` file,
which becomes the model (:class:`.ScratchOnnxRuntimeDetector` with the config's data
preprocessor) instead of weights loaded into the config's model. mmdet's
``tools/test.py`` builds it when the config says ``runner_type='ScratchOnnxRuntimeRunner'``
(what our ``tools/test.py`` adds for a ``.onnx`` checkpoint), so the config's test
dataloader, evaluator and metric lines are mmdet's."""
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .onnx_runtime_detector import ScratchOnnxRuntimeDetector


@RUNNERS.register_module()
class ScratchOnnxRuntimeRunner(Runner):

    def build_model(self, model):
        if isinstance(model, dict):
            if not self._load_from:
                raise ValueError('ScratchOnnxRuntimeRunner needs load_from: the .onnx file')
            model = ScratchOnnxRuntimeDetector(
                self._load_from, data_preprocessor=model.get('data_preprocessor'))
        return super().build_model(model)

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):
        """Nothing to load: the model is the file."""
        return {}
