"""tools/export.py's command line: wrong paths and a config with stock mmdet / mmcv
components are one-line errors; --cfg-options reach the exported model (its success
and the exported graph's equality are tests/deploy/test_export.py)."""
import subprocess

from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import save_checkpoint

import frcnn_plugin  # noqa: F401  registers our components


def run(python, repo, *args):
    return subprocess.run([python, 'tools/export.py', *map(str, args)], cwd=repo,
                          capture_output=True, text=True)


def test_missing_checkpoint_is_one_line(repo, python, tmp_path):
    proc = run(python, repo, 'configs/frcnn_shapes.py', tmp_path / 'none.pth',
               '--out', tmp_path / 'm.onnx')
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        f'error: checkpoint not found: {tmp_path / "none.pth"}')


def test_stock_mmdet_components_are_one_line_naming_the_first(repo, python, tmp_path):
    config = 'configs/examples/frcnn_shapes_mmdet-components.py'
    cfg = Config.fromfile(repo / config)
    model = MODELS.build(cfg.model)
    save_checkpoint({'state_dict': model.state_dict()}, str(tmp_path / 'stock.pth'))
    proc = run(python, repo, config, tmp_path / 'stock.pth', '--out', tmp_path / 'm.onnx')
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"tools/export.py: {config}: model.rpn_head is mmdet's RPNHead: only ScratchRPNHead "
        'exports to standard ONNX operators')
    assert not (tmp_path / 'm.onnx').exists()
    # --cfg-options reach the model: our RPN head back, the next stock component named.
    proc = run(python, repo, config, tmp_path / 'stock.pth', '--out', tmp_path / 'm.onnx',
               '--cfg-options', 'model.rpn_head.type=ScratchRPNHead',
               'model.rpn_head.anchor_generator.type=ScratchAnchorGenerator',
               'model.rpn_head.bbox_coder.type=ScratchDeltaXYWHBBoxCoder')
    assert proc.stderr.strip().splitlines()[-1] == (
        f"tools/export.py: {config}: model.roi_head is mmdet's StandardRoIHead: only "
        'ScratchRoIHead exports to standard ONNX operators')
