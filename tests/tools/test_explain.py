"""tools/explain.py on a KittiTiny image with the paper's VGG16 config at reduced scale:
the pictures exist and are images, and the summary's counts are the real modules';
with --tutorial-setting and the Korean walkthrough's zebra boxes, the tutorials' numbers
(``--seed-setting``, its former name, still works, with a deprecation note)."""
import math
import re
import subprocess
import sys

import mmcv
import pytest
import torch
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.config import Config
from mmengine.runner import save_checkpoint

import frcnn_plugin  # noqa: F401  registers our components
from frcnn_plugin.boxes import anchors_inside
from frcnn_plugin.datasets import KittiTinyDataset

CONFIG = 'configs/frcnn_kitti_tiny.py'
IMAGE = '000050'  # four cars, two of them big enough for the 128-pixel anchors
# Offline and fast: no ImageNet init, KITTI's 1242 x 375 resized to 500 x 151 (the test
# pipeline's Resize is step 1), a narrow fc6 / fc7.
OPTIONS = ('model.backbone.init_cfg=None', 'test_dataloader.dataset.pipeline.1.scale=(500,300)',
           'model.roi_head.bbox_head.fc_out_channels=64')
GT_PICTURES = {'06_rpn_targets.png', '08_rcnn_samples.png', '09_rois_positive.png',
               '10_rois_negative.png', '12_pooled_crops.png'}
ZEBRAS = '89,469,249,644;238,417,415,630;435,419,580,634;617,462,765,637'


def explain(python, repo, out_dir, *args, options=OPTIONS):
    result = subprocess.run(
        [python, 'tools/explain.py', CONFIG, *map(str, args), '--out-dir', str(out_dir),
         '--cfg-options', *options], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return (out_dir / 'summary.txt').read_text()


def field(summary, name):
    match = re.search(rf'^{re.escape(name)}: (.*)$', summary, re.MULTILINE)
    assert match, f'{name!r} not in summary:\n{summary}'
    return match.group(1)


def sizes(text):
    return [tuple(map(int, size.split(' x '))) for size in text.split(', ')]


def pictures(out_dir):
    names = {path.name for path in out_dir.glob('*.png')}
    for name in names:
        image = mmcv.imread(str(out_dir / name))
        assert image is not None and image.ndim == 3 and min(image.shape[:2]) > 100, name
    return names


def test_explain_with_gt(repo, kitti_tiny_root, python, tmp_path):
    image = kitti_tiny_root / 'training' / 'image_2' / f'{IMAGE}.jpeg'
    label = kitti_tiny_root / 'training' / 'label_2' / f'{IMAGE}.txt'
    summary = explain(python, repo, tmp_path, image, '--gt-kitti', label)

    names = pictures(tmp_path)
    assert len(names) == 13 and GT_PICTURES <= names
    # The image shows on its canvas: the middle of the picture is not the black padding.
    drawn = mmcv.imread(str(tmp_path / '01_input_gt.png'))
    height, width = drawn.shape[:2]
    middle = drawn[height // 3:2 * height // 3, width // 3:2 * width // 3]
    assert (middle.max(axis=2) < 10).mean() < 0.2
    # Resize keeps the ratio: min(500 / 1242, 300 / 375) -> 500 x 151, padded to 16.
    assert sizes(field(summary, 'image size (h x w)')) == [(375, 1242)]
    [(img_h, img_w)] = sizes(field(summary, 'resized size (h x w)'))
    assert (img_h, img_w) == (151, 500)
    [(pad_h, pad_w)] = sizes(field(summary, 'padded size (h x w)'))
    assert (pad_h, pad_w) == (16 * math.ceil(img_h / 16), 16 * math.ceil(img_w / 16))
    assert sizes(field(summary, 'feature map sizes (h x w)')) == [(pad_h // 16, pad_w // 16)]
    total = int(field(summary, 'total anchors'))
    assert total == 9 * math.ceil(pad_h / 16) * math.ceil(pad_w / 16)

    # Inside-image count: the config's anchors over the feature map, border 0.
    model_cfg = Config.fromfile(repo / CONFIG).model
    anchors = TASK_UTILS.build(model_cfg.rpn_head.anchor_generator).grid_priors(
        [(pad_h // 16, pad_w // 16)], device='cpu')[0]
    assert anchors.size(0) == total
    inside = int(anchors_inside(anchors, (img_h, img_w), 0).sum())
    assert 0 < inside < total
    assert int(field(summary, 'inside-image anchors (allowed_border=0)')) == inside

    rpn_pos, rpn_neg = map(int, re.match(r'positives (\d+), negatives (\d+)',
                                         field(summary, 'RPN sampled')).groups())
    assert rpn_pos > 0 and rpn_neg > 0 and rpn_pos + rpn_neg <= min(256, inside)
    roi_pos, roi_neg = map(int, re.match(r'positives (\d+), negatives (\d+)',
                                         field(summary, 'RoIs sampled')).groups())
    # gt boxes join the proposals (add_gt_as_proposals): at least the 4 cars positive.
    assert roi_pos >= 4 and roi_pos + roi_neg == 128
    assert field(summary, 'gt boxes') == '4 (+ 1 ignore regions)'
    assert 0 < int(field(summary, 'RPN proposals kept (test_cfg.rpn, after NMS)')) <= 300


def test_explain_checkpoint_without_gt(repo, kitti_tiny_root, python, tmp_path):
    """Trained-style run: weights from a checkpoint (class names from its meta), no gt."""
    cfg = Config.fromfile(repo / CONFIG)
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.fc_out_channels = 64
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():  # confident class scores, so detections pass --score-thr
        model.roi_head.bbox_head.fc_cls.weight.normal_(0, 1.0)
    checkpoint = tmp_path / 'tiny.pth'
    save_checkpoint({'state_dict': model.state_dict(),
                     'meta': {'dataset_meta': dict(KittiTinyDataset.METAINFO)}}, str(checkpoint))
    out_dir = tmp_path / 'out'
    image = kitti_tiny_root / 'training' / 'image_2' / f'{IMAGE}.jpeg'
    summary = explain(python, repo, out_dir, image, '--checkpoint', checkpoint,
                      '--score-thr', '0.5')

    names = pictures(out_dir)
    assert len(names) == 8 and not names & GT_PICTURES
    assert '13_detections.png' in names and '11_roi_features.png' in names
    assert 'skipped (no gt' in field(summary, 'RPN / RoI targets')
    assert field(summary, 'checkpoint') == str(checkpoint)
    drawn = int(re.search(r'(\d+) with score >= 0.5 drawn', summary).group(1))
    assert drawn > 0


@pytest.mark.slow  # VGG16 at 800 x 800 on the CPU: about 30 CPU-seconds
def test_explain_tutorial_setting_gives_the_zebra_numbers(repo, python, tmp_path):
    """The Korean walkthrough's zebra boxes on an 800 x 800 image (any picture: anchors
    and IoUs do not depend on it or on the weights): the PyTorch practice notebook's
    best IoUs, 22500 anchors, 8940 inside."""
    image = tmp_path / 'noise.jpg'
    mmcv.imwrite(torch.randint(0, 256, (800, 800, 3), dtype=torch.uint8).numpy(), str(image))
    summary = explain(python, repo, tmp_path / 'out', image, '--tutorial-setting', '--gt',
                      ZEBRAS, options=OPTIONS[:1] + OPTIONS[2:])
    assert field(summary, 'setting') == "the tutorials' (--tutorial-setting)"
    assert field(summary, 'best anchor IoU per gt') == '0.5851, 0.5753, 0.5255, 0.6326'
    # float32 IoUs tie less often than the Korean walkthrough's float64 ones (6 / 24 / 12 / 3).
    assert field(summary, 'anchors reaching it per gt') == '6, 15, 6, 3'
    assert sizes(field(summary, 'resized size (h x w)')) == [(800, 800)]
    assert sizes(field(summary, 'feature map sizes (h x w)')) == [(50, 50)]
    assert int(field(summary, 'total anchors')) == 22500
    assert int(field(summary, 'inside-image anchors (allowed_border=0)')) == 8940
    assert 'anchor_base level 0 (9 x 4, x1 y1 x2 y2)' in summary
    for line in ('inside anchors (the tutorials: 8940): ours 8940: same',
                 'anchors (the tutorials: 22500): ours 22500: same',
                 'ours 0.5851 0.5753 0.5255 0.6326: same'):
        assert line in summary
    # RPN sampling: every best-IoU anchor is positive (all > min_pos_iou = 0.3; none
    # reaches 0.7), 256 in all.
    assert field(summary, 'RPN sampled') == 'positives 30, negatives 226'
    for loss in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'):
        assert float(field(summary, loss)) >= 0
    assert abs(float(field(summary, 'loss_rpn_cls')) - math.log(2)) < 0.01  # untrained


def test_explain_voc_gt_and_bad_gt(repo, kitti_tiny_root, python, tmp_path):
    image = kitti_tiny_root / 'training' / 'image_2' / f'{IMAGE}.jpeg'
    xml = tmp_path / f'{IMAGE}.xml'
    xml.write_text('<annotation><object><name>Car</name><bndbox><xmin>601</xmin>'
                   '<ymin>181</ymin><xmax>701</xmax><ymax>251</ymax></bndbox></object>'
                   '<object><name>Pedestrian</name><difficult>1</difficult><bndbox>'
                   '<xmin>11</xmin><ymin>11</ymin><xmax>41</xmax><ymax>101</ymax></bndbox>'
                   '</object>' + ''.join(
                       f'<object><name>{name}</name><bndbox><xmin>21</xmin><ymin>21</ymin>'
                       '<xmax>61</xmax><ymax>61</ymax></bndbox></object>'
                       for name in ('Truck', 'dog', 'Truck')) + '</annotation>')
    summary = explain(python, repo, tmp_path / 'voc', image, '--gt-voc', xml)
    assert field(summary, 'gt boxes') == '1 (+ 1 ignore regions)'
    # The objects of classes KittiTiny's config does not have are named, not dropped.
    assert field(summary, 'ground truth') == (
        f'skipped 3 objects of classes not in the config: Truck x2, dog x1 ({xml})')
    scale = 500 / 1242  # the test pipeline's Resize, width-bound
    box = [float(v) for v in field(summary, 'gt 0 (resized image)').split('[')[1][:-1].split(',')]
    expected = [v * s for v, s in zip((600, 180, 700, 250), (scale, 151 / 375) * 2)]
    assert all(abs(a - b) < 0.051 for a, b in zip(box, expected)), (box, expected)
    result = subprocess.run(
        [python, 'tools/explain.py', CONFIG, str(image), '--out-dir', str(tmp_path / 'bad'),
         '--gt', '600,180,700;1,2,3,4', '--cfg-options', *OPTIONS],
        cwd=repo, capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "explain.py: --gt box 1 '600,180,700': need x1,y1,x2,y2[,label], got 3 "
        'comma-separated values')


def test_explain_missing_image(repo, python, tmp_path):
    result = subprocess.run([python, 'tools/explain.py', CONFIG, 'no/such.jpeg',
                             '--out-dir', str(tmp_path), '--cfg-options', *OPTIONS],
                            cwd=repo, capture_output=True, text=True)
    assert result.returncode != 0 and 'no/such.jpeg' in result.stderr
    assert not list(tmp_path.glob('*.png'))



@pytest.fixture
def explain_tool(repo, monkeypatch):
    """tools/explain.py imported as a module (its parse_args), tools/ on the path."""
    monkeypatch.syspath_prepend(str(repo / 'tools'))
    monkeypatch.delitem(sys.modules, 'explain', raising=False)
    import explain as tool
    return tool


def test_seed_setting_is_a_deprecated_alias(explain_tool, capsys):
    args = explain_tool.parse_args(['c.py', 'i.jpg', '--out-dir', 'o', '--seed-setting'])
    assert args.tutorial_setting is True
    assert capsys.readouterr().err == (
        'explain.py: --seed-setting is deprecated and will be removed in the next release; '
        'use --tutorial-setting (the same setting)\n')
    args = explain_tool.parse_args(['c.py', 'i.jpg', '--out-dir', 'o', '--tutorial-setting'])
    assert args.tutorial_setting is True and capsys.readouterr().err == ''
    assert explain_tool.parse_args(['c.py', 'i.jpg', '--out-dir', 'o']).tutorial_setting is False
