#!/usr/bin/env python
"""Fill ``data/`` with a dataset in the layout the configs expect.

    python tools/prepare_data.py kitti_tiny [--src DIR_OR_ZIP] [--out data/kitti_tiny]
    python tools/prepare_data.py voc [--src VOCDEVKIT] [--out data/VOCdevkit] [--years 2007 2012]
    python tools/prepare_data.py shapes [--seed 0] [--num-train 2500] [--num-val 300]
        [--out data/shapes]

KittiTiny comes from ``--src`` (a folder or ``kitti_tiny.zip``), else from the folder
or zip named by ``$KITTI_TINY_SRC``, else from a download of ``--url`` (the official
archive). Every file is checked against ``data/checksums/kitti_tiny.sha256``; a
prepared ``--out`` that still checks out is left as it is, so the command is cheap
to repeat.

VOC: ``--src`` names an existing ``VOCdevkit`` folder (it is linked, not copied),
otherwise the official VOC2007 trainval/test and VOC2012 trainval tars are
downloaded and unpacked. Every id in the image sets must have its annotation and
image.

Shapes is generated (``frcnn_plugin.datasets.shapes``: circles, squares and triangles in
VOC layout), the same bytes for the same parameters: the default ones are checked
against ``data/checksums/shapes.sha256``. ``--out`` remembers its parameters
(``shapes.json``): asked again for the same, it is left as it is; for other sizes of
the same seed (or a set of an older generator) it is generated anew; another seed, or a
folder that is not Shapes, is replaced only with ``--force``.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KITTI_TINY_URL = 'https://download.openmmlab.com/mmdetection/data/kitti_tiny.zip'
KITTI_TINY_SHA256 = REPO / 'data' / 'checksums' / 'kitti_tiny.sha256'
SHAPES_SHA256 = REPO / 'data' / 'checksums' / 'shapes.sha256'
SHAPES_DEFAULTS = dict(seed=0, num_train=2500, num_val=300)
VOC_URLS = {
    '2007': ['http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar',
             'http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar'],
    '2012': ['http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar'],
}
# Image-set sizes of the official releases; another size is reported, not refused.
VOC_SPLITS = {'2007': {'trainval': 5011, 'test': 4952}, '2012': {'trainval': 11540}}


class PrepareError(RuntimeError):
    """A dataset could not be prepared; the message says why and what to do."""


def download(url: str, dest: Path) -> Path:
    """Download ``url`` (http(s) or file://) to ``dest``, via a temporary file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f'downloading {url} -> {dest}', flush=True)
    part = dest.with_name(dest.name + '.part')
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, 'wb') as f:
            shutil.copyfileobj(response, f)
    except OSError as e:  # URLError, HTTPError and socket errors are OSErrors
        part.unlink(missing_ok=True)
        raise PrepareError(f'download of {url} failed: {e}') from None
    part.replace(dest)
    return dest


def unpack(archive: Path, into: Path) -> None:
    """Unpack a .zip or .tar archive into ``into``."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter='data')
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        raise PrepareError(f'{archive}: cannot unpack: {e}') from None


def find_root(folder: Path, marker: str) -> Path:
    """``folder`` or the one sub-folder of it that holds ``marker``."""
    if (folder / marker).exists():
        return folder
    found = sorted(p.parent for p in folder.glob(f'*/{marker}'))
    if len(found) != 1:
        raise PrepareError(f'{folder}: expected {marker} in it or in one sub-folder, '
                           f'found {len(found)}')
    return found[0]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def verify(root: Path, manifest: Path) -> None:
    """Check every file listed in ``manifest`` (sha256sum format) under ``root``."""
    problems = []
    for line in manifest.read_text().splitlines():
        if not line.strip() or line.startswith('#'):
            continue
        expected, name = line.split(maxsplit=1)
        path = root / name
        if not path.is_file():
            problems.append(f'missing {path}')
        elif sha256(path) != expected:
            problems.append(f'checksum mismatch {path}')
    if problems:
        shown = '\n  '.join(problems[:10])
        more = f'\n  ... and {len(problems) - 10} more' if len(problems) > 10 else ''
        raise PrepareError(f'{root} does not match {manifest.name} '
                           f'({len(problems)} problems):\n  {shown}{more}')


def prepare_kitti_tiny(src, out: Path, url: str, force: bool = False) -> Path:
    if out.exists():
        try:
            verify(out, KITTI_TINY_SHA256)
            print(f'{out}: KittiTiny is prepared and checks out')
            return out
        except PrepareError as e:
            if not force:
                raise PrepareError(f'{e}\n{out} exists but is not the expected '
                                   f'KittiTiny; rerun with --force to replace it') from None
            shutil.rmtree(out)

    src = src or os.environ.get('KITTI_TINY_SRC') or None
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix='.kitti_tiny.') as tmp:
        tmp = Path(tmp)
        if src is None:
            try:
                src = download(url, tmp / 'kitti_tiny.zip')
            except PrepareError as e:
                raise PrepareError(
                    f'no KittiTiny source: no --src, $KITTI_TINY_SRC is unset, and the '
                    f'{e}.\nGet kitti_tiny.zip by other means and pass --src PATH.') from None
        src = Path(src)
        if not src.exists():
            raise PrepareError(f'KittiTiny source {src} does not exist')
        if src.is_file():
            unpack(src, tmp / 'unpacked')
            src = tmp / 'unpacked'
        root = find_root(src, 'train.txt')
        staged = tmp / 'kitti_tiny'
        shutil.copytree(root, staged, ignore=shutil.ignore_patterns('__MACOSX'))
        verify(staged, KITTI_TINY_SHA256)
        staged.replace(out)
    print(f'{out}: KittiTiny prepared from {src}')
    return out


def check_voc(devkit: Path, years) -> None:
    """Every id of each official image set has its annotation and image."""
    for year in years:
        voc = devkit / f'VOC{year}'
        for split, official in VOC_SPLITS[year].items():
            ids_file = voc / 'ImageSets' / 'Main' / f'{split}.txt'
            if not ids_file.is_file():
                raise PrepareError(f'{ids_file} not found: is {devkit} a VOCdevkit '
                                   f'with VOC{year} {split}?')
            ids = ids_file.read_text().split()
            missing = [str(p) for i in ids
                       for p in (voc / 'Annotations' / f'{i}.xml',
                                 voc / 'JPEGImages' / f'{i}.jpg') if not p.is_file()]
            if missing:
                raise PrepareError(f'{ids_file}: {len(missing)} files of its ids are '
                                   f'missing, e.g. {missing[:3]}')
            note = '' if len(ids) == official else f' (the official set has {official})'
            print(f'VOC{year} {split}: {len(ids)} images{note}')


def prepare_voc(src, out: Path, years) -> Path:
    if src is not None:
        src = Path(src).resolve()
        check_voc(src, years)
        if out.is_symlink() and out.resolve() == src:
            return out
        if out.exists() or out.is_symlink():
            raise PrepareError(f'{out} exists; remove it to link {src} there instead')
        out.parent.mkdir(parents=True, exist_ok=True)
        out.symlink_to(src, target_is_directory=True)
        print(f'{out} -> {src}')
        return out
    if not out.exists():
        downloads = out.parent / 'downloads'
        with tempfile.TemporaryDirectory(dir=out.parent, prefix='.voc.') as tmp:
            for year in years:
                for url in VOC_URLS[year]:
                    tar = downloads / url.rsplit('/', 1)[1]
                    if not tar.exists():
                        download(url, tar)
                    unpack(tar, Path(tmp))
            Path(tmp, 'VOCdevkit').replace(out)
    check_voc(out, years)
    return out


def prepare_shapes(out: Path, seed: int, num_train: int, num_val: int,
                   force: bool = False) -> Path:
    from frcnn_plugin.datasets.shapes import VERSION, write_shapes

    params = dict(seed=seed, num_train=num_train, num_val=num_val)
    checked = params == SHAPES_DEFAULTS
    # The stamp names the generator's version too: data of an older one is not current.
    params['version'] = VERSION
    stamp = 'shapes.json'
    if out.exists():
        try:
            found = json.loads((out / stamp).read_text())
        except (OSError, ValueError):
            found = None
        if found == params:
            if checked:
                verify(out, SHAPES_SHA256)
            print(f'{out}: Shapes {params} is prepared' + (' and checks out' if checked else ''))
            return out
        # Shapes of the same seed, made by an older generator or with other sizes (the
        # first n images of a split are the same whatever the sizes), is ours to
        # replace: remade. Another seed is replaced only with --force.
        same_seed = (isinstance(found, dict) and found.keys() <= params.keys()
                     and found.get('seed') == seed)
        if same_seed:
            print(f'{out}: Shapes {found} -> generating {params}')
        elif not force:
            raise PrepareError(f'{out} exists but does not hold Shapes {params} '
                               f'({out / stamp}: {found}); rerun with --force to replace it')
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix='.shapes.') as tmp:
        staged = Path(tmp) / 'shapes'
        # One process per core this process may use: the same files, sooner.
        counts = write_shapes(staged, seed=seed, num_train=num_train, num_val=num_val,
                              processes=len(os.sched_getaffinity(0)))
        (staged / stamp).write_text(json.dumps(params) + '\n')
        if checked:
            try:
                verify(staged, SHAPES_SHA256)
            except PrepareError as e:
                raise PrepareError(f'{e}\nThe generator wrote other bytes than the pinned '
                                   'environment (requirements/lock.txt: numpy, Pillow) '
                                   'does') from None
        staged.replace(out)
    print(f'{out}: Shapes generated, seed {seed}: ' + ', '.join(
        f"{split} {c['images']} images, {c['objects']} objects" for split, c in counts.items()))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='dataset', required=True)
    kitti = sub.add_parser('kitti_tiny', help='KittiTiny (75 KITTI images)')
    kitti.add_argument('--src', help='folder or kitti_tiny.zip (default: $KITTI_TINY_SRC, '
                                     'else download --url)')
    kitti.add_argument('--out', type=Path, default=REPO / 'data' / 'kitti_tiny')
    kitti.add_argument('--url', default=KITTI_TINY_URL)
    kitti.add_argument('--force', action='store_true',
                       help='replace an --out that does not check out')
    voc = sub.add_parser('voc', help='PASCAL VOC 2007/2012')
    voc.add_argument('--src', help='an existing VOCdevkit folder (default: download)')
    voc.add_argument('--out', type=Path, default=REPO / 'data' / 'VOCdevkit')
    voc.add_argument('--years', nargs='+', choices=sorted(VOC_SPLITS),
                     default=sorted(VOC_SPLITS))
    shapes = sub.add_parser('shapes', help='synthetic Shapes (circles, squares, triangles; '
                                           'VOC layout), generated')
    shapes.add_argument('--seed', type=int, default=SHAPES_DEFAULTS['seed'])
    shapes.add_argument('--num-train', type=int, default=SHAPES_DEFAULTS['num_train'])
    shapes.add_argument('--num-val', type=int, default=SHAPES_DEFAULTS['num_val'])
    shapes.add_argument('--out', type=Path, default=REPO / 'data' / 'shapes')
    shapes.add_argument('--force', action='store_true',
                        help='replace an --out that holds other data')
    args = parser.parse_args(argv)
    if args.dataset == 'shapes' and min(args.num_train, args.num_val) < 0:
        parser.error('--num-train and --num-val must be >= 0')
    try:
        if args.dataset == 'kitti_tiny':
            prepare_kitti_tiny(args.src, args.out, args.url, args.force)
        elif args.dataset == 'voc':
            prepare_voc(args.src, args.out, args.years)
        else:
            prepare_shapes(args.out, args.seed, args.num_train, args.num_val, args.force)
    except PrepareError as e:
        print(f'prepare_data.py {args.dataset}: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
