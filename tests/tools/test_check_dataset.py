"""tools/check_dataset.py on the data of each kind of config: a published-style VOC set
and a broken copy of it, COCO JSON, KittiTiny, VOC 07+12 (dataset wrappers)."""
import shutil
import subprocess
import sys

import pytest
from coco_files import VAL, write_coco
from voc_files import CLASSES, copy_recipe, write_voc


@pytest.fixture(scope='module')
def check(repo):
    """check_dataset.main(argv) -> exit status."""
    sys.path.insert(0, str(repo / 'tools'))
    import check_dataset
    yield check_dataset.main
    sys.path.remove(str(repo / 'tools'))


def without_log_lines(out):
    """The report without the log lines the datasets write while loading."""
    return ''.join(line for line in out.splitlines(True) if ' - mmengine - ' not in line)


def voc_recipe(repo, tmp_path, root):
    """configs/examples/frcnn_custom_voc.py, copied and edited for the published set."""
    return copy_recipe(repo / 'configs/examples/frcnn_custom_voc.py', tmp_path / 'mine.py', {
        "classes = ('cat', 'dog')": f'classes = {CLASSES}',
        "data_root = 'data/my_voc/'": f"data_root = '{root}/'"})


def test_published_voc_set_per_split(repo, tmp_path, check, capsys):
    root = write_voc(tmp_path / 'site')
    assert check([str(voc_recipe(repo, tmp_path, root))]) == 0
    assert without_log_lines(capsys.readouterr().out).splitlines() == [
        f'train: ScratchVOCDataset {root}/ImageSets/Main/trainval.txt',
        '  images: 3, without objects: 0 (filter_empty_gt: training leaves them out)',
        '  class     objects  ignored',
        '  helmet          2        0',
        '  vest            2        0',
        '  person          2        1',
        '  forklift        1        0',
        '  (all)           7        1',
        '  boxes by COCO area: 0 small (< 32x32), 2 medium, 5 large (>= 96x96)',
        '  box shorter side: min 68 / median 170 / max 390 px',
        "  anchor fit at the train pipeline's resize (all 3 images):",
        '    class     shorter side after resize: min / median / max px',
        '    helmet    68 / 68 / 69',
        '    vest      160 / 165 / 170',
        '    person    199 / 200 / 200',
        '    forklift  390 / 390 / 390',
        '    best anchor IoU under pos_iou_thr 0.7: 7 of 7 boxes (100.0%) (they get at most '
        'their best anchor(s) as positives, from min_pos_iou 0.3)',
        '    no positive anchor at all (the assigner as in training): 0 of 7 boxes (0.0%)',
        '  defects: 0 error(s), 0 warning(s)',
        f'val: ScratchVOCDataset {root}/ImageSets/Main/test.txt',
        '  images: 1, without objects: 0',
        '  class     objects  ignored',
        '  helmet          1        0',
        '  vest            0        0',
        '  person          0        0',
        '  forklift        1        0',
        '  (all)           2        0',
        '  boxes by COCO area: 0 small (< 32x32), 1 medium, 1 large (>= 96x96)',
        '  box shorter side: min 50 / median 214.5 / max 379 px',
        "  anchor fit at the train pipeline's resize (all 1 images):",
        '    class     shorter side after resize: min / median / max px',
        '    helmet    50 / 50 / 50',
        '    vest      -',
        '    person    -',
        '    forklift  379 / 379 / 379',
        '    best anchor IoU under pos_iou_thr 0.7: 2 of 2 boxes (100.0%) (they get at most '
        'their best anchor(s) as positives, from min_pos_iou 0.3)',
        '    no positive anchor at all (the assigner as in training): 1 of 2 boxes (50.0%)',
        '    suggested: add scale 4.0: scales [4.0, 8.0, 16.0, 32.0], ratios [0.5, 1.0, '
        '2.0] -> no positive anchor: 0 of 2 boxes (0.0%)',
        '  defects: 0 error(s), 2 warning(s)',
        f"    warning: {root}/ImageSets/Main/test.txt: class 'vest' has no objects: the "
        'head would learn a class that is never a positive',
        f"    warning: {root}/ImageSets/Main/test.txt: class 'person' has no objects: the "
        'head would learn a class that is never a positive',
        'test: the same dataset as val',
        'no errors']


def test_broken_copy_names_each_file(repo, tmp_path, python):
    """Exit status 1; the inverted box, the misspelt class and the missing image each
    named with its file (and line), and the rest still counted."""
    root = write_voc(tmp_path / 'site')
    xml = root / 'Annotations'
    (xml / 'frame_0001.xml').write_bytes((xml / 'frame_0001.xml').read_bytes().replace(
        b'<xmin>101</xmin>', b'<xmin>301</xmin>'))
    (xml / 'frame_0002.xml').write_bytes((xml / 'frame_0002.xml').read_bytes().replace(
        b'<name>forklift</name>', b'<name>fork lift</name>'))
    (root / 'JPEGImages' / 'frame_0003.jpg').unlink()
    proc = subprocess.run(
        [python, 'tools/check_dataset.py', str(voc_recipe(repo, tmp_path, root)),
         '--split', 'train'], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr[-3000:]
    out = without_log_lines(proc.stdout).splitlines()
    assert out[:2] == [f'train: ScratchVOCDataset {root}/ImageSets/Main/trainval.txt',
                       '  images: 2, without objects: 0 (filter_empty_gt: training leaves '
                       'them out)']
    assert out[-7:] == [
        '  defects: 2 error(s), 3 warning(s)',
        f"    error: {xml}/frame_0001.xml:19: inverted box of 'person' (xmax < xmin or "
        'ymax < ymin): [301, 81, 300, 560]',
        f'    error: {root}/ImageSets/Main/trainval.txt:3: image not found: '
        f'{root}/JPEGImages/frame_0003.jpg',
        f"    warning: {xml}/frame_0002.xml:14: 1 object(s) named 'fork lift' skipped: "
        "not in classes ('helmet', 'vest', 'person', 'forklift')",
        # the one person left is difficult (an ignore region), the forklift misspelt
        f"    warning: {root}/ImageSets/Main/trainval.txt: class 'person' has no objects: "
        'the head would learn a class that is never a positive',
        f"    warning: {root}/ImageSets/Main/trainval.txt: class 'forklift' has no objects: "
        'the head would learn a class that is never a positive',
        '2 error(s)']
    assert 'Traceback' not in proc.stderr


def test_coco_recipe_counts_and_defects(repo, tmp_path, check, capsys):
    root = tmp_path / 'my_coco'
    write_coco(root, 'train', extra=[
        dict(id=20, image_id=1, category_id=2, bbox=[5, 5, 0, 30], area=0, iscrowd=0),
        dict(id=21, image_id=2, category_id=3, bbox=[5, 5, 30, 30], area=900, iscrowd=0)],
        categories=('cat', 'dog', 'bird'))
    write_coco(root, 'val', VAL)
    (root / 'images' / 'd.jpg').unlink()
    config = copy_recipe(repo / 'configs/examples/frcnn_custom_coco.py', tmp_path / 'mine.py',
                         {"data_root = 'data/my_coco/'": f"data_root = '{root}/'"})
    assert check([str(config)]) == 1
    ann = f'{root}/annotations'
    assert without_log_lines(capsys.readouterr().out).splitlines() == [
        f'train: ScratchCocoDataset {ann}/train.json',
        '  images: 2, without objects: 0 (filter_empty_gt: training leaves them out)',
        '  class  objects  ignored',
        '  cat          1        0',
        '  dog          2        1',
        '  (all)        3        1',
        '  boxes by COCO area: 0 small (< 32x32), 1 medium, 2 large (>= 96x96)',
        '  box shorter side: min 80 / median 150 / max 260 px',
        "  anchor fit at the train pipeline's resize (all 2 images):",
        '    class  shorter side after resize: min / median / max px',
        '    cat    188 / 188 / 188',
        '    dog    100 / 212 / 325',
        '    best anchor IoU under pos_iou_thr 0.7: 1 of 3 boxes (33.3%) (they get at most '
        'their best anchor(s) as positives, from min_pos_iou 0.3)',
        '    no positive anchor at all (the assigner as in training): 0 of 3 boxes (0.0%)',
        '  defects: 0 error(s), 2 warning(s)',
        f'    warning: {ann}/train.json: annotation 20 (image a.jpg): box under one pixel '
        'or of zero area, skipped: [5, 5, 0, 30]',
        f"    warning: {ann}/train.json: 1 annotation(s) of category 'bird' skipped: not "
        "in classes ('cat', 'dog') (e.g. annotation 21 (image b.jpg))",
        f'val: ScratchCocoDataset {ann}/val.json',
        '  images: 1, without objects: 0',
        '  class  objects  ignored',
        '  cat          1        0',
        '  dog          0        0',
        '  (all)        1        0',
        '  boxes by COCO area: 0 small (< 32x32), 0 medium, 1 large (>= 96x96)',
        '  box shorter side: min 150 / median 150 / max 150 px',
        "  anchor fit at the train pipeline's resize (all 1 images):",
        '    class  shorter side after resize: min / median / max px',
        '    cat    188 / 188 / 188',
        '    dog    -',
        '    best anchor IoU under pos_iou_thr 0.7: 0 of 1 boxes (0.0%) (they get at most '
        'their best anchor(s) as positives, from min_pos_iou 0.3)',
        '    no positive anchor at all (the assigner as in training): 0 of 1 boxes (0.0%)',
        '  defects: 1 error(s), 1 warning(s)',
        f'    error: {ann}/val.json: image 2: file not found: {root}/images/d.jpg',
        f"    warning: {ann}/val.json: class 'dog' has no objects: the head would learn a "
        'class that is never a positive',
        'test: the same dataset as val',
        '1 error(s)']


def kitti_options(root):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}/',
            f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/']


def test_kitti_tiny(repo, kitti_tiny_root, check, capsys):
    """Any other dataset: counted and checked from what it loaded. KittiTiny has no
    defect; its other types are ignore regions without a class."""
    assert check([str(repo / 'configs/frcnn_kitti_tiny.py'), '--split', 'val',
                  *kitti_options(kitti_tiny_root)]) == 0
    out = without_log_lines(capsys.readouterr().out)
    assert out.startswith(f"""\
val: KittiTinyDataset {kitti_tiny_root}/val.txt
  images: 25, without objects: 0
  class       objects  ignored
  Car              62        0
  Pedestrian       13        0
  Cyclist           7        0
  (no class)        0       68
  (all)            82       68
""")
    assert out.endswith('  defects: 0 error(s), 0 warning(s)\nno errors\n')


def test_kitti_defects_and_a_dataset_that_cannot_be_built(repo, kitti_tiny_root, tmp_path,
                                                         check, capsys):
    root = tmp_path / 'kitti'
    shutil.copytree(kitti_tiny_root, root)
    label = root / 'training/label_2/000000.txt'
    fields = label.read_text().splitlines()[0].split()
    fields[6] = fields[4]  # x2 = x1: a zero-width Pedestrian
    label.write_text(' '.join(fields) + '\n')
    assert check([str(repo / 'configs/frcnn_kitti_tiny.py'), '--split', 'train',
                  *kitti_options(root)]) == 1
    assert (f'    error: {root}/training/image_2/000000.jpeg: zero-size box: '
            f'[712.4, 143.0, 712.4, 307.92]\n') in capsys.readouterr().out

    label.write_text(' '.join(fields[:14]) + '\n')
    assert check([str(repo / 'configs/frcnn_kitti_tiny.py'), '--split', 'train',
                  *kitti_options(root)]) == 1
    assert capsys.readouterr().out == (
        'train: KittiTinyDataset could not be built\n'
        f'    error: ValueError: {label}:1: expected 15 fields (KITTI label), got 14: '
        f"'{' '.join(fields[:14])}'\n1 error(s)\n")


def test_dataset_wrappers_voc0712(repo, tmp_path, check, capsys, monkeypatch):
    """frcnn_voc0712.py: a ConcatDataset of VOC2007 and VOC2012, each reported."""
    voc = {name: [('person' if name == 'a' else 'cat', (10, 10, 200, 300), 0)]
           for name in ('a', 'b')}
    write_voc(tmp_path / 'data/VOCdevkit/VOC2007', annotations=voc,
              splits={'trainval': ['a', 'b'], 'test': ['a']})
    write_voc(tmp_path / 'data/VOCdevkit/VOC2012', annotations=voc,
              splits={'trainval': ['b']})
    monkeypatch.chdir(tmp_path)
    assert check([str(repo / 'configs/frcnn_voc0712.py'), '--split', 'train']) == 0
    out = capsys.readouterr().out
    assert 'train[0]: ScratchVOCDataset data/VOCdevkit/VOC2007/ImageSets/Main/trainval.txt\n'\
        '  images: 2, without objects: 0' in out
    assert 'train[1]: ScratchVOCDataset data/VOCdevkit/VOC2012/ImageSets/Main/trainval.txt\n'\
        '  images: 1, without objects: 0' in out
    assert out.count('  cat                1        0\n') == 2


def test_no_data_yet(repo, tmp_path, check, capsys, monkeypatch):
    """frcnn_voc.py before `tools/prepare_data.py voc`: each split's missing file."""
    monkeypatch.chdir(tmp_path)
    assert check([str(repo / 'configs/frcnn_voc.py')]) == 1
    assert capsys.readouterr().out.splitlines() == [
        'train: ScratchVOCDataset could not be built',
        '    error: data/VOCdevkit/VOC2007/ImageSets/Main/trainval.txt: image-set file '
        'not found',
        'val: ScratchVOCDataset could not be built',
        '    error: data/VOCdevkit/VOC2007/ImageSets/Main/test.txt: image-set file not found',
        'test: the same dataset as val',
        '2 error(s)']


def test_stock_coco_dataset(repo, tmp_path, check, capsys, monkeypatch):
    """mmdet's own CocoDataset (the stock COCO config): counted and checked from the
    instances it loaded; mmdet drops the zero-size box itself, the box reaching outside
    its image is a warning."""
    annotations = {'c.jpg': [('person', [100, 100, 200, 150], 0)],
                   'd.jpg': [('bicycle', [20, 30, 400, 300], 0), ('car', [450, 20, 40, 60], 0)]}
    write_coco(tmp_path / 'data/coco', 'instances_val2017', annotations,
               categories=('person', 'bicycle', 'car'), extra=[
                   dict(id=20, image_id=1, category_id=3, bbox=[600, 10, 100, 50],
                        area=5000, iscrowd=0),
                   dict(id=21, image_id=1, category_id=3, bbox=[60, 10, 0, 50], area=0,
                        iscrowd=0)])
    (tmp_path / 'data/coco/val2017').symlink_to(tmp_path / 'data/coco/images')
    monkeypatch.chdir(tmp_path)
    assert check([str(repo / 'configs/examples/faster-rcnn_r50_fpn_1x_coco_scratch.py'),
                  '--split', 'val']) == 0
    out = without_log_lines(capsys.readouterr().out).splitlines()
    assert out[:3] == ['val: CocoDataset data/coco/annotations/instances_val2017.json',
                       '  images: 2, without objects: 0',
                       '  class           objects  ignored']
    assert out[3:6] == ['  person                1        0', '  bicycle               1        0',
                        '  car                   2        0']
    assert out[-3:] == [
        '  defects: 0 error(s), 1 warning(s)',
        '    warning: data/coco/val2017/c.jpg: box reaches outside the 640x480 image: '
        '[600, 10, 700, 60]',
        'no errors']


def test_voc_small_objects_anchor_fit_and_empty_classes(repo, tmp_path, check, capsys):
    """VOC too: boxes of 28 to 50 pixels after the resize (x 1.0) against the paper's
    128-pixel and larger anchors, two classes without objects; the published set's
    large boxes (test_published_voc_set_per_split) all have a positive anchor."""
    small = {f'frame_{k:04d}': [('helmet', (100 + 60 * k, 101, 130 + 60 * k, 129), 0),
                                ('vest', (301, 201, 341, 251), 0)] for k in range(1, 4)}
    root = write_voc(tmp_path / 'site', annotations=small,
                     splits={'trainval': list(small), 'test': ['frame_0001']})
    assert check([str(voc_recipe(repo, tmp_path, root)), '--split', 'train']) == 0
    out = without_log_lines(capsys.readouterr().out).splitlines()
    assert out[10:18] == [
        "  anchor fit at the train pipeline's resize (all 3 images):",
        '    class     shorter side after resize: min / median / max px',
        '    helmet    28 / 28 / 28',
        '    vest      40 / 40 / 40',
        '    person    -',
        '    forklift  -',
        '    best anchor IoU under pos_iou_thr 0.7: 6 of 6 boxes (100.0%) (they get at most '
        'their best anchor(s) as positives, from min_pos_iou 0.3)',
        '    no positive anchor at all (the assigner as in training): 6 of 6 boxes (100.0%)']
    assert out[18].startswith('    suggested: add scale ')
    assert out[-3:] == [
        f"    warning: {root}/ImageSets/Main/trainval.txt: class 'person' has no objects: "
        'the head would learn a class that is never a positive',
        f"    warning: {root}/ImageSets/Main/trainval.txt: class 'forklift' has no "
        'objects: the head would learn a class that is never a positive',
        'no errors']


def test_anchor_fit_without_an_rpn(repo, tmp_path, check, capsys):
    """A config without the RPN's anchors: one line says the fit is not measured."""
    root = write_voc(tmp_path / 'site')
    assert check([str(voc_recipe(repo, tmp_path, root)), '--split', 'val',
                  '--cfg-options', 'model.rpn_head=None']) == 0
    out = without_log_lines(capsys.readouterr().out).splitlines()
    assert out[10] == ('  anchor fit: not measured: the config has no '
                       'model.rpn_head.anchor_generator and model.train_cfg.rpn.assigner')
