"""IgnoreRegionVOCMetric: mmdet's VOCMetric, except that a would-be false positive lying
mostly inside an ignore region is not counted (KITTI's DontCare rule)."""
import numpy as np
import pytest
import torch
from mmdet.registry import METRICS

import frcnn_plugin  # noqa: F401  registers IgnoreRegionVOCMetric

CLASSES = ('Car', 'Pedestrian', 'Cyclist')
CAR = [100., 100., 200., 200.]
DONT_CARE = [300., 100., 500., 200.]


def sample(gts=(), gt_labels=(), ignore=(), ignore_labels=(), dets=(), scores=(), labels=()):
    """One image's data sample as the model hands it to the metric."""
    def boxes(b):
        return torch.tensor(b, dtype=torch.float32).reshape(-1, 4)

    def ints(v):
        return torch.tensor(v, dtype=torch.long).reshape(-1)
    return dict(gt_instances=dict(bboxes=boxes(gts), labels=ints(gt_labels)),
                ignored_instances=dict(bboxes=boxes(ignore), labels=ints(ignore_labels)),
                pred_instances=dict(bboxes=boxes(dets), scores=torch.tensor(scores).reshape(-1),
                                    labels=ints(labels)))


def evaluate(metric_cfg, samples):
    metric = METRICS.build(dict(metric_cfg, eval_mode='area'))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def ours(samples, **kwargs):
    return evaluate(dict(type='IgnoreRegionVOCMetric', **kwargs), samples)


def mmdets(samples):
    return evaluate(dict(type='VOCMetric'), samples)


# One Car and one DontCare region (label -1, as KittiTinyDataset gives it). The Car
# detections by score: inside the DontCare region (iof 1), on the car, outside any
# box, and a quarter inside the region (iof 31 / 131).
KITTI_LIKE = sample(gts=[CAR], gt_labels=[0], ignore=[DONT_CARE], ignore_labels=[-1],
                    dets=[[320., 120., 380., 180.], CAR, [600., 100., 650., 150.],
                          [200., 100., 330., 200.]],
                    scores=[0.9, 0.8, 0.7, 0.6], labels=[0, 0, 0, 0])


def test_detection_inside_an_ignore_region_is_not_a_false_positive():
    # mmdet: the first detection is a false positive, so at recall 1 precision is 1/2.
    assert mmdets([KITTI_LIKE])['mAP'] == pytest.approx(0.5)
    # Ours: it is not counted; the true positive comes first. The two detections
    # outside the region (iof 0 and 0.24) are still false positives, after it.
    assert ours([KITTI_LIKE])['mAP'] == pytest.approx(1.0)
    # A threshold of 1 (iof is at most 1) ignores nothing: mmdet's result.
    assert ours([KITTI_LIKE], ignore_iof_thr=1.0)['mAP'] == pytest.approx(0.5)


def test_ignore_iof_threshold_is_over_the_detection_area():
    # The only Car detection ranks first, a false positive 0.24 inside the region: it
    # counts at 0.5 (AP 1/2), not at 0.2 (AP 1).
    second_image = sample(gts=[CAR], gt_labels=[0], ignore=[DONT_CARE], ignore_labels=[-1],
                          dets=[[200., 100., 330., 200.], CAR], scores=[0.95, 0.5],
                          labels=[0, 0])
    assert ours([second_image])['mAP'] == pytest.approx(0.5)
    assert ours([second_image], ignore_iof_thr=0.2)['mAP'] == pytest.approx(1.0)


def test_class_less_regions_count_for_every_class_over_several_images():
    # Several images: eval_map computes them in a process pool. A Pedestrian detection
    # inside the DontCare region of image 1, a Cyclist one in image 2's.
    images = [sample(gts=[CAR, [20., 20., 60., 120.]], gt_labels=[0, 1], ignore=[DONT_CARE],
                     ignore_labels=[-1], dets=[[350., 110., 400., 190.], [20., 20., 60., 120.]],
                     scores=[0.9, 0.5], labels=[1, 1]),
              sample(gts=[[700., 50., 760., 150.]], gt_labels=[2], ignore=[DONT_CARE],
                     ignore_labels=[-1], dets=[[310., 105., 360., 195.], [700., 50., 760., 150.]],
                     scores=[0.8, 0.7], labels=[2, 2])]
    theirs, mine = mmdets(images), ours(images)
    # Car: no detection (AP 0) in both; Pedestrian and Cyclist: 1/2 for mmdet, 1 here.
    assert theirs['mAP'] == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert mine['mAP'] == pytest.approx((0 + 1 + 1) / 3)


def test_true_positive_inside_an_ignore_region_stays_a_true_positive():
    inside = [320., 120., 380., 180.]
    image = sample(gts=[inside], gt_labels=[0], ignore=[DONT_CARE], ignore_labels=[-1],
                   dets=[inside, [330., 110., 350., 190.]], scores=[0.9, 0.8], labels=[0, 0])
    # The match counts (AP 1); the second detection, a false positive for mmdet, is
    # inside the region and not counted either.
    assert ours([image])['mAP'] == pytest.approx(1.0)
    assert mmdets([image])['mAP'] == pytest.approx(1.0)  # the FP comes after full recall


def random_images(num_images, seed, counts=None):
    """Random gts, class-labelled ignored boxes (VOC's difficult ones) and detections;
    ``counts``: (gts, ignored, detections) per image instead of random ones."""
    rng = np.random.default_rng(seed)

    def boxes(n):
        xy = rng.uniform(0, 400, (n, 2))
        return np.hstack([xy, xy + rng.uniform(10, 150, (n, 2))]).tolist()
    images = []
    for _ in range(num_images):
        n, k, m = counts or (rng.integers(1, 5), rng.integers(0, 3), rng.integers(0, 12))
        images.append(sample(gts=boxes(n), gt_labels=rng.integers(0, 3, n).tolist(),
                             ignore=boxes(k), ignore_labels=rng.integers(0, 3, k).tolist(),
                             dets=boxes(m), scores=rng.uniform(0, 1, m).tolist(),
                             labels=rng.integers(0, 3, m).tolist()))
    return images


@pytest.mark.parametrize('seed', [0, 1])
def test_is_mmdets_voc_metric_without_the_region_rule(seed):
    images = random_images(6, seed)
    # iof is at most 1: nothing is dropped, and class-labelled ignored boxes are
    # matched as mmdet matches them. Equal mAP and per-threshold APs.
    mine = evaluate(dict(type='IgnoreRegionVOCMetric', ignore_iof_thr=1.0,
                         iou_thrs=[0.5, 0.75]), images)
    theirs = evaluate(dict(type='VOCMetric', iou_thrs=[0.5, 0.75]), images)
    assert mine == pytest.approx(theirs)
    assert list(mine) == list(theirs) == ['mAP', 'AP50', 'AP75']
    # With the rule on, false positives can only go: mAP does not drop.
    assert ours(images)['mAP'] >= mmdets(images)['mAP']


def test_recall_is_voc_metrics():
    # (mmdet's eval_recalls, on numpy 2, needs as many gts and class-0 detections in
    # every image: it recalls with the class-0 ones.)
    images = random_images(3, 2, counts=(3, 1, 5))
    for image in images:
        image['pred_instances']['labels'].zero_()
    mine = evaluate(dict(type='IgnoreRegionVOCMetric', metric='recall'), images)
    assert mine == pytest.approx(evaluate(dict(type='VOCMetric', metric='recall'), images))
