import shutil
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tools'))
import prepare_data  # noqa: E402
from prepare_data import PrepareError, main, prepare_kitti_tiny, prepare_shapes, prepare_voc, sha256  # noqa: E402

UNREACHABLE = 'file:///nonexistent/kitti_tiny.zip'


@pytest.fixture
def kitti_zip(kitti_tiny_root, tmp_path_factory):
    """kitti_tiny.zip as the official archive lays it out (a top-level kitti_tiny/)."""
    path = tmp_path_factory.mktemp('zip') / 'kitti_tiny.zip'
    with zipfile.ZipFile(path, 'w') as z:
        for f in sorted(kitti_tiny_root.rglob('*')):
            if f.is_file():
                z.write(f, Path('kitti_tiny') / f.relative_to(kitti_tiny_root))
    return path


def test_from_folder_then_idempotent(kitti_tiny_root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('KITTI_TINY_SRC', raising=False)
    out = tmp_path / 'kitti_tiny'
    prepare_kitti_tiny(str(kitti_tiny_root), out, UNREACHABLE)
    assert (out / 'train.txt').read_text() == (kitti_tiny_root / 'train.txt').read_text()
    assert len(list((out / 'training' / 'image_2').glob('*.jpeg'))) == 75
    stamp = (out / 'train.txt').stat().st_mtime_ns
    prepare_kitti_tiny(None, out, UNREACHABLE)  # nothing to get: already prepared
    assert 'is prepared and checks out' in capsys.readouterr().out
    assert (out / 'train.txt').stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ['kitti_tiny']  # no temporary left


def test_from_zip_env_var_and_download(kitti_zip, tmp_path, monkeypatch):
    monkeypatch.delenv('KITTI_TINY_SRC', raising=False)
    prepare_kitti_tiny(str(kitti_zip), tmp_path / 'a', UNREACHABLE)
    monkeypatch.setenv('KITTI_TINY_SRC', str(kitti_zip))
    prepare_kitti_tiny(None, tmp_path / 'b', UNREACHABLE)
    monkeypatch.delenv('KITTI_TINY_SRC')
    prepare_kitti_tiny(None, tmp_path / 'c', kitti_zip.as_uri())
    for name in 'abc':
        assert (tmp_path / name / 'training' / 'label_2' / '000074.txt').is_file()


def test_corrupt_source_is_refused_and_nothing_is_left(kitti_tiny_root, tmp_path):
    src = tmp_path / 'src'
    shutil.copytree(kitti_tiny_root, src)
    (src / 'training' / 'label_2' / '000007.txt').write_text('Car 0 0 0 1 2 3 4 5 6 7 8 9 10 11\n')
    (src / 'training' / 'image_2' / '000008.jpeg').unlink()
    out = tmp_path / 'out'
    with pytest.raises(PrepareError) as e:
        prepare_kitti_tiny(str(src), out, UNREACHABLE)
    assert '2 problems' in str(e.value)
    assert 'checksum mismatch' in str(e.value) and 'label_2/000007.txt' in str(e.value)
    assert 'missing' in str(e.value) and 'image_2/000008.jpeg' in str(e.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['src']


def test_bad_existing_out_needs_force(kitti_tiny_root, tmp_path):
    out = tmp_path / 'kitti_tiny'
    prepare_kitti_tiny(str(kitti_tiny_root), out, UNREACHABLE)
    (out / 'val.txt').write_text('000050\n')
    with pytest.raises(PrepareError, match='exists but is not the expected KittiTiny'):
        prepare_kitti_tiny(str(kitti_tiny_root), out, UNREACHABLE)
    prepare_kitti_tiny(str(kitti_tiny_root), out, UNREACHABLE, force=True)
    assert len((out / 'val.txt').read_text().split()) == 25


def test_nothing_to_get_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv('KITTI_TINY_SRC', raising=False)
    code = main(['kitti_tiny', '--out', str(tmp_path / 'k'), '--url', UNREACHABLE])
    err = capsys.readouterr().err
    assert code == 2
    assert 'no KittiTiny source: no --src, $KITTI_TINY_SRC is unset' in err
    assert UNREACHABLE in err and 'pass --src PATH' in err
    assert main(['kitti_tiny', '--src', str(tmp_path / 'nope'), '--out',
                 str(tmp_path / 'k')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert not (tmp_path / 'k').exists()


def write_voc(root, ids, skip=()):
    voc = root / 'VOC2007'
    (voc / 'ImageSets' / 'Main').mkdir(parents=True)
    (voc / 'Annotations').mkdir()
    (voc / 'JPEGImages').mkdir()
    for split in ('trainval', 'test'):
        (voc / 'ImageSets' / 'Main' / f'{split}.txt').write_text('\n'.join(ids) + '\n')
    for i in ids:
        if f'{i}.xml' not in skip:
            (voc / 'Annotations' / f'{i}.xml').write_text('<annotation/>')
        (voc / 'JPEGImages' / f'{i}.jpg').write_bytes(b'')
    return root


def test_voc_links_an_existing_devkit(tmp_path, capsys):
    devkit = write_voc(tmp_path / 'VOCdevkit', ['000001', '000002'])
    out = tmp_path / 'data' / 'VOCdevkit'
    prepare_voc(str(devkit), out, ['2007'])
    assert out.is_symlink() and out.resolve() == devkit.resolve()
    assert 'VOC2007 trainval: 2 images (the official set has 5011)' in capsys.readouterr().out
    prepare_voc(str(devkit), out, ['2007'])  # again: nothing to do


def test_voc_missing_files_and_sets_are_errors(tmp_path):
    devkit = write_voc(tmp_path / 'VOCdevkit', ['000001', '000002'], skip={'000002.xml'})
    with pytest.raises(PrepareError, match=r'trainval\.txt: 1 files of its ids are missing'):
        prepare_voc(str(devkit), tmp_path / 'out', ['2007'])
    with pytest.raises(PrepareError, match=r'VOC2012/ImageSets/Main/trainval\.txt not found'):
        prepare_voc(str(devkit), tmp_path / 'out', ['2012'])
    assert not (tmp_path / 'out').exists()


def test_download_failure_names_the_url(tmp_path):
    with pytest.raises(PrepareError, match='download of file:///nonexistent/x.tar failed'):
        prepare_data.download('file:///nonexistent/x.tar', tmp_path / 'x.tar')
    assert list(tmp_path.iterdir()) == []


def test_shapes_generated_remembered_and_replaced_only_with_force(tmp_path, capsys):
    out = tmp_path / 'shapes'
    assert main(['shapes', '--out', str(out), '--num-train', '3', '--num-val', '2']) == 0
    assert 'train 3 images' in capsys.readouterr().out
    assert (out / 'ImageSets/Main/val.txt').read_text() == 'val_000000\nval_000001\n'
    stamp = (out / 'Annotations/train_000002.xml').stat().st_mtime_ns
    prepare_shapes(out, 0, 3, 2)  # the same parameters: left as it is
    assert 'is prepared' in capsys.readouterr().out
    assert (out / 'Annotations/train_000002.xml').stat().st_mtime_ns == stamp
    assert main(['shapes', '--out', str(out), '--seed', '1', '--num-train', '3',
                 '--num-val', '2']) == 2
    err = capsys.readouterr().err
    assert 'does not hold Shapes' in err and 'rerun with --force' in err
    before = sha256(out / 'JPEGImages/train_000000.jpg')
    prepare_shapes(out, 1, 3, 2, force=True)
    assert sha256(out / 'JPEGImages/train_000000.jpg') != before
    assert [p.name for p in tmp_path.iterdir()] == ['shapes']  # no temporary left
    # The same seed from an older generator (its stamp without this one's version) or
    # with other sizes is generated anew; another seed is still not replaced without
    # --force.
    (out / 'shapes.json').write_text('{"seed": 1, "num_train": 3, "num_val": 2}\n')
    (out / 'JPEGImages/train_000000.jpg').write_bytes(b'old')
    prepare_shapes(out, 1, 3, 2)
    assert "-> generating {'seed': 1" in capsys.readouterr().out
    assert (out / 'JPEGImages/train_000000.jpg').read_bytes() != b'old'
    prepare_shapes(out, 1, 4, 2)
    assert "Shapes {'seed': 1, 'num_train': 3" in capsys.readouterr().out
    assert (out / 'ImageSets/Main/train.txt').read_text().split()[-1] == 'train_000003'
    (out / 'shapes.json').write_text('{"seed": 2, "num_train": 3, "num_val": 2}\n')
    with pytest.raises(PrepareError, match='does not hold Shapes'):
        prepare_shapes(out, 1, 3, 2)
    with pytest.raises(SystemExit):  # argparse's error: exit status 2
        main(['shapes', '--out', str(tmp_path / 'x'), '--num-val', '-1'])
    assert 'must be >= 0' in capsys.readouterr().err


def test_shapes_default_seed_matches_the_committed_checksums(tmp_path):
    # The first images of the default set, generated on their own, are the bytes
    # data/checksums/shapes.sha256 lists (the full set is checked by prepare_shapes).
    prepare_shapes(tmp_path / 'shapes', 0, 4, 3)
    manifest = dict(reversed(line.split(maxsplit=1)) for line in
                    prepare_data.SHAPES_SHA256.read_text().splitlines()
                    if line.strip() and not line.startswith('#'))
    checked = 0
    for path in sorted((tmp_path / 'shapes').rglob('*')):
        name = path.relative_to(tmp_path / 'shapes').as_posix()
        if path.is_file() and name.split('/')[0] in ('JPEGImages', 'Annotations'):
            assert sha256(path) == manifest[name], name
            checked += 1
    assert checked == 2 * 7
