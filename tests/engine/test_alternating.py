"""frcnn_plugin.engine.alternating: the stage configs, the proposal pipeline, the freezing hook.

No training here (tests/tools/test_train_alternating.py runs the tool).
"""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.dataset import Compose
from PIL import Image

from frcnn_plugin.engine import alternating as alt
from frcnn_plugin.engine import stage_weights
from frcnn_plugin.engine.hooks import FreezeModulesHook

PROPOSALS = {'train': '/p/train.pkl', 'val': '/p/val.pkl'}


@pytest.fixture(scope='module')
def cfg(repo):
    cfg = Config.fromfile(repo / 'configs' / 'frcnn_kitti_tiny.py')
    # Small heads: the models below are built, not trained.
    cfg.merge_from_dict({'model.roi_head.bbox_head.fc_out_channels': 64})
    return cfg


def test_default_stage_epochs_follow_alt_opt_ratio():
    assert alt.default_stage_epochs(12) == [4, 2, 4, 2]
    assert alt.default_stage_epochs(24) == [8, 4, 8, 4]
    assert alt.default_stage_epochs(1) == [1, 1, 1, 1]  # every stage trains


def test_scale_schedule_scales_epochs_and_keeps_iteration_warmup(cfg):
    out = alt.scale_schedule(cfg.param_scheduler, 4, 12)
    warmup, steps = out
    assert warmup == cfg.param_scheduler[0]  # by_epoch=False: iterations, unchanged
    assert (steps.begin, steps.end, steps.milestones) == (0, 4, [3, 4])
    assert cfg.param_scheduler[1].milestones == [8, 11]  # the input is not modified
    one = alt.scale_schedule(dict(type='MultiStepLR', milestones=[8, 11], end=12), 1, 12)
    assert one == [dict(type='MultiStepLR', milestones=[1, 1], end=1)]


def test_rpn_config_stage1_and_stage3(cfg):
    s1 = alt.rpn_config(cfg, 4, '/w/stage1_rpn')
    m = s1.model
    assert m.type == 'RPN' and m.rpn_head == cfg.model.rpn_head
    assert m.train_cfg == dict(rpn=cfg.model.train_cfg.rpn)
    assert m.test_cfg == dict(rpn=cfg.model.test_cfg.rpn)
    assert m.backbone == cfg.model.backbone  # ImageNet init as configured
    assert s1.load_from is None and s1.work_dir == '/w/stage1_rpn'
    assert s1.train_cfg.max_epochs == 4 and s1.train_cfg.val_interval == 4
    assert s1.val_dataloader is None and s1.test_dataloader is None
    assert s1.custom_imports.imports == ['frcnn_plugin']
    assert not any(h['type'] == 'FreezeModulesHook' for h in s1.get('custom_hooks', []))
    assert cfg.model.type == 'FasterRCNN' and cfg.train_cfg.max_epochs == 12  # untouched

    s3 = alt.rpn_config(cfg, 4, '/w/stage3_rpn', frozen=True)
    assert s3.model.backbone.init_cfg is None  # weights come from stage 2
    assert cfg.model.backbone.init_cfg is not None
    assert dict(type='FreezeModulesHook', modules=['backbone', 'neck']) in s3.custom_hooks


def test_fast_rcnn_config_loads_proposals_through_the_geometry(cfg):
    s2 = alt.fast_rcnn_config(cfg, 2, '/w/stage2', PROPOSALS, 2000)
    m = s2.model
    assert m.type == 'FastRCNN' and m.roi_head == cfg.model.roi_head
    assert 'rpn_head' not in m and m.train_cfg == dict(rcnn=cfg.model.train_cfg.rcnn)
    assert m.backbone.init_cfg == cfg.model.backbone.init_cfg and s2.load_from is None
    train = s2.train_dataloader.dataset
    assert train.proposal_file == '/p/train.pkl'
    assert [t['type'] for t in train.pipeline] == [
        'LoadImageFromFile', 'LoadProposals', 'LoadAnnotations', 'ProposalBroadcaster',
        'PackDetInputs']
    assert train.pipeline[1].num_max_proposals == 2000
    assert [t['type'] for t in train.pipeline[3].transforms] == ['Resize', 'RandomFlip']
    val = s2.val_dataloader.dataset
    assert val.proposal_file == '/p/val.pkl'
    # Validation sees as many proposals as the final detector's RPN gives at test time.
    assert val.pipeline[1] == dict(type='LoadProposals', num_max_proposals=300)
    assert s2.val_evaluator == cfg.val_evaluator and s2.train_cfg.val_interval == 2
    assert 'proposal_file' not in cfg.train_dataloader.dataset

    s4 = alt.fast_rcnn_config(cfg, 2, '/w/stage4', {'train': '/p/t.pkl'}, 500, frozen=True)
    assert s4.val_dataloader is None  # no val proposals: no validation
    assert s4.model.backbone.init_cfg is None
    assert any(h['type'] == 'FreezeModulesHook' for h in s4.custom_hooks)

    wrapped = copy.deepcopy(cfg)
    wrapped.train_dataloader.dataset = dict(type='ConcatDataset', datasets=[])
    with pytest.raises(ValueError, match='plain dataset'):
        alt.fast_rcnn_config(wrapped, 2, '/w', PROPOSALS, 2000)


def test_proposal_config_dumps_every_training_image(cfg):
    s1 = alt.rpn_config(cfg, 4, '/w/stage1_rpn')
    test = alt.proposal_config(cfg, s1, '/w/stage1_rpn/epoch_4.pth', 'train',
                               '/w/stage1_rpn/proposals/train.pkl', -1, 2000)
    assert test.load_from == '/w/stage1_rpn/epoch_4.pth'
    assert test.model.test_cfg.rpn.nms_pre == -1
    assert test.model.test_cfg.rpn.max_per_img == 2000
    assert s1.model.test_cfg.rpn.max_per_img == 300  # the stage's own config untouched
    loader = test.test_dataloader
    # Test mode: no image filtered out, no flip; one proposal entry per listed image.
    assert loader.dataset.test_mode and loader.dataset.ann_file == 'train.txt'
    assert loader.dataset.pipeline == cfg.val_dataloader.dataset.pipeline
    assert not loader.sampler.shuffle and 'batch_sampler' not in loader
    assert test.test_evaluator == dict(type='DumpProposals', output_dir='/w/stage1_rpn/proposals',
                                       proposals_file='train.pkl')
    assert test.train_dataloader is None and test.optim_wrapper is None
    val = alt.proposal_config(cfg, s1, 'c.pth', 'val', '/o/val.pkl', -1, 2000)
    assert val.test_dataloader == cfg.val_dataloader


def test_stage_weights_compose_the_end_to_end_model(cfg):
    """RPN + FastRCNN state dicts, renamed by ``take``, are exactly FasterRCNN's."""
    s1 = alt.rpn_config(cfg, 1, '/w/1')
    s2 = alt.fast_rcnn_config(cfg, 1, '/w/2', PROPOSALS, 2000)
    rpn = MODELS.build(s1.model).state_dict()
    fast = MODELS.build(s2.model).state_dict()
    e2e = MODELS.build(cfg.model).state_dict()
    final = {**stage_weights.take(fast, [*alt.SHARED, 'roi_head']),
             **stage_weights.take(rpn, ['bbox_head'], rename={'bbox_head': 'rpn_head'})}
    assert sorted(final) == sorted(e2e)
    assert all(final[k].shape == e2e[k].shape for k in e2e)
    assert stage_weights.take(rpn, ['rpn_head']) == {}  # mmdet's RPN names its head bbox_head


def test_stage_config_dumps_and_reloads(cfg, tmp_path):
    s4 = alt.fast_rcnn_config(cfg, 2, str(tmp_path), PROPOSALS, 2000, frozen=True)
    s4.dump(tmp_path / 's4.py')
    again = Config.fromfile(tmp_path / 's4.py')
    assert again.model.to_dict() == s4.model.to_dict()
    assert again.custom_hooks == s4.custom_hooks


def test_proposal_pipeline_flips_and_resizes_proposals_with_the_image(kitti_tiny_root):
    image = kitti_tiny_root / 'training' / 'image_2' / '000000.jpeg'
    width, height = Image.open(image).size  # 1224 x 370
    pipeline = alt.with_proposals([
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(612, 370), keep_ratio=False),  # x / 2, y / 1
        dict(type='RandomFlip', prob=1.0),
        dict(type='PackDetInputs')], num_max_proposals=2)
    boxes = np.array([[100, 50, 300, 150], [0, 0, width, height], [5, 5, 9, 9]], np.float32)
    out = Compose(pipeline)(dict(
        img_path=str(image),
        proposals=dict(bboxes=boxes, scores=np.array([0.9, 0.5, 0.1], np.float32))))
    sample = out['data_samples']
    assert (width, height) == (1224, 370)
    assert sample.img_shape == (370, 612) and sample.flip
    flipped = torch.tensor([[612 - 150, 50, 612 - 50, 150], [0, 0, 612, 370]])
    assert torch.allclose(sample.proposals.bboxes, flipped.float())  # top 2 only
    assert sample.proposals.scores.tolist() == pytest.approx([0.9, 0.5])


class TinyDetector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
        self.neck = None
        self.roi_head = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.roi_head(self.backbone(x).mean((2, 3))).square().sum()


@pytest.mark.parametrize('freeze', [True, False])
def test_freeze_hook_keeps_shared_layers_bit_for_bit(freeze):
    """SGD with momentum and weight decay over *all* parameters (as mmengine builds
    it) moves nothing frozen, BatchNorm statistics included; without the hook the
    same steps do move them (the check can fail)."""
    torch.manual_seed(0)
    model = TinyDetector()
    before = copy.deepcopy(model.state_dict())
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    runner = SimpleNamespace(model=model)
    hook = FreezeModulesHook(modules=['backbone', 'neck'])
    if freeze:
        hook.before_train(runner)
    for i in range(3):
        model.train()  # as the train loop does every epoch
        if freeze:
            hook.before_train_iter(runner, i)
        optim.zero_grad()
        model(torch.randn(2, 3, 8, 8)).backward()
        optim.step()
    after = model.state_dict()
    shared = [k for k in before if k.startswith('backbone.')]
    assert 'backbone.1.running_mean' in shared
    assert all(torch.equal(before[k], after[k]) for k in shared) == freeze
    assert not any(torch.equal(before[k], after[k]) for k in ('roi_head.weight', 'roi_head.bias'))
