"""The pictures of tools/explain.py: the canvas holds the padded image and the boxes that
reach past it, boxes are drawn where they are, each figure shows what its title says."""
import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

from frcnn_plugin.analysis.drawing import (
    Frame,
    canvas,
    centre_cell_anchors,
    crop,
    draw_boxes,
    fig_anchors_all,
    fig_detections,
    fig_pooled_crops,
    margin_for,
)

NAMES = ('circle', 'square')
# A 30 x 40 picture (h x w) padded to 32 x 48, its pixels numbered.
FRAME = Frame(np.arange(30 * 40 * 3, dtype=np.int64).reshape(30, 40, 3) % 256, (32, 48))


def collections(ax):
    return [c for c in ax.collections if isinstance(c, LineCollection)]


def test_canvas_shows_the_padded_image_with_a_margin():
    fig, ax = canvas(FRAME, 'a title', margin=5)
    assert ax.get_title() == 'a title'
    assert ax.get_xlim() == (-5, 53) and ax.get_ylim() == (37, -5)  # y grows downwards
    padding = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert [(p.get_width(), p.get_height()) for p in padding] == [(48, 32)]
    [image] = ax.images
    assert image.get_extent() == [0, 40, 30, 0]  # the picture in its own pixels


def test_draw_boxes_draws_each_box_once_with_its_label():
    _, ax = canvas(FRAME, '')
    boxes = torch.tensor([[1., 2., 11., 12.], [5., 5., 30., 20.]])
    draw_boxes(ax, boxes, 'red', labels=['circle 0.90', 'square'])
    [lines] = collections(ax)
    corners = [path.vertices.tolist() for path in lines.get_paths()]
    assert corners[0] == [[1, 2], [11, 2], [11, 12], [1, 12], [1, 2]]
    assert len(corners) == 2
    assert [(t.get_text(), t.get_position()) for t in ax.texts] == [
        ('circle 0.90', (1.0, 2.0)), ('square', (5.0, 5.0))]
    draw_boxes(ax, torch.zeros(0, 4), 'red')  # nothing to draw: nothing added
    assert len(collections(ax)) == 1


def test_margin_reaches_the_farthest_box():
    assert margin_for(torch.tensor([[0., 0., 48., 32.]]), (32, 48)) == 0
    assert margin_for(torch.tensor([[-10., 0., 20., 20.], [0., 0., 55., 32.]]), (32, 48)) == 10
    assert margin_for(torch.tensor([[0., -3., 20., 40.]]), (32, 48)) == 8
    assert margin_for(torch.zeros(0, 4), (32, 48)) == 0


def test_centre_cell_anchors_are_the_middle_cells():
    generator = TASK_UTILS.build(dict(type='ScratchAnchorGenerator', strides=[16, 32],
                                      scales=[2], ratios=[0.5, 2.0], center_offset=0.5))
    sizes = [(3, 4), (2, 2)]
    per_level = generator.grid_priors(sizes, device='cpu')
    anchors = centre_cell_anchors(per_level, sizes, generator.num_base_priors)
    assert [a.shape for a in anchors] == [(2, 4), (2, 4)]
    centres = [((a[:, :2] + a[:, 2:]) / 2).tolist() for a in anchors]
    # Row 3 // 2 = 1, column 4 // 2 = 2 at stride 16; row 1, column 1 at stride 32.
    assert centres == [[[40, 24]] * 2, [[48, 48]] * 2]


def test_crop_stays_inside_the_picture():
    picture = FRAME.picture
    assert crop(picture, torch.tensor([-5., 2., 10.4, 7.6])).shape == (6, 10, 3)
    assert np.array_equal(crop(picture, torch.tensor([3., 4., 5., 6.])), picture[4:6, 3:5])
    assert crop(picture, torch.tensor([50., 50., 60., 60.])).shape == (1, 1, 3)  # outside


def test_anchors_all_colours_inside_and_ignored():
    anchors = torch.tensor([[0., 0., 16., 16.], [-8., -8., 8., 8.], [30., 20., 70., 40.]])
    inside = torch.tensor([True, False, False])
    fig = fig_anchors_all(FRAME, anchors, inside, allowed_border=0)
    [ax] = fig.axes
    assert ax.get_title().startswith('All 3 anchors') and 'green 1 inside' in ax.get_title()
    assert 'red 2 ignored' in ax.get_title()
    ignored, kept = collections(ax)  # red first, under the green
    assert len(ignored.get_paths()) == 2 and len(kept.get_paths()) == 1
    assert ax.get_xlim() == (-22, 70)  # the canvas reaches the last anchor's x2 = 70


def test_detections_label_only_those_above_the_threshold(tmp_path):
    detections = InstanceData(bboxes=torch.tensor([[1., 1., 9., 9.], [2., 2., 20., 20.],
                                                   [3., 3., 30., 25.]]),
                              scores=torch.tensor([0.9, 0.2, 0.5]),
                              labels=torch.tensor([1, 0, 5]))
    fig = fig_detections(FRAME, detections, 0.5, NAMES)
    [ax] = fig.axes
    assert ax.get_title() == 'Detections: 2 with score >= 0.5 (of 3)'
    # A label past the class names is shown as its number.
    assert [t.get_text() for t in ax.texts] == ['square 0.90', '5 0.50']
    fig.savefig(tmp_path / 'd.png')
    assert (tmp_path / 'd.png').read_bytes()[:4] == b'\x89PNG'


def test_pooled_crops_name_background_past_the_classes():
    rois = torch.tensor([[0., 0., 0., 10., 10.], [0., 5., 5., 25., 25.]])
    pooled = torch.arange(2 * 3 * 7 * 7, dtype=torch.float32).view(2, 3, 7, 7)
    fig = fig_pooled_crops(FRAME.picture, rois, pooled, [1, 2], NAMES)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ['RoI 0: square', 'RoI 1: background']
    maximum = fig.axes[2].images[0].get_array()
    assert np.array_equal(np.asarray(maximum), pooled[0].amax(0).numpy())
