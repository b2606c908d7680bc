"""tools/train_alternating.py end to end: the 4 stages on 4 KittiTiny images, small."""
import re

import mmengine
import pytest
import torch
from kitti_small import run_tool, write_small_config
from PIL import Image

from frcnn_plugin.engine import alternating as alt
from frcnn_plugin.engine import stage_weights

pytestmark = pytest.mark.slow

TRAIN_IDS = ['000000', '000001', '000002', '000003']
VAL_IDS = ['000050', '000068']

# The tutorials' VGG16 model at 320 x 192 (anchors 32-128 px to fit), fc6 / fc7 of 256 so a
# step takes seconds on a CPU; every stage one epoch of 2 iterations (batch 2).
OVERRIDES = """
model = dict(backbone=dict(init_cfg=None),
             rpn_head=dict(anchor_generator=dict(scales=[2, 4, 8])),
             roi_head=dict(bbox_head=dict(fc_out_channels=256)))
"""


@pytest.fixture(scope='module')
def trained(repo, kitti_tiny_root, python, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('alt')
    config = write_small_config(tmp / 'small.py', repo / 'configs/frcnn_kitti_tiny.py',
                                kitti_tiny_root, TRAIN_IDS, VAL_IDS, overrides=OVERRIDES)
    work_dir = tmp / 'work'
    log = run_tool(python, repo, 'tools/train_alternating.py', config, '--work-dir', work_dir,
                   '--stage-epochs', 1, 1, 1, 1)
    return config, work_dir, log


def weights(work_dir, stage, epoch=1):
    return stage_weights.read_state_dict(work_dir / stage / f'epoch_{epoch}.pth')


def under(state_dict, prefix):
    return {k: v for k, v in state_dict.items() if k.startswith(prefix + '.')}


def changed(a, b):
    """Names of the tensors of ``a`` that differ from ``b``'s (same keys required)."""
    assert a.keys() == b.keys() and a
    return {k for k in a if not torch.equal(a[k], b[k])}


def test_every_stage_trains_in_its_folder(trained):
    _, work_dir, log = trained
    for stage in alt.STAGES:
        assert (work_dir / stage / f'{stage}.py').is_file()  # the derived config
        assert (work_dir / stage / 'epoch_1.pth').is_file()
        assert len(list((work_dir / stage).glob('*/*.log'))) == 1  # its own log
    assert re.search(r'Epoch\(train\) \[1\]\[2/2\].*loss_rpn_cls', log)
    # Only the Fast R-CNN stages validate, on the val proposals.
    assert len(re.findall(r'Epoch\(val\) \[1\]\[2/2\].*pascal_voc/mAP: \d', log)) == 2
    assert (work_dir / 'final.pth').is_file()


def test_each_stage_changes_only_its_own_layers(trained):
    _, work_dir, _ = trained
    s1, s2, s3, s4 = (weights(work_dir, s) for s in alt.STAGES)
    # Stage 2: a fresh backbone, not stage 1's; conv1_x / conv2_x stay frozen by the
    # config (frozen_stages=2), conv3_1 up train in both stages.
    trained_convs = {k for k in under(s2, 'backbone') if not k.startswith(
        tuple(f'backbone.features.{i}.' for i in range(10)))}
    assert len(trained_convs) == 18
    assert trained_convs <= changed(under(s2, 'backbone'), under(s1, 'backbone'))
    # Stage 3: stage 2's backbone bit for bit; every RPN head tensor fine-tuned from stage 1's.
    assert not changed(under(s3, 'backbone'), under(s2, 'backbone'))
    assert changed(under(s3, 'bbox_head'), under(s1, 'bbox_head')) == set(under(s1, 'bbox_head'))
    # Stage 4: the same backbone again; every RoI head tensor fine-tuned from stage 2's.
    assert not changed(under(s4, 'backbone'), under(s2, 'backbone'))
    assert changed(under(s4, 'roi_head'), under(s2, 'roi_head')) == set(under(s2, 'roi_head'))
    # The frozen stages' optimizers hold no state for the shared layers.
    state = stage_weights.read_checkpoint(work_dir / 'stage4_fast_rcnn' / 'epoch_1.pth')
    assert len(state['optimizer']['state']) == len(under(s4, 'roi_head'))


def test_proposal_files_match_the_images(trained, kitti_tiny_root):
    _, work_dir, _ = trained
    for stage in ('stage1_rpn', 'stage3_rpn'):
        for split, ids in (('train', TRAIN_IDS), ('val', VAL_IDS)):
            proposals = mmengine.load(work_dir / stage / 'proposals' / f'{split}.pkl')
            # BaseDetDataset.load_proposals' keys: '<image folder>/<file name>'.
            assert sorted(proposals) == [f'image_2/{i}.jpeg' for i in ids]
            for name, p in proposals.items():
                w, h = Image.open(kitti_tiny_root / 'training' / name).size
                boxes = torch.as_tensor(p.bboxes)
                assert 0 < len(boxes) <= 2000 and len(p.scores) == len(boxes)
                assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all()
                assert (boxes[:, 3] <= h).all() and (boxes[:, 2:] > boxes[:, :2]).all()
                assert (p.scores[:-1] >= p.scores[1:]).all()  # best first
    # Stage 3's RPN is another network: other proposals.
    a = mmengine.load(work_dir / 'stage1_rpn' / 'proposals' / 'train.pkl')
    b = mmengine.load(work_dir / 'stage3_rpn' / 'proposals' / 'train.pkl')
    key = 'image_2/000000.jpeg'
    assert a[key].bboxes.shape != b[key].bboxes.shape or (a[key].bboxes != b[key].bboxes).any()


def test_final_checkpoint_is_the_end_to_end_detector(trained, repo, python, tmp_path):
    config, work_dir, _ = trained
    final = stage_weights.read_checkpoint(work_dir / 'final.pth')
    assert set(final) == {'meta', 'state_dict'}  # weights only
    assert final['meta']['dataset_meta']['classes'] == ('Car', 'Pedestrian', 'Cyclist')
    sd = final['state_dict']
    s3, s4 = weights(work_dir, 'stage3_rpn'), weights(work_dir, 'stage4_fast_rcnn')
    assert not changed(under(sd, 'backbone'), under(s4, 'backbone'))
    assert not changed(under(sd, 'roi_head'), under(s4, 'roi_head'))
    rpn3 = stage_weights.take(s3, ['bbox_head'], rename={'bbox_head': 'rpn_head'})
    assert not changed(under(sd, 'rpn_head'), rpn3)
    log = run_tool(python, repo, 'tools/test.py', config, work_dir / 'final.pth',
                   '--work-dir', tmp_path)
    assert f'Load checkpoint from {work_dir}/final.pth' in log
    assert re.search(r'Epoch\(test\) \[2/2\].*pascal_voc/mAP: \d', log)


def test_rerun_skips_finished_stages_and_resumes_the_unfinished(trained, repo, python):
    config, work_dir, _ = trained
    before = {s: weights(work_dir, s) for s in alt.STAGES[:3]}
    # Stage 4 now has 2 epochs: its epoch 1 checkpoint is a partial run.
    log = run_tool(python, repo, 'tools/train_alternating.py', config, '--work-dir', work_dir,
                   '--stage-epochs', 1, 1, 1, 2)
    for stage in alt.STAGES[:3]:
        assert f'{stage}: done ({work_dir}/{stage}/epoch_1.pth), skipped' in log
        assert not changed(weights(work_dir, stage), before[stage])
    assert 'Results are saved at' not in log  # the proposal files are kept
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Epoch(train) [1]' not in log and re.search(r'Epoch\(train\) \[2\]\[2/2\]', log)
    s4 = weights(work_dir, 'stage4_fast_rcnn', epoch=2)
    final = stage_weights.read_state_dict(work_dir / 'final.pth')
    assert not changed(under(final, 'roi_head'), under(s4, 'roi_head'))
