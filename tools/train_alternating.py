#!/usr/bin/env python
"""Train a Faster R-CNN config with the paper's 4-step alternating training.

    python tools/train_alternating.py CONFIG --work-dir DIR [--stage-epochs A B C D]
        [--num-train-proposals 2000] [--proposal-nms-pre -1] [--cfg-options KEY=VALUE ...]

CONFIG is the usual end-to-end ``FasterRCNN`` config; the four stage configs are
derived from it (:mod:`frcnn_plugin.engine.alternating`) and each runs with mmengine's Runner
in its own folder, ``DIR/stage1_rpn``, ``stage2_fast_rcnn``, ``stage3_rpn`` and
``stage4_fast_rcnn`` (its config ``<stage>.py``, logs, checkpoints; the RPN stages'
``proposals/{train,val}.pkl``). The result, ``DIR/final.pth``, is a ``FasterRCNN``
checkpoint for ``tools/test.py CONFIG DIR/final.pth``.

Running it again continues where it stopped: a stage whose last epoch's checkpoint
exists is skipped, one with an earlier checkpoint resumes from it, a proposal file
that exists is kept. To redo a stage, delete its folder and those of the later stages.
Single process (no ``--launcher``): the frozen layers of stages 3 and 4 are frozen
after the model is built.
"""
import argparse
import os
import os.path as osp
import sys
import time

import env_check  # first: without the environment, one line instead of a traceback

env_check.require_environment()
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import frcnn_plugin  # noqa: E402,F401  (our registries; checkpoints load on torch >= 2.6)
from frcnn_plugin.engine import alternating as alt  # noqa: E402
from frcnn_plugin.engine import stage_weights  # noqa: E402
from frcnn_plugin.utils.missing_data import missing_data_message  # noqa: E402
from frcnn_plugin.utils.pretrained import drop_unfetchable_weights  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the end-to-end FasterRCNN config')
    parser.add_argument('--work-dir', required=True, help='stage folders and final.pth')
    parser.add_argument('--stage-epochs', type=int, nargs=4, metavar=('RPN1', 'FRCNN2',
                        'RPN3', 'FRCNN4'), help='epochs of each stage (default: the '
                        "config's max_epochs split 2:1:2:1, py-faster-rcnn's alt-opt ratio)")
    parser.add_argument('--num-train-proposals', type=int, default=2000,
                        help='proposals per image dumped and used to train the Fast R-CNN '
                        "stages (py-faster-rcnn: 2000; validation uses the config's "
                        'test_cfg.rpn.max_per_img)')
    parser.add_argument('--proposal-nms-pre', type=int, default=-1,
                        help='boxes kept before NMS when dumping proposals (-1: all, '
                        'as py-faster-rcnn)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of CONFIG before the stages are derived')
    return parser.parse_args()


def named(cfg: Config, name: str) -> Config:
    """One process runs several Runners: each needs its own experiment and visualizer
    name, or mmengine hands the first one's visualizer (and its log folder) to all."""
    cfg.experiment_name = name
    if cfg.get('visualizer'):
        cfg.visualizer.name = name
    return cfg


def run_stage(stage: Config, name: str, timestamp: str) -> str:
    """Train one stage unless done; returns its last checkpoint."""
    os.makedirs(stage.work_dir, exist_ok=True)
    stage.dump(osp.join(stage.work_dir, f'{name}.py'))
    final = osp.join(stage.work_dir, f'epoch_{stage.train_cfg.max_epochs}.pth')
    if osp.isfile(final):
        print_log(f'{name}: done ({final}), skipped', logger='current')
        return final
    if osp.isfile(osp.join(stage.work_dir, 'last_checkpoint')):
        stage.resume, stage.load_from = True, None  # mmengine finds the latest one
    Runner.from_cfg(named(stage, f'{name}_{timestamp}')).train()
    return final


def dump_proposals(cfg, rpn_stage, checkpoint, args, timestamp) -> dict:
    """``{'train': pkl, 'val': pkl}`` of an RPN stage's checkpoint (kept if present)."""
    files = {}
    for split in ('train', 'val') if cfg.get('val_dataloader') else ('train',):
        out = osp.join(rpn_stage.work_dir, 'proposals', f'{split}.pkl')
        if not osp.isfile(out):
            test = alt.proposal_config(cfg, rpn_stage, checkpoint, split, out,
                                       args.proposal_nms_pre, args.num_train_proposals)
            named(test, f'proposals_{split}_{timestamp}')
            os.makedirs(test.work_dir, exist_ok=True)
            test.dump(osp.join(test.work_dir, f'{split}.py'))
            Runner.from_cfg(test).test()
        files[split] = out
    return files


def write_init(path: str, *parts: dict) -> str:
    """The starting weights of a stage: the union of ``parts`` (see ``stage_weights.take``)."""
    stage_weights.save_weights({k: v for part in parts for k, v in part.items()}, path)
    return path


def main():
    args = parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    missing = missing_data_message(cfg, ('train_dataloader', 'val_dataloader'), args.config)
    if missing:
        sys.exit(missing)
    drop_unfetchable_weights(cfg)
    work_dir = osp.abspath(args.work_dir)
    epochs = args.stage_epochs or alt.default_stage_epochs(cfg.train_cfg.max_epochs)
    timestamp = time.strftime('%Y%m%d_%H%M%S')
    dirs = [osp.join(work_dir, name) for name in alt.STAGES]
    weights = stage_weights.read_state_dict

    s1 = alt.rpn_config(cfg, epochs[0], dirs[0])
    ckpt1 = run_stage(s1, alt.STAGES[0], timestamp)
    props1 = dump_proposals(cfg, s1, ckpt1, args, timestamp)

    s2 = alt.fast_rcnn_config(cfg, epochs[1], dirs[1], props1, args.num_train_proposals)
    ckpt2 = run_stage(s2, alt.STAGES[1], timestamp)

    s3 = alt.rpn_config(cfg, epochs[2], dirs[2], frozen=True)
    os.makedirs(dirs[2], exist_ok=True)
    s3.load_from = write_init(osp.join(dirs[2], 'init.pth'),
                              stage_weights.take(weights(ckpt2), alt.SHARED),
                              stage_weights.take(weights(ckpt1), ['bbox_head']))
    ckpt3 = run_stage(s3, alt.STAGES[2], timestamp)
    props3 = dump_proposals(cfg, s3, ckpt3, args, timestamp)

    s4 = alt.fast_rcnn_config(cfg, epochs[3], dirs[3], props3, args.num_train_proposals,
                              frozen=True)
    os.makedirs(dirs[3], exist_ok=True)
    s4.load_from = write_init(osp.join(dirs[3], 'init.pth'),
                              stage_weights.take(weights(ckpt3), alt.SHARED),
                              stage_weights.take(weights(ckpt2), ['roi_head']))
    ckpt4 = run_stage(s4, alt.STAGES[3], timestamp)

    final = {**stage_weights.take(weights(ckpt4), [*alt.SHARED, 'roi_head']),
             **stage_weights.take(weights(ckpt3), ['bbox_head'], rename={'bbox_head': 'rpn_head'})}
    # Exactly the end-to-end model's tensors: nothing missing, nothing extra.
    MODELS.build(cfg.model).load_state_dict(final, strict=True)
    out = osp.join(work_dir, 'final.pth')
    stage_weights.save_weights(final, out, meta=dict(
        dataset_meta=stage_weights.read_checkpoint(ckpt4)['meta'].get('dataset_meta'),
        alternating_stages=dict(zip(alt.STAGES, [ckpt1, ckpt2, ckpt3, ckpt4]))))
    print_log(f'final FasterRCNN checkpoint: {out}', logger='current')


if __name__ == '__main__':
    main()
