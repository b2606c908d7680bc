"""tools/benchmark.py: its report's keys and table, and that each timed pair does the same
computation (a ratio of two different computations would mean nothing): the tutorials'
loop-based anchor target layer (docs/references.md) agrees with ours, and the detectors
give equal losses; a new table keeps the hand-written sections after it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

NAMES = ['anchor_generator', 'assigner', 'sampler', 'coder', 'nms', 'roi_align', 'roi_pool',
         'rpn_head', 'bbox_head', 'train_iter', 'inference', 'onnxruntime']


@pytest.fixture(scope='module')
def tools(repo):
    sys.path.insert(0, str(repo / 'tools'))
    import benchmark_cases
    import benchmark_tutorial
    yield benchmark_cases, benchmark_tutorial
    sys.path.remove(str(repo / 'tools'))


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_lists_every_name(repo, python):
    out = subprocess.run([python, 'tools/benchmark.py', '--list'], cwd=repo, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == NAMES + ['tutorial_speedup.anchor_target']


def test_report_keys_and_markdown(repo, python, tmp_path):
    report, table = tmp_path / 'r.json', tmp_path / 'docs/b.md'
    sys.path.insert(0, str(repo / 'tools'))
    try:
        from benchmark import HAND_WRITTEN
    finally:
        sys.path.remove(str(repo / 'tools'))
    kept = f'{HAND_WRITTEN}\n\n## Fast paths\n\nWritten by hand.\n'
    table.parent.mkdir()
    table.write_text('# an older table\n\n| old |\n\n' + kept)
    subprocess.run([python, 'tools/benchmark.py', '--quick', '--threads', '1',
                    '--only', 'anchor_generator,coder', '--json', str(report),
                    '--markdown', str(table)], cwd=repo, check=True, capture_output=True)
    result = json.loads(report.read_text())
    assert set(result) >= {'ratio', 'tutorial_speedup', 'cases', 'machine'}
    assert set(result['ratio']) == {'anchor_generator', 'coder'}
    assert set(result['cases']) == {'anchor_generator/fpn_800x1344',
                                    'anchor_generator/vgg_50x84',
                                    'coder/encode_200k', 'coder/decode_200k'}
    for key, case in result['cases'].items():
        assert case['ours_ms'] > 0 and case['theirs_ms'] > 0
        assert case['ratio'] == pytest.approx(case['ours_ms'] / case['theirs_ms'])
    assert result['ratio']['coder'] == max(result['cases'][f'coder/{c}']['ratio']
                                           for c in ('encode_200k', 'decode_200k'))
    assert result['machine']['quick'] is True and result['machine']['torch_threads'] == 1
    assert result['machine']['torch'] == torch.__version__
    text = table.read_text()
    assert f"torch {torch.__version__}" in text and result['machine']['date'] in text
    assert '| coder | decode_200k |' in text and '<= 1.0' in text
    # A new table replaces the old one; the hand-written part after it is kept.
    assert '| old |' not in text and text.endswith('\n\n' + kept)


def test_unknown_name_is_refused(repo, python):
    run = subprocess.run([python, 'tools/benchmark.py', '--only', 'nmss'], cwd=repo,
                         capture_output=True, text=True)
    assert run.returncode != 0 and 'nmss' in run.stderr


def test_tutorial_anchor_target_is_ours(tools, one_thread):
    """Same anchors, same inside-image anchors, same max IoU per anchor, the same
    positives before sampling (up to float32 ties, which the tutorial's float64 IoU keeps
    as exact ties), and 256 samples each."""
    _, tutorial_module = tools
    bbox = tutorial_module.zebra_boxes()
    tutorial = tutorial_module.tutorial_anchor_target(bbox, np.random.default_rng(0))
    ours = tutorial_module.OursAnchorTarget()(torch.from_numpy(bbox).float())
    mine = {k: tutorial_module.tutorial_order(ours[k]).numpy()
            for k in ('anchors', 'inside', 'max_ious', 'positive', 'labels')}
    np.testing.assert_allclose(mine['anchors'], tutorial['anchors'], atol=1e-4)
    assert tutorial['inside'].sum() == 8940  # the tutorial's printed count
    assert np.array_equal(mine['inside'], tutorial['inside'])
    np.testing.assert_allclose(mine['max_ious'], tutorial['max_ious'], atol=1e-6)
    assert not (mine['positive'] & ~tutorial['positive']).any()
    best = mine['max_ious'][mine['positive'] & (mine['max_ious'] < 0.7)]
    for iou in mine['max_ious'][tutorial['positive'] & ~mine['positive']]:
        assert np.abs(best - iou).min() < 1e-6  # a tie of a gt's best anchor
    assert mine['positive'].sum() >= 30
    for labels in (mine['labels'], tutorial['labels']):
        assert ((labels >= 0).sum() == 256
                and ((labels == 1) & ~tutorial['positive']).sum() == 0)
    assert len(ours['targets']) == (mine['labels'] == 1).sum()


@pytest.mark.parametrize('arch,size', [('r50_fpn', (224, 320)), ('vgg16', (320, 416))])
def test_detector_pairs_compute_the_same(tools, one_thread, arch, size):
    cases, _ = tools
    ours, theirs = cases.detector_pair(arch)
    assert type(ours.rpn_head).__name__ == 'ScratchRPNHead'
    assert type(theirs.rpn_head).__name__ == 'RPNHead'
    inputs, samples = cases.detector_batch(ours, *size, training=True)
    mine, ref = cases.train_losses(ours, inputs, samples), cases.train_losses(theirs, inputs,
                                                                              samples)
    assert mine.keys() == ref.keys() and 'loss_bbox' in ref
    for key in ref:
        assert mine[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-7), key
    inputs, samples = cases.detector_batch(ours, *size, training=False)
    for a, b in zip(cases.predict(ours, inputs, samples), cases.predict(theirs, inputs, samples)):
        assert torch.equal(a.pred_instances.labels, b.pred_instances.labels)
        torch.testing.assert_close(a.pred_instances.bboxes, b.pred_instances.bboxes,
                                   rtol=1e-5, atol=1e-3)


def test_cuda_device_is_refused_without_cuda(repo, python):
    run = subprocess.run([python, 'tools/benchmark.py', '--device', 'cuda', '--only', 'nms'],
                         cwd=repo, capture_output=True, text=True,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert run.returncode != 0 and '--device cuda: torch sees no CUDA device' in run.stderr
