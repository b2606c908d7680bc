"""tools/explain.py's logic in-process, on the Shapes config's small VGG (192 x 192 input,
random weights) and a random 240 x 160 image: the summary's numbers are the detector's,
the pictures are written, skipped gt objects are named, bad input is one line, and the
tutorials' setting rewrites the config as documented."""
import re

import mmcv
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmengine.config import Config

import frcnn_plugin  # noqa: F401  registers our components
from frcnn_plugin.analysis import walkthrough
from frcnn_plugin.analysis.walkthrough import (
    InputError,
    Options,
    Report,
    apply_tutorial_setting,
    explain,
    step_tutorial_comparison,
)
from frcnn_plugin.boxes import anchors_inside
from frcnn_plugin.utils.pipelines import inference_pipeline

CONFIG = 'configs/frcnn_shapes.py'
SMALL = {'model.roi_head.bbox_head.fc_out_channels': 32}
OPTIONS = Options(num_rois=2, num_channels=2)
# 240 x 160 resized to fit 192 x 192 keeping the ratio: x 0.8, 192 x 128, a multiple of 16.
GT = '20,20,100,90,square;120,40,220,150,circle'
PICTURES = ['01_input_gt.png', '02_feature_map.png', '03_anchor_centres.png',
            '04_anchors_one_location.png', '05_anchors_all.png', '06_rpn_targets.png',
            '07_proposals.png', '08_rcnn_samples.png', '09_rois_positive.png',
            '10_rois_negative.png', '11_roi_features.png', '12_pooled_crops.png',
            '13_detections.png']
NO_GT_PICTURES = [name for name in PICTURES if name[:2] not in ('06', '08', '09', '10', '12')]


def field(summary, name):
    match = re.search(rf'^{re.escape(name)}: (.*)$', summary, re.MULTILINE)
    assert match, f'{name!r} not in summary:\n{summary}'
    return match.group(1)


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp('image') / 'noise.jpg'
    g = torch.Generator().manual_seed(1)
    mmcv.imwrite(torch.randint(0, 256, (160, 240, 3), dtype=torch.uint8, generator=g).numpy(),
                 str(path))
    return str(path)


@pytest.fixture(scope='module')
def typed_gt_run(repo, image, tmp_path_factory):
    """(summary, out_dir) of one full run with two typed gt boxes."""
    out_dir = tmp_path_factory.mktemp('explain')
    summary = explain(str(repo / CONFIG), image, str(out_dir), gt=GT, cfg_options=SMALL,
                      options=OPTIONS)
    return summary, out_dir


@pytest.fixture
def unsaved(monkeypatch):
    """Pictures drawn but not rasterised (the slow part): their names are recorded."""
    monkeypatch.setattr(Report, 'save', lambda self, fig, name: self.pictures.append(name))


def test_summary_numbers_are_the_detectors(typed_gt_run, repo):
    summary, out_dir = typed_gt_run
    assert (out_dir / 'summary.txt').read_text() == summary
    assert field(summary, 'image size (h x w)') == '160 x 240'
    assert field(summary, 'resized size (h x w)') == '128 x 192'
    assert field(summary, 'padded size (h x w)') == '128 x 192'
    assert field(summary, 'feature map sizes (h x w)') == '8 x 12'  # stride 16
    assert field(summary, 'gt boxes') == '2 (+ 0 ignore regions)'
    # Typed in the image's pixels, labels by name; x 0.8 in the resized image.
    assert field(summary, 'gt 0 (resized image)') == 'label 1 [16.0, 16.0, 80.0, 72.0]'
    assert field(summary, 'gt 1 (resized image)') == 'label 0 [96.0, 32.0, 176.0, 120.0]'

    # The anchors: the config's generator over the 8 x 12 map, inside the 128 x 192 image.
    generator = TASK_UTILS.build(Config.fromfile(repo / CONFIG).model.rpn_head.anchor_generator)
    anchors = generator.grid_priors([(8, 12)], device='cpu')[0]
    assert int(field(summary, 'total anchors')) == anchors.size(0) == 9 * 8 * 12
    inside = int(anchors_inside(anchors, (128, 192), 0).sum())
    assert int(field(summary, 'inside-image anchors (allowed_border=0)')) == inside < 864

    positives, negatives = map(int, re.match(r'positives (\d+), negatives (\d+)',
                                             field(summary, 'RPN sampled')).groups())
    assert 0 < positives and positives + negatives == 256 <= inside  # 256 per image
    roi_pos, roi_neg = map(int, re.match(r'positives (\d+), negatives (\d+)',
                                         field(summary, 'RoIs sampled')).groups())
    assert roi_pos >= 2 and roi_pos + roi_neg == 64  # the gts join; Shapes samples 64
    # The head: 64 RoIs pooled to 7 x 7 x 128, 3 classes + background, 4 deltas per class.
    assert field(summary, 'pooled') == '(64, 128, 7, 7)'
    assert field(summary, 'flattened') == '(64, 6272)'
    assert field(summary, 'head output: class scores') == '(64, 4)'
    assert field(summary, 'head output: box deltas') == '(64, 12)'
    assert 'shared head output' not in summary
    assert int(field(summary, 'RPN proposals kept (test_cfg.rpn, after NMS)')) == 100
    # Untrained: the RPN's two-class cross entropy is about ln 2.
    assert abs(float(field(summary, 'loss_rpn_cls')) - 0.6931) < 0.02
    assert field(summary, 'setting') == "the config's"
    assert 'run with --tutorial-setting to compare' in summary


def test_every_picture_is_written_and_listed(typed_gt_run):
    summary, out_dir = typed_gt_run
    assert field(summary, 'pictures') == ', '.join(PICTURES)
    assert sorted(p.name for p in out_dir.glob('*.png')) == PICTURES
    for name in PICTURES:
        picture = mmcv.imread(str(out_dir / name))
        assert picture.ndim == 3 and min(picture.shape[:2]) > 50, name


def test_voc_of_other_classes_names_what_it_skipped(repo, image, tmp_path, unsaved):
    """The config's classes are circle / square / triangle: a VOC file of dogs and a cat
    gives no gt, and the summary says which objects were left out and where."""
    xml = tmp_path / 'pets.xml'
    xml.write_text('<annotation>' + ''.join(
        f'<object><name>{name}</name><bndbox><xmin>11</xmin><ymin>11</ymin><xmax>91</xmax>'
        f'<ymax>81</ymax></bndbox></object>' for name in ('dog', 'cat', 'dog'))
        + '</annotation>')
    summary = explain(str(repo / CONFIG), image, str(tmp_path / 'out'), gt_voc=str(xml),
                      cfg_options=SMALL, options=OPTIONS)
    assert field(summary, 'gt boxes') == '0 (+ 0 ignore regions)'
    assert field(summary, 'ground truth') == (
        f'skipped 3 objects of classes not in the config: dog x2, cat x1 ({xml})')


def test_without_gt_the_target_steps_are_skipped(repo, image, tmp_path, unsaved):
    summary = explain(str(repo / CONFIG), image, str(tmp_path), cfg_options=SMALL,
                      options=Options(num_rois=2, num_channels=2, score_thr=0.0))
    assert field(summary, 'gt boxes') == 'none given'
    assert field(summary, 'RPN / RoI targets').startswith('skipped (no gt')
    assert field(summary, 'pictures') == ', '.join(NO_GT_PICTURES)
    assert 'RPN sampled' not in summary and 'loss_rpn_cls' not in summary
    # The head's shapes for the 100 test proposals; every detection drawn at threshold 0.
    assert field(summary, 'pooled') == '(100, 128, 7, 7)'
    count = int(re.match(r'(\d+) \(test_cfg.rcnn\), (\d+)', field(summary, 'detections'))[1])
    assert field(summary, 'detections') == (f'{count} (test_cfg.rcnn), {count} with score '
                                            '>= 0.0 drawn')


@pytest.mark.parametrize('kwargs, message', [
    (dict(image='no/such.jpg'), 'no such file: no/such.jpg'),
    (dict(gt_kitti='no/label.txt'), 'no such file: no/label.txt'),
    (dict(gt='1,2,3'), "--gt box 1 '1,2,3': need x1,y1,x2,y2[,label], got 3 comma-separated "
                       'values'),
    (dict(gt='1,2,3,4,dog'), "--gt box 1 '1,2,3,4,dog': unknown class 'dog' (classes: "
                             'circle, square, triangle)'),
])
def test_bad_input_is_one_line_and_writes_nothing(repo, image, tmp_path, kwargs, message):
    out_dir = tmp_path / 'out'
    kwargs = dict(dict(image=image), **kwargs)
    with pytest.raises(InputError) as error:
        explain(str(repo / CONFIG), out_dir=str(out_dir), cfg_options=SMALL, **kwargs)
    assert str(error.value) == message
    assert not out_dir.exists()


def test_tutorial_setting_rewrites_model_and_every_test_pipeline(repo):
    cfg = Config.fromfile(repo / CONFIG)
    leaf = cfg.test_dataloader.dataset
    cfg.test_dataloader.dataset = dict(type='ConcatDataset', datasets=[
        dict(type='RepeatDataset', times=2, dataset=leaf.copy()), leaf.copy()])
    apply_tutorial_setting(cfg)
    model = cfg.model
    # VGG16 conv5_3 with the config's freezing and init (Shapes: none), no narrow stages.
    assert model.backbone == dict(type='ScratchVGG16', init_cfg=None, frozen_stages=-1)
    assert model.rpn_head.in_channels == model.roi_head.bbox_head.in_channels == 512
    assert model.rpn_head.anchor_generator == dict(
        type='ScratchAnchorGenerator', **walkthrough.TUTORIAL_ANCHORS)
    assert model.train_cfg.rpn.allowed_border == 0
    assert model.roi_head.bbox_roi_extractor.featmap_strides == [16]
    first, second = cfg.test_dataloader.dataset.datasets
    for dataset in (first.dataset, second):
        resizes = [t for t in dataset.pipeline if t['type'] == 'Resize']
        assert resizes == [dict(type='Resize', scale=(800, 800), keep_ratio=False)]
        assert dataset.pipeline[1] == resizes[0]  # right after loading the image
    assert inference_pipeline(cfg)[1]['scale'] == (800, 800)  # what explain reads


def test_comparison_with_the_tutorials_says_same_or_differs(tmp_path):
    report = Report(str(tmp_path))
    step_tutorial_comparison(report, True, dict(
        featmap='50 x 50', anchors=22500, inside=8941, anchor_base='9 x 4',
        best_ious='0.5851 0.5753 0.5255 0.6326'))
    text = report.write()
    assert text.startswith('== compared with the tutorials\n')
    assert 'anchors (the tutorials: 22500): ours 22500: same\n' in text
    assert 'inside anchors (the tutorials: 8940): ours 8941: differs (' in text
    assert ('zebra best anchor IoUs (the PyTorch practice notebook: 0.5851 0.5753 0.5255 '
            '0.6326): ours 0.5851 0.5753 0.5255 0.6326: same') in text
    assert text.count('\nnote ') == len(walkthrough.TUTORIAL_NOTES)
    assert (tmp_path / 'summary.txt').read_text() == text
    assert text.endswith('pictures: \n')


def test_report_lines_sections_and_pictures(tmp_path):
    from matplotlib.figure import Figure
    report = Report(str(tmp_path))
    report.section('one')
    report.add('a', 1)
    report.save(Figure(figsize=(1, 1)), 'x.png')
    report.section('two')
    report.add('b', (2, 3))
    assert report.write() == '== one\na: 1\n\n== two\nb: (2, 3)\npictures: x.png\n'
    assert (tmp_path / 'x.png').read_bytes()[:4] == b'\x89PNG'
