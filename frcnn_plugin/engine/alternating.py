"""The Faster R-CNN paper's 4-step alternating training, on mmengine's Runner.

Ren et al. (2015), sec. 3.2, and py-faster-rcnn's ``train_faster_rcnn_alt_opt.py``:

1. ``stage1_rpn``: an RPN (mmdet's ``RPN`` detector with the config's RPN head) from
   the ImageNet-initialised backbone; then its proposals for the train and val images.
2. ``stage2_fast_rcnn``: a Fast R-CNN (mmdet's ``FastRCNN``: backbone + the config's
   RoI head) on those fixed proposals, from a *fresh* ImageNet-initialised backbone.
3. ``stage3_rpn``: an RPN whose backbone (+ neck) is stage 2's, frozen; only the RPN
   head is fine-tuned (from stage 1's); then its proposals.
4. ``stage4_fast_rcnn``: the Fast R-CNN of stage 2 with the backbone still frozen; only
   the RoI head is fine-tuned, on stage 3's proposals.

Every stage is an ordinary mmengine config derived from the end-to-end ``FasterRCNN``
config (the functions below), dumped to its work dir and run by ``Runner.from_cfg``.
The result is one ``FasterRCNN`` state dict: backbone (+ neck) and RoI head of stage 4,
RPN head of stage 3 (:func:`merge_final`).
"""
import copy
import os.path as osp
from typing import Dict, List, Optional

from mmengine.config import Config, ConfigDict

from .hooks.freeze_modules_hook import SHARED

STAGES = ('stage1_rpn', 'stage2_fast_rcnn', 'stage3_rpn', 'stage4_fast_rcnn')
#: py-faster-rcnn alt-opt: 80k / 40k / 80k / 40k iterations (RPN, Fast R-CNN, RPN, Fast R-CNN).
STAGE_RATIO = (2, 1, 2, 1)
#: Modules the stage configs import: our components and :class:`FreezeModulesHook`.
IMPORTS = ['frcnn_plugin']


def default_stage_epochs(max_epochs: int) -> List[int]:
    """Split ``max_epochs`` in the alt-opt ratio 2:1:2:1 (each stage >= 1 epoch).

    >>> default_stage_epochs(12)
    [4, 2, 4, 2]
    """
    total = sum(STAGE_RATIO)
    return [max(1, round(max_epochs * r / total)) for r in STAGE_RATIO]


def scale_schedule(param_scheduler, epochs: int, max_epochs: int) -> list:
    """The config's schedulers for a stage of ``epochs`` instead of ``max_epochs``.

    Epoch-based ``begin`` / ``end`` / ``milestones`` scale proportionally (an lr step
    at 8 of 12 epochs lands at 2/3 of the stage, as py-faster-rcnn steps each stage
    at 3/4 of its length); iteration-based ones (warm-up) are kept as they are.
    """
    def scale(epoch):
        return max(1, round(epoch * epochs / max_epochs))

    schedulers = param_scheduler if isinstance(param_scheduler, list) else [param_scheduler]
    out = []
    for sched in copy.deepcopy(schedulers):
        if sched.get('by_epoch', True):
            for key in ('begin', 'end'):
                if sched.get(key):
                    sched[key] = min(scale(sched[key]), epochs)
            if 'milestones' in sched:
                sched['milestones'] = [scale(m) for m in sched['milestones']]
        out.append(sched)
    return out


def with_proposals(pipeline: list, num_max_proposals: Optional[int]) -> list:
    """The pipeline with precomputed proposals that follow the image's geometry.

    ``LoadProposals`` goes right after the image is loaded; every run of transforms
    between the loading ones and ``Pack*`` is wrapped in one ``ProposalBroadcaster``,
    which applies it to the proposals as to ``gt_bboxes`` with the same random draw
    (a flipped image gets flipped proposals).
    """
    out, run = [], []

    def flush():
        if run:
            out.append(dict(type='ProposalBroadcaster', transforms=list(run)))
            run.clear()

    for t in copy.deepcopy(pipeline):
        kind = t['type'] if isinstance(t['type'], str) else t['type'].__name__
        if kind.startswith(('Load', 'Pack')):
            flush()
            out.append(t)
            if kind.startswith('LoadImage'):
                out.append(dict(type='LoadProposals', num_max_proposals=num_max_proposals))
        else:
            run.append(t)
    flush()
    return out


def _stage_base(cfg: Config, epochs: int, work_dir: str, model: dict,
                frozen: bool) -> Config:
    """The config with ``model``, ``epochs`` and ``work_dir``; no test / val parts.
    ``frozen``: the shared layers come from an earlier stage (``load_from``, so no
    ImageNet init) and :class:`FreezeModulesHook` keeps them fixed."""
    stage = copy.deepcopy(cfg)
    stage.model = ConfigDict(copy.deepcopy(model))  # no ConfigDict shared with cfg
    stage.work_dir = work_dir
    stage.load_from = None
    stage.resume = False
    stage.custom_imports = dict(imports=IMPORTS, allow_failed_imports=False)
    max_epochs = cfg.train_cfg.max_epochs
    stage.train_cfg = dict(cfg.train_cfg, max_epochs=epochs,
                           val_interval=min(cfg.train_cfg.get('val_interval', 1), epochs))
    stage.param_scheduler = scale_schedule(cfg.param_scheduler, epochs, max_epochs)
    for part in ('val', 'test'):
        stage[f'{part}_dataloader'] = stage[f'{part}_cfg'] = stage[f'{part}_evaluator'] = None
    if frozen:
        stage.model.backbone.init_cfg = None
        stage.custom_hooks = list(stage.get('custom_hooks', [])) + [
            dict(type='FreezeModulesHook', modules=list(SHARED))]
    return stage


def rpn_config(cfg: Config, epochs: int, work_dir: str, frozen: bool = False) -> Config:
    """Stages 1 and 3: mmdet's ``RPN`` detector with the config's backbone, neck, RPN head.

    ``frozen``: the shared layers are kept fixed (stage 3) and not initialised from
    ImageNet (they come from stage 2 through ``load_from``). No validation: the
    config's metric scores class detections, not proposals.
    """
    m = cfg.model
    model = dict(type='RPN', data_preprocessor=m.data_preprocessor,
                 backbone=m.backbone, neck=m.get('neck'),
                 rpn_head=m.rpn_head, train_cfg=dict(rpn=m.train_cfg.rpn),
                 test_cfg=dict(rpn=m.test_cfg.rpn))
    return _stage_base(cfg, epochs, work_dir, model, frozen)


def fast_rcnn_config(cfg: Config, epochs: int, work_dir: str, proposals: Dict[str, str],
                     num_train_proposals: int, frozen: bool = False) -> Config:
    """Stages 2 and 4: mmdet's ``FastRCNN`` on fixed proposals.

    Args:
        proposals: ``{'train': pkl, 'val': pkl}`` absolute paths (``val`` optional:
            without it the stage does not validate).
        num_train_proposals: proposals per training image (py-faster-rcnn: 2000);
            validation takes the config's test-time count, ``test_cfg.rpn.max_per_img``,
            so stage 4's mAP is close to the final detector's (whose RPN
            keeps the best ``nms_pre`` boxes before NMS).
        frozen: as :func:`rpn_config` (stage 4).
    """
    m = cfg.model
    model = dict(type='FastRCNN', data_preprocessor=m.data_preprocessor,
                 backbone=m.backbone, neck=m.get('neck'),
                 roi_head=m.roi_head, train_cfg=dict(rcnn=m.train_cfg.rcnn),
                 test_cfg=dict(rcnn=m.test_cfg.rcnn))
    stage = _stage_base(cfg, epochs, work_dir, model, frozen)
    ds = stage.train_dataloader.dataset
    if 'pipeline' not in ds:
        raise ValueError(f'train_dataloader.dataset is a {ds.type}: proposal files need a '
                         'plain dataset (one ann_file, one pipeline), not a wrapper')
    ds.proposal_file = proposals['train']
    ds.pipeline = with_proposals(ds.pipeline, num_train_proposals)
    if 'val' in proposals and cfg.get('val_dataloader'):
        stage.val_dataloader = copy.deepcopy(cfg.val_dataloader)
        ds = stage.val_dataloader.dataset
        ds.proposal_file = proposals['val']
        ds.pipeline = with_proposals(ds.pipeline, m.test_cfg.rpn.max_per_img)
        stage.val_cfg, stage.val_evaluator = cfg.val_cfg, cfg.val_evaluator
    return stage


def proposal_config(cfg: Config, rpn_stage: Config, checkpoint: str, split: str,
                    out_file: str, nms_pre: int, num_proposals: int) -> Config:
    """Run an RPN stage's checkpoint over a split of ``cfg``, dumping mmdet's proposal file.

    ``split`` ``'train'``: the training dataset in test mode (every image listed,
    none filtered out, as ``BaseDetDataset.load_proposals`` expects) with the val
    pipeline; ``'val'``: the val dataloader. mmdet's ``DumpProposals`` writes
    ``{'<folder>/<file name>': InstanceData(bboxes, scores)}``, boxes in original
    image coordinates, best first. py-faster-rcnn's ``rpn_generate``: no pre-NMS
    cut (``nms_pre=-1``), 2000 kept after NMS.
    """
    test = copy.deepcopy(rpn_stage)
    test.work_dir = osp.dirname(out_file)
    test.load_from = checkpoint
    test.custom_hooks = []
    test.model.test_cfg.rpn.update(nms_pre=nms_pre, max_per_img=num_proposals)
    if split == 'train':
        loader = copy.deepcopy(cfg.train_dataloader)
        loader.dataset.update(test_mode=True,
                              pipeline=copy.deepcopy(cfg.val_dataloader.dataset.pipeline))
        loader.update(batch_size=1, drop_last=False,
                      sampler=dict(type='DefaultSampler', shuffle=False))
        loader.pop('batch_sampler', None)
    else:
        loader = copy.deepcopy(cfg.val_dataloader)
    test.test_dataloader = loader
    test.test_cfg = dict(type='TestLoop')
    test.test_evaluator = dict(type='DumpProposals', output_dir=osp.dirname(out_file),
                               proposals_file=osp.basename(out_file))
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler'):
        test[key] = None
    return test
