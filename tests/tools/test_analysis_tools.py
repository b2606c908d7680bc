"""tools/analysis_tools/: mmdet's browse_dataset, analyze_logs, confusion_matrix and
analyze_results on KittiTiny with our model (a tiny checkpoint trained here)."""
import pickle

import pytest
from kitti_small import run_tool, write_small_config

# frcnn_kitti_tiny.py (every component ours) at 400 x 121, made small: fc6 / fc7 of 64
# (not 4096), no pretrained weights, 2 epochs of 1 iteration, evaluated after each.
OVERRIDES = """
model = dict(backbone=dict(init_cfg=None),
             roi_head=dict(bbox_head=dict(fc_out_channels=64)))
train_cfg = dict(max_epochs=2, val_interval=1)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, begin=0, end=2, milestones=[2])]
default_hooks = dict(checkpoint=dict(save_optimizer=False))
"""
TRAIN_IDS, VAL_IDS = ['000000', '000001'], ['000050', '000068']


@pytest.fixture(scope='module')
def config(repo, kitti_tiny_root, tmp_path_factory):
    return write_small_config(tmp_path_factory.mktemp('analysis') / 'small.py',
                              repo / 'configs/frcnn_kitti_tiny.py', kitti_tiny_root,
                              TRAIN_IDS, VAL_IDS, scale=(400, 160), overrides=OVERRIDES)


@pytest.fixture(scope='module')
def trained(config, repo, python):
    """The tiny run, its JSON log and tools/test.py's results on the 2 val images."""
    work_dir = config.parent / 'work'
    run_tool(python, repo, 'tools/train.py', config, '--work-dir', work_dir)
    json_log, = work_dir.glob('*/vis_data/[0-9]*.json')
    results = work_dir / 'results.pkl'
    run_tool(python, repo, 'tools/test.py', config, work_dir / 'epoch_2.pth',
             '--work-dir', work_dir, '--out', results)
    return work_dir, json_log, results


def test_browse_dataset_draws_the_training_images(config, repo, python, tmp_path):
    log = run_tool(python, repo, 'tools/analysis_tools/browse_dataset.py', config,
                   '--output-dir', tmp_path, '--not-show')
    assert sorted(p.name for p in tmp_path.iterdir()) == [f'{i}.jpeg' for i in TRAIN_IDS], log


@pytest.mark.slow
def test_analyze_logs_plots_loss_and_map_curves(trained, repo, python, tmp_path):
    _, json_log, _ = trained
    log = run_tool(python, repo, 'tools/analysis_tools/analyze_logs.py', 'plot_curve',
                   json_log, '--keys', 'loss_cls', 'mAP', '--out', tmp_path / 'curves.png',
                   '--backend', 'Agg')
    assert 'metric is loss_cls' in log and 'metric is mAP' in log
    assert (tmp_path / 'curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_confusion_matrix_of_test_results(trained, config, repo, python):
    work_dir, _, results = trained
    with open(results, 'rb') as f:
        assert [r['img_id'] for r in pickle.load(f)] == VAL_IDS
    run_tool(python, repo, 'tools/analysis_tools/confusion_matrix.py', config, results,
             work_dir / 'confusion', '--score-thr', '0.0')
    assert (work_dir / 'confusion' / 'confusion_matrix.png').stat().st_size > 0


@pytest.mark.slow
def test_analyze_results_draws_best_and_worst_images(trained, config, repo, python):
    work_dir, _, results = trained
    show_dir = work_dir / 'analyzed'
    run_tool(python, repo, 'tools/analysis_tools/analyze_results.py', config, results,
             show_dir, '--topk', '1')
    for kind in ('good', 'bad'):
        assert len(list((show_dir / kind).glob('*.jpeg'))) == 1, kind
