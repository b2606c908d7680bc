"""The stage logic of tools/diagnose.py on hand-built detector outputs: each gt gets
exactly one outcome, in the documented order, and the counts add up."""
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from frcnn_plugin.analysis.diagnosis import (
    NOT_COVERED,
    STAGES,
    ImageRecord,
    anchor_coverage,
    class_boxes_above,
    confusion_matrix,
    confusion_pairs,
    detected,
    in_proposals,
    lost_stages,
    outcome_counts,
    proposal_ranks,
    recall_curve,
    split_dataset_cfg,
    suggest_anchors,
)

NAMES = ('cat', 'dog')
#: Six gts, one per outcome; class 0 except gt 3 (class 1).
GT = torch.tensor([[0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100],
                   [0, 200, 100, 300], [200, 200, 300, 300], [400, 200, 500, 300]],
                  dtype=torch.float32)
LABELS = torch.tensor([0, 0, 0, 1, 0, 0])


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32).view(-1, 4)


def hand_built():
    """Detector outputs for GT: gt 0 detected, 1 no positive anchor, 2 not proposed,
    3 suppressed (a class-1 box above thr before NMS), 4 misclassified (as class 1),
    5 below the threshold."""
    has_positive = torch.tensor([True, False, True, True, True, True])
    proposals = boxes(GT[0].tolist(), GT[3].tolist(), GT[4].tolist(), GT[5].tolist(),
                      [400, 0, 420, 20])  # the last covers nothing (gt 2: not proposed)
    P = proposals.size(0)
    # Candidates: every class's box is the proposal itself; scores per (proposal, class).
    scores = torch.tensor([[0.9, 0.05, 0.05],    # covers gt 0: cat 0.9
                           [0.1, 0.8, 0.1],      # covers gt 3: dog 0.8 (then suppressed)
                           [0.2, 0.7, 0.1],      # covers gt 4 (cat): dog 0.7
                           [0.2, 0.2, 0.6],      # covers gt 5: background
                           [0.9, 0.05, 0.05]])   # covers no gt
    candidates = InstanceData(bboxes=proposals[:, None].expand(P, 2, 4), scores=scores)
    detections = InstanceData(bboxes=boxes(GT[0].tolist(), GT[4].tolist()),
                              scores=torch.tensor([0.9, 0.7]), labels=torch.tensor([0, 1]))
    return has_positive, proposals, candidates, detections


def outcomes_of(score_thr=0.3):
    has_positive, proposals, candidates, detections = hand_built()
    return lost_stages(LABELS, detected(detections, GT, LABELS, score_thr), has_positive,
                       in_proposals(proposals, GT), class_boxes_above(candidates, GT, score_thr))


def test_each_gt_gets_its_first_lost_stage():
    assert outcomes_of() == ['detected', 'no_positive_anchor', 'not_in_proposals',
                             'suppressed', 'misclassified', 'below_score_thr']


def test_threshold_moves_gts_between_detected_and_below():
    # Above every score: nothing detected, covered gts fall to below_score_thr.
    assert outcomes_of(0.95) == ['below_score_thr', 'no_positive_anchor', 'not_in_proposals',
                                 'below_score_thr', 'below_score_thr', 'below_score_thr']


def record(outcomes, labels, best=None, positive=None, ranks=None, confusion=()):
    n = len(outcomes)
    return ImageRecord(
        gt_boxes=GT[:n], gt_labels=torch.tensor(labels), original_areas=torch.full((n,), 1e4),
        best_anchor_iou=torch.full((n,), 0.5) if best is None else torch.tensor(best),
        has_positive_anchor=torch.ones(n, dtype=torch.bool) if positive is None else
        torch.tensor(positive), outcomes=outcomes,
        ranks={0.5: torch.zeros(n, dtype=torch.long) if ranks is None else torch.tensor(ranks),
               0.7: torch.full((n,), 3, dtype=torch.long)},
        num_proposals=4, confusion=list(confusion), num_ignored=1)


def test_counts_add_up_per_class_and_detected_is_counted():
    records = [record(outcomes_of(), LABELS.tolist()), record(['detected'], [1])]
    counts = outcome_counts(records, NAMES)
    assert counts['num_gt'] == 7 and counts['detected'] == 2
    assert counts['detected'] + sum(counts['lost_at'].values()) == counts['num_gt']
    assert list(counts['lost_at']) == list(STAGES)
    assert counts['per_class']['dog'] == dict(num_gt=2, detected=1, lost_at=dict(
        no_positive_anchor=0, not_in_proposals=0, misclassified=0, suppressed=1,
        below_score_thr=0))
    assert counts['per_class']['cat']['lost_at']['misclassified'] == 1


def test_recall_ranks_and_curve():
    proposals = boxes([0, 0, 10, 10], [0, 0, 100, 100], [0, 0, 90, 100])
    ranks = proposal_ranks(proposals, GT[:2], 0.5)
    assert ranks.tolist() == [1, NOT_COVERED]  # gt 1: no proposal covers it
    curve = recall_curve([record(['detected', 'detected'], [0, 0], ranks=ranks.tolist())])
    assert curve['num_proposals'] == [1, 2, 4]
    assert curve['iou_0.5'] == [0.0, 0.5, 0.5] and curve['iou_0.7'] == [0.0, 0.0, 1.0]


def test_confusion_pairs_and_matrix():
    _, _, _, detections = hand_built()
    pairs = confusion_pairs(detections, GT, LABELS, 0.3)
    assert pairs == [(0, 0), (0, 1)]  # gt 0 right; gt 4, a cat, detected as dog
    assert confusion_matrix([record(['detected'], [0], confusion=pairs)], 2) == [[1, 1], [0, 0]]


def test_anchor_coverage_by_size():
    coverage = anchor_coverage([record(['detected', 'no_positive_anchor'], [0, 0],
                                       best=[0.8, 0.1], positive=[True, False])])
    assert coverage['no_positive_anchor'] == 1 and coverage['no_positive_anchor_share'] == 0.5
    assert coverage['by_size']['large'] == dict(num_gt=2, mean_best_iou=0.45,
                                                no_positive_anchor=1)


def test_suggested_anchors_cover_a_small_box():
    """A 20 x 20 box gets no positive anchor from 64-pixel and larger anchors; adding a
    smaller scale gives it one."""
    from mmdet.registry import TASK_UTILS
    anchor_cfg = dict(type='ScratchAnchorGenerator', strides=[16], scales=[4, 8],
                      ratios=[1.0], center_offset=0.5)
    assigner = TASK_UTILS.build(dict(type='ScratchMaxIoUAssigner', pos_iou_thr=0.7,
                                     neg_iou_thr=0.3, min_pos_iou=0.3))
    small = record(['no_positive_anchor'], [0], best=[0.1], positive=[False])
    small.gt_boxes = boxes([40, 40, 60, 60])
    small.featmap_sizes = [(8, 8)]
    small.img_meta = dict(img_shape=(128, 128), pad_shape=(128, 128))
    suggestion = suggest_anchors(anchor_cfg, assigner, [small], allowed_border=0)
    first = suggestion['steps'][0]
    assert first['add'] in ('scale 2.0', 'scale 2.8284') and first['no_positive_anchor'] == 0
    assert first['no_positive_anchor_share'] == 0.0 and len(suggestion['steps']) == 1


def test_split_dataset_each_image_once_through_the_annotated_pipeline():
    """Wrappers that repeat are left out, several datasets stay one ConcatDataset; every
    dataset gets the test pipeline with its annotations loaded before Resize."""
    pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 64)),
                dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]
    annotated = [pipeline[0], pipeline[2], pipeline[1], pipeline[3]]

    def leaf(name):
        return dict(type='CocoDataset', ann_file=name, pipeline=pipeline)
    cfg = Config(dict(
        test_dataloader=dict(dataset=leaf('test')),
        val_dataloader=dict(dataset=dict(type='ConcatDataset', ignore_keys=['x'], datasets=[
            dict(type='RepeatDataset', times=3, dataset=leaf('a')), leaf('b')])),
        train_dataloader=dict(dataset=dict(type='ClassBalancedDataset', oversample_thr=0.1,
                                           dataset=dict(type='ConcatDataset',
                                                        datasets=[leaf('c'), leaf('d')])))))
    val = split_dataset_cfg(cfg, 'val')
    assert val.type == 'ConcatDataset' and val.ignore_keys == ['x']
    assert [d.ann_file for d in val.datasets] == ['a', 'b']
    train = split_dataset_cfg(cfg, 'train')
    assert train.type == 'ConcatDataset' and [d.ann_file for d in train.datasets] == ['c', 'd']
    for dataset in val.datasets + train.datasets:
        assert dataset.pipeline == annotated and dataset.test_mode is True
    assert cfg.val_dataloader.dataset.datasets[1].pipeline == pipeline  # a copy was changed
    test = split_dataset_cfg(cfg, 'test')
    assert test.ann_file == 'test' and test.pipeline == annotated
    cfg.test_dataloader = None
    with pytest.raises(ValueError, match='the config has no test_dataloader'):
        split_dataset_cfg(cfg, 'test')
