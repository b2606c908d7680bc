import math

import mmcv
import numpy as np
import pytest
from PIL import Image

from frcnn_plugin.datasets.defects import DatasetError, Defect, box_defect, image_size


@pytest.mark.parametrize('bbox, expected', [
    ([0, 0, 40, 30], None),  # the whole 40 x 30 image: inside
    ([10.5, 2, 12, 3], None),
    ([5, 5, 4, 9], ('inverted box (x2 < x1 or y2 < y1): [5, 5, 4, 9]', True)),
    ([5, 5, 9, 4], ('inverted box (x2 < x1 or y2 < y1): [5, 5, 9, 4]', True)),
    ([5, 5, 5, 9], ('zero-size box: [5, 5, 5, 9]', True)),
    ([5, math.nan, 6, 9], ('box is not 4 finite numbers: [5, nan, 6, 9]', True)),
    ([5, 5, 6], ('box is not 4 finite numbers: [5, 5, 6]', True)),
    ([-1, 5, 6, 9], ('box reaches outside the 40x30 image: [-1, 5, 6, 9]', False)),
    ([5, 5, 6, 30.5], ('box reaches outside the 40x30 image: [5, 5, 6, 30.5]', False)),
])
def test_box_defect(bbox, expected):
    assert box_defect(bbox, 40, 30) == expected


def test_dataset_error_lists_errors_from_the_first_path_line():
    defects = [Defect('a.xml', 3, 'one'), Defect('ids.txt', None, 'two')]
    error = DatasetError(defects)
    assert isinstance(error, ValueError)
    assert str(error) == 'a.xml:3: one\nids.txt: two'
    assert error.defects == defects
    assert str(DatasetError(defects, max_shown=1)).splitlines() == [
        'a.xml:3: one', '... 2 errors in all, the first 1 shown; python '
        'tools/check_dataset.py CONFIG lists every one']


@pytest.mark.parametrize('suffix', ['.jpg', '.png'])
@pytest.mark.parametrize('orientation', [None, 1, 3, 6, 8])
def test_image_size_is_the_decoded_image_s(tmp_path, suffix, orientation):
    """The header's size, turned a quarter by an EXIF orientation as mmcv's decoder
    (the pipeline's LoadImageFromFile) turns the pixels."""
    path = tmp_path / f'photo{suffix}'
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.new('RGB', (60, 40), (10, 20, 30)).save(path, exif=exif)
    height, width = mmcv.imfrombytes(path.read_bytes()).shape[:2]
    assert image_size(str(path)) == (width, height)
    assert (width, height) == ((40, 60) if orientation in (6, 8) else (60, 40))


def test_image_size_of_what_is_no_image(tmp_path):
    with pytest.raises(FileNotFoundError):
        image_size(str(tmp_path / 'none.jpg'))
    (tmp_path / 'text.jpg').write_text('not an image')
    with pytest.raises(OSError):
        image_size(str(tmp_path / 'text.jpg'))


@pytest.mark.parametrize('suffix', ['.jpg', '.png'])
def test_image_size_of_a_file_cut_short(tmp_path, suffix):
    """A truncated JPEG / PNG has a whole header, but OpenCV cannot decode it: an
    OSError here, not an error of LoadImageFromFile mid-training (the whole file, the
    control, is read)."""
    path = tmp_path / f'photo{suffix}'
    pixels = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    assert image_size(str(path)) == (60, 40)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    assert mmcv.imfrombytes(path.read_bytes()) is None
    with pytest.raises(OSError, match='truncated'):  # PIL's words for a PNG's EXIF
        image_size(str(path))
