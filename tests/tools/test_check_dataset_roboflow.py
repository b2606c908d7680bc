"""tools/check_dataset.py and training's dataset on a COCO export made as Roboflow makes
it (``_annotations.coco.json`` beside the images of ``train/``, ``valid/``, ``test/``,
the superclass category 0, exporter file names, 2048 x 1371 photos, small objects):
every count is the file's, sizes are checked against the files, every box is accounted
for in the log, empty classes and the anchor fit are reported."""
import json
import subprocess
import sys
from collections import Counter

import pytest
from coco_files import (
    PHOTO,
    ROBOFLOW,
    ROBOFLOW_CATEGORIES,
    ROBOFLOW_CLASSES,
    SUPERCLASS,
    exporter_name,
    roboflow_config,
    write_roboflow,
)
from log_capture import log_of
from mmdet.registry import DATASETS
from mmengine.config import Config

from frcnn_plugin.datasets import DatasetError

SPLITS = dict(train='train', val='valid', test='test')


@pytest.fixture(scope='module')
def check(repo):
    """check_dataset.main(argv) -> exit status."""
    sys.path.insert(0, str(repo / 'tools'))
    import check_dataset
    yield check_dataset.main
    sys.path.remove(str(repo / 'tools'))


@pytest.fixture(scope='module')
def export(tmp_path_factory):
    return write_roboflow(tmp_path_factory.mktemp('roboflow') / 'export')


def config(repo, tmp_path, root, classes=ROBOFLOW_CLASSES):
    """A new config file each time (mmengine caches a config file's module)."""
    dest = tmp_path / f'mine_{len(list(tmp_path.glob("mine_*.py")))}.py'
    return str(roboflow_config(repo / 'configs/examples/frcnn_custom_coco.py', dest, root,
                               classes))


def file_counts(root, folder):
    """Objects per category name, read straight from the split's JSON."""
    coco = json.loads((root / folder / '_annotations.coco.json').read_text())
    names = {c['id']: c['name'] for c in coco['categories']}
    return Counter(names[a['category_id']] for a in coco['annotations'] if not a['iscrowd'])


def reports(out):
    """split -> its report's lines (log lines left out)."""
    result, split = {}, None
    for line in out.splitlines():
        if ' - mmengine - ' in line:
            continue
        if not line.startswith(' ') and ':' in line:
            split = line.split(':')[0]
        result.setdefault(split, []).append(line)
    return result


def table(lines):
    """class -> the 'objects' column of a split's report (a string)."""
    start = lines.index(next(x for x in lines if x.split()[:3] == ['class', 'objects',
                                                                    'ignored']))
    rows = {}
    for line in lines[start + 1:]:
        if line.strip().startswith('(all)'):
            return rows
        rows[line.split()[0]] = line.split()[1]


def test_export_with_the_superclass(repo, tmp_path, export, check, capsys):
    """``classes`` with the exporter's superclass: the counts are the files', the
    superclass is named in each split as a class without objects, the small objects'
    anchor fit is reported with a suggestion."""
    classes = ROBOFLOW_CATEGORIES[:5]
    assert classes[0] == SUPERCLASS
    assert check([config(repo, tmp_path, export, classes)]) == 0
    out = capsys.readouterr().out
    by_split = reports(out)
    for split, folder in SPLITS.items():
        lines = by_split[split]
        counts = file_counts(export, folder)
        assert table(lines) == {name: str(counts[name]) for name in classes}
        assert counts[SUPERCLASS] == 0 and all(counts[name] for name in classes[1:])
        assert (f'    warning: {export}/{folder}/_annotations.coco.json: class '
                f"'{SUPERCLASS}' has no objects: the head would learn a class that is never "
                'a positive') in lines
        assert sum("has no objects" in line for line in lines) == 1
        fit = [line for line in lines if 'no positive anchor at all' in line]
        assert len(fit) == 1 and fit[0].startswith(
            '    no positive anchor at all (the assigner as in training): ')
        assert any(line.startswith('    suggested: add scale ') for line in lines)
    assert by_split['train'][-1].endswith("class 'shapes-xyz' has no objects: the head "
                                          'would learn a class that is never a positive')

    # Control: without the superclass, no class is empty.
    assert check([config(repo, tmp_path, export), '--split', 'val']) == 0
    assert not any('has no objects' in line
                   for line in reports(capsys.readouterr().out)['val'])


@pytest.mark.parametrize('classes', [('circle', 'sqare', 'triangle', 'star'),
                                     ('square', 'circle', 'triangle', 'star')],
                         ids=['misspelt', 'reordered'])
def test_counts_are_the_files(repo, tmp_path, export, check, capsys, classes):
    """A misspelt class or another order is an error, and the table beside it counts
    each class by its name in the file (a table labelled by classes[label] would shift
    every later class: the counts differ, so it would fail); the misspelt name is
    marked."""
    assert check([config(repo, tmp_path, export, classes), '--split', 'train',
                  '--anchor-fit-images', '0']) == 1
    lines = reports(capsys.readouterr().out)['train']
    counts = file_counts(export, 'train')
    assert len({counts[name] for name in ROBOFLOW_CLASSES}) == len(ROBOFLOW_CLASSES)
    expected = {name: str(counts[name]) if name in counts else '-' for name in classes}
    assert table(lines) == expected
    assert (['sqare', '-', '-', 'no', 'such', 'category:', 'no', 'label']
            in [line.split() for line in lines]) == ('sqare' in classes)
    assert any(line.startswith('    error: ') and 'classes' in line for line in lines)


def size_mismatch(root):
    """The export with image 1's JSON size halved, image 2's swapped, and two boxes
    mmdet skips: one outside the photo, one under a pixel."""
    halved, swapped = exporter_name(1), exporter_name(2)
    write_roboflow(root, dict(train=ROBOFLOW['train']), json_sizes={
        halved: (PHOTO[0] // 2, PHOTO[1] // 2), swapped: PHOTO[::-1]})
    path = root / 'train' / '_annotations.coco.json'
    coco = json.loads(path.read_text())
    coco['annotations'] += [
        dict(id=100, image_id=0, category_id=1, bbox=[2100, 10, 50, 50], area=2500,
             iscrowd=0),
        dict(id=101, image_id=2, category_id=2, bbox=[10, 10, 0.5, 20], area=10,
             iscrowd=0)]
    path.write_text(json.dumps(coco))
    return coco


def beyond_json_size(coco, classes, image_ids=None):
    """Boxes of ``classes`` (of the images ``image_ids``, or all) reaching beyond their
    image's JSON width or height (straight from the JSON)."""
    images = {i['id']: i for i in coco['images']}
    names = {c['id']: c['name'] for c in coco['categories']}
    return sum(1 for a in coco['annotations'] if names[a['category_id']] in classes
               and (image_ids is None or a['image_id'] in image_ids)
               and (a['bbox'][0] + a['bbox'][2] > images[a['image_id']]['width']
                    or a['bbox'][1] + a['bbox'][3] > images[a['image_id']]['height']))


def test_json_size_other_than_the_file(repo, tmp_path, check, capsys):
    """Each image whose JSON size is not its file's is named with both sizes; its boxes
    are judged against the file (none of the real boxes skipped)."""
    root = tmp_path / 'export'
    coco = size_mismatch(root)
    assert check([config(repo, tmp_path, root), '--split', 'train',
                  '--anchor-fit-images', '0']) == 0
    lines = reports(capsys.readouterr().out)['train']
    ann = f'{root}/train/_annotations.coco.json'
    assert (f'    warning: {ann}: image 0 ({exporter_name(1)}): the JSON says 1024x685, the '
            f"file {root}/train/{exporter_name(1)} is 2048x1371: the file's size is used "
            f"({beyond_json_size(coco, ROBOFLOW_CLASSES, [0])} box(es) reach beyond the "
            "JSON's)") in lines
    assert (f'    warning: {ann}: image 1 ({exporter_name(2)}): the JSON says 1371x2048, the '
            f'file {root}/train/{exporter_name(2)} is 2048x1371 (width and height swapped): '
            f"the file's size is used ({beyond_json_size(coco, ROBOFLOW_CLASSES, [1])} "
            "box(es) reach beyond the JSON's)") in lines
    assert (f'    warning: {ann}: annotation 100 (image {exporter_name(1)}): box outside '
            'the 2048x1371 image, skipped: [2100, 10, 50, 50]') in lines
    # Every real box counted, as the file has them.
    counts = file_counts(root, 'train')
    assert table(lines) == {name: str(counts[name] - (name == 'circle')
                                      - (name == 'square')) for name in ROBOFLOW_CLASSES}


def test_training_log_accounts_for_every_box(repo, tmp_path):
    """The train dataset built as training builds it (raise_on_defects): its log counts
    each kind of skipped or changed box, and kept + skipped = the file's annotations."""
    root = tmp_path / 'export'
    coco = size_mismatch(root)
    cfg = Config.fromfile(config(repo, tmp_path, root))
    dataset, log = log_of(lambda: DATASETS.build(cfg.train_dataloader.dataset))
    prefix = f'ScratchCocoDataset: {root}/train/_annotations.coco.json: '
    assert all(line.startswith(prefix) for line in log)
    counted = {}
    for line in log:
        number, kind = line[len(prefix):].split(' ', 1)
        counted[kind.split(' (e.g. ')[0].split(': not in classes')[0]] = int(number)
    beyond = beyond_json_size(coco, ROBOFLOW_CLASSES)
    assert beyond == 4  # 3 real boxes of the halved image, and the one outside its photo
    assert counted == {
        "annotation(s) of category 'stray' skipped": 1,
        "image(s) whose JSON width x height is not the file's, the file's used": 2,
        "box(es) reaching beyond their image's JSON width x height, judged against the "
        "file's size": beyond,
        'box(es) outside their image, skipped as mmdet does': 1,
        'box(es) under one pixel or of zero area, skipped as mmdet does': 1}
    kept = sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset)))
    skipped = sum(n for kind, n in counted.items() if 'skipped' in kind)
    assert kept + skipped == len(coco['annotations']) == 17


def test_as_a_user_runs_it_no_traceback(repo, tmp_path, python):
    """The command line on the size mismatches with a misspelt class: exit status 1,
    the report, no traceback."""
    root = tmp_path / 'export'
    size_mismatch(root)
    proc = subprocess.run(
        [python, 'tools/check_dataset.py', config(repo, tmp_path, root,
                                                   ('circle', 'sqare', 'triangle', 'star')),
         '--split', 'train'], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    assert "classes ['sqare'] are not among the categories" in proc.stdout
    assert "the file's size is used" in proc.stdout
    assert 'no positive anchor at all' in proc.stdout


def test_no_image_with_objects(repo, tmp_path, check, capsys):
    """A train split whose images have no objects of ``classes`` (here only the stray
    category's): filter_empty_gt would leave no image. check_dataset says so as an
    error, and training's dataset stops with that one line (mmengine would fail on the
    empty list with numpy's 'need at least one array to concatenate')."""
    root = tmp_path / 'export'
    write_roboflow(root, dict(train={exporter_name(1): [('stray', [10, 10, 90, 90], 0)],
                                     exporter_name(2): []}))
    cfg_file = config(repo, tmp_path, root)
    assert check([cfg_file, '--split', 'train', '--anchor-fit-images', '0']) == 1
    ann_file = f'{root}/train/_annotations.coco.json'
    assert (f'    error: {ann_file}: no image has objects: filter_empty_gt leaves none, '
            'and training cannot start') in capsys.readouterr().out.splitlines()
    cfg = Config.fromfile(cfg_file)
    with pytest.raises(DatasetError) as error:
        DATASETS.build(cfg.train_dataloader.dataset)
    assert str(error.value) == (
        f"{ann_file}: filter_cfg {{'filter_empty_gt': True, 'min_size': 32}} leaves none "
        f"of the 2 images: none has an object of classes {ROBOFLOW_CLASSES} (or every "
        'image is under min_size)')
    # Control: the same split with one object of a class builds.
    write_roboflow(root, dict(train={exporter_name(1): [('stray', [10, 10, 90, 90], 0)],
                                     exporter_name(2): [('star', [10, 10, 90, 90], 0)]}))
    assert len(DATASETS.build(Config.fromfile(config(repo, tmp_path, root))
                              .train_dataloader.dataset)) == 1
