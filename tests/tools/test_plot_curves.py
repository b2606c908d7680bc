"""tools/plot_curves.py: mmengine's logged scalars of a run -> a PNG of losses and mAP."""
import json
import subprocess

import mmcv


def write_run(work_dir, timestamp, rows):
    vis = work_dir / timestamp / 'vis_data'
    vis.mkdir(parents=True)
    (vis / f'{timestamp}.json').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (vis / 'scalars.json').write_text('')


def test_plots_the_latest_run_with_a_validation(repo, python, tmp_path):
    train = [dict(lr=0.01, loss=2.0 / (i + 1), loss_cls=1.0 / (i + 1), epoch=e, iter=i,
                  step=i) for e, i in ((1, 5), (1, 10), (2, 15), (2, 20))]
    val = [{'pascal_voc/mAP': 0.3, 'step': 1}, {'pascal_voc/mAP': 0.6, 'step': 2}]
    write_run(tmp_path, '20260101_000000', train + val)
    write_run(tmp_path, '20260102_000000', train[:1])  # a later run without validation
    result = subprocess.run([python, 'tools/plot_curves.py', str(tmp_path)], cwd=repo,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert '4 training logs, 2 validations' in result.stdout
    assert '20260101_000000.json' in result.stdout
    image = mmcv.imread(str(tmp_path / 'curves.png'))
    assert image is not None and image.shape[1] > 500


def test_no_run_is_a_clear_error(repo, python, tmp_path):
    result = subprocess.run([python, 'tools/plot_curves.py', str(tmp_path)], cwd=repo,
                            capture_output=True, text=True)
    assert result.returncode != 0 and 'no training run with a validation' in result.stderr
