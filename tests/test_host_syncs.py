"""Host syncs per training iteration: the places where Python needs a value computed on
the device (``.item()``, ``.tolist()``, ``bool(tensor)``, ``int(tensor)``, ``nonzero`` and
boolean-mask indexing, whose output size only the device knows, ``torch.equal``,
``unique``), each of which makes the host wait for a GPU. On CUDA
``torch.cuda.set_sync_debug_mode`` reports them; this count works on any device by
wrapping those Tensor methods and recording the calls made from frcnn_plugin's code.

Counted over one training step of the all-Scratch R50-FPN detector on two images
(``detector_parity.detector_batch``). The ops take sync-free variants where a sync
waits (``frcnn_plugin.ops.device``: not on the CPU); the step is counted with the CPU's
choices and with the others (forced on the CPU). None is in a per-box loop.

Most syncs follow from the step's fixed shape, bounded per file in ``BUDGET``: per image
(the anchors inside it, assigning and sampling: nonzero picks the positives and
negatives; the proposals big enough) and once per step (the positive RoIs; the RoIs of
each FPN level, read as one count per level). The ops' syncs follow from what they
decided, which depends on the rounding of a randomly initialised model (so on the CPU
model and the thread count): how many boxes survive, how many blocks and in-block
rounds NMS takes, which FPN levels get RoIs. For those, :class:`OpsStructure` records
the calls, blocks and rounds of the step, and its ``syncs`` gives the syncs they make:
per NMS call (off the CPU: its result, whether its blocks settled; on the CPU: whether
the groups stay apart, the per-group path's group sizes and, when it decides, its
result), per block of the CPU's block walk (its kept boxes and, but after the last
block, the surviving ones), per in-block round (whether it changed anything), per
RoIAlign level (the non-zeros; with RoIs, the padded sample count; on the CPU, the
negative-size check). The count must equal that, so one more sync per call, block,
round or box fails it (``test_a_sync_per_box_fails_the_count``).
"""
import copy
import importlib
import inspect
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from detector_parity import all_scratch_r50_fpn, detector_batch, random_boxes

from frcnn_plugin.ops import device

# The modules (frcnn_plugin.ops exports functions of the same names).
nms_module = importlib.import_module('frcnn_plugin.ops.nms')
roi_align_module = importlib.import_module('frcnn_plugin.ops.roi_align')

PACKAGE = str(Path(__file__).resolve().parents[1] / 'frcnn_plugin')
# Per file of frcnn_plugin, the syncs of that training step whose number its shape fixes
# (two images, each through the RPN's and the R-CNN's assigner and sampler; the count is
# the same whatever the weights' rounding): a bound that a new sync in a loop breaks.
BUDGET = {
    'models/rpn_head.py': 4,  # per image: the anchors inside it, the proposals big enough
    'models/bbox_head.py': 1,  # the positive RoIs of the batch
    'models/roi_extractor.py': 1,  # the number of RoIs of each FPN level, read at once
    # per image: the positives (RPN and R-CNN), the RPN's low-quality candidates and claims
    'task_modules/max_iou_assigner.py': 8,
    'task_modules/random_sampler.py': 8,  # per image, RPN and R-CNN: positives, negatives
}


class SyncCounter:
    """Counts the calls of the device-waiting Tensor methods made from ``PACKAGE``,
    by file (relative to the package) and line."""

    METHODS = ('item', 'tolist', '__bool__', '__int__', '__float__', '__index__', 'nonzero',
               'unique', 'unique_consecutive', 'masked_select')

    def __init__(self, monkeypatch):
        self.calls = Counter()
        for name in self.METHODS:
            monkeypatch.setattr(torch.Tensor, name, self._counted(getattr(torch.Tensor, name)))
        for name in ('nonzero', 'unique', 'unique_consecutive', 'equal', 'masked_select'):
            monkeypatch.setattr(torch, name, self._counted(getattr(torch, name)))
        getitem = torch.Tensor.__getitem__

        def masked_getitem(tensor, index):
            indices = index if isinstance(index, tuple) else (index,)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices):
                self._record()
            return getitem(tensor, index)
        monkeypatch.setattr(torch.Tensor, '__getitem__', masked_getitem)

    def _record(self):
        frame = sys._getframe(2)
        path = frame.f_code.co_filename
        if path.startswith(PACKAGE):
            self.calls[(path[len(PACKAGE) + 1:], frame.f_lineno)] += 1

    def _counted(self, method):
        def run(*args, **kwargs):
            self._record()
            return method(*args, **kwargs)
        return run

    def by_file(self):
        files = Counter()
        for (path, _), count in self.calls.items():
            files[path] += count
        return files


class OpsStructure:
    """What NMS and RoIAlign did, in the units their syncs follow: calls, blocks,
    in-block rounds, levels with RoIs. Recorded by wrapping the functions, which the
    ops call through their modules' globals; the wrappers only count, the values are
    the ops' own."""

    def __init__(self, monkeypatch):
        self.n = Counter()
        self._monkeypatch = monkeypatch
        self._wrap(nms_module, '_nms', lambda a, r, before: self.n.update(
            nms=1, thresholded=a['score_threshold'] > 0))
        self._wrap(nms_module, 'groups_kept_apart', lambda a, r, before: self.n.update(apart=1))
        self._wrap(nms_module, 'greedy_nms_per_group', lambda a, r, before: self.n.update(
            grouped=1, grouped_decided=r is not None))
        self._wrap(nms_module, 'greedy_nms_without_waits',
                   lambda a, r, before: self.n.update(waitless=1))
        # A walk's blocks: its calls of greedy_in_block; a block's rounds: its calls of
        # knocked_out (greedy_nms_without_waits calls knocked_out too, without a sync).
        self._wrap(nms_module, 'greedy_nms_in_blocks', lambda a, r, before: self.n.update(
            walks=1, blocks=self.n['in_block'] - before['in_block']))
        self._wrap(nms_module, 'greedy_in_block', lambda a, r, before: self.n.update(
            in_block=1, rounds=self.n['knocked_out'] - before['knocked_out']))
        self._wrap(nms_module, 'knocked_out', lambda a, r, before: self.n.update(knocked_out=1))
        self._wrap(roi_align_module, 'sample_taps', lambda a, r, before: self.n.update(
            size_checks=a['aligned'] and device.host_reads_are_cheap(a['rois']),
            padded_counts=a['sampling_ratio'] <= 0 and a['rois'].size(0) > 0))
        self._wrap(roi_align_module, 'roi_align_avg_sparse',
                   lambda a, r, before: self.n.update(sparse=1))

    def _wrap(self, module, name, record):
        """``module.name`` replaced by a call of it followed by ``record(arguments by
        name, result, the counts before the call)``."""
        original = getattr(module, name)
        signature = inspect.signature(original)

        def run(*args, **kwargs):
            before = self.n.copy()
            result = original(*args, **kwargs)
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            record(arguments.arguments, result, before)
            return result
        self._monkeypatch.setattr(module, name, run)

    def syncs(self):
        """Per op's file, the syncs its recorded structure makes (batched_nms's split
        path, at 10000 boxes or more, is not counted: the steps here have fewer)."""
        n = self.n
        return {
            'ops/nms.py': (
                n['thresholded']        # per call with a score threshold: the candidates
                + n['apart']            # groups_kept_apart: one read of three values (the
                                        # configs here pass its checks before it)
                + 2 * n['grouped']      # greedy_nms_per_group: the group sizes, the longest
                + n['grouped_decided']  # and, when it decides, its kept boxes (a mask)
                + 2 * n['blocks'] - n['walks']  # per block its kept boxes, and but for
                                                # a walk's last the surviving ones
                + n['rounds']           # per in-block round: whether it changed anything
                + 2 * n['waitless']),   # its result, whether all its blocks settled
            'ops/roi_align.py': (
                n['size_checks']        # per level, on the CPU: any negative size
                + n['padded_counts']    # per level with RoIs: the most samples per bin
                + n['sparse']),         # per level: the non-zero weights
        }


def test_counter_sees_syncs_from_the_package(monkeypatch):
    """The control: the counter attributes a sync to the package line that made it."""
    from frcnn_plugin.task_modules.random_sampler import ScratchRandomSampler
    counter = SyncCounter(monkeypatch)
    ScratchRandomSampler._choose(torch.tensor([True, False, True]), 5)
    assert list(counter.by_file().items()) == [('task_modules/random_sampler.py', 1)]
    assert bool(torch.tensor(True))  # from the tests: not counted
    assert counter.by_file()['task_modules/random_sampler.py'] == 1


def counted_ops(monkeypatch, variants):
    """The counter and the ops' structure recorder, with the ops' variants of the CPU
    (``'cpu'``) or of devices where a sync waits (``'elsewhere'``, forced on the CPU)."""
    if variants == 'elsewhere':
        monkeypatch.setattr(device, 'host_reads_are_cheap', lambda tensor: False)
    return SyncCounter(monkeypatch), OpsStructure(monkeypatch)


def report(counter, structure):
    lines = [f'{path}:{line} {n}' for (path, line), n in sorted(counter.calls.items())]
    return '\n'.join(lines + [f'structure: {dict(sorted(structure.n.items()))}'])


def assert_ops_follow_their_structure(counter, structure):
    found = counter.by_file()
    for path, expected in structure.syncs().items():
        assert found[path] == expected, (
            f'{path}: {found[path]} syncs, its structure makes {expected}\n'
            f'{report(counter, structure)}')


def chain(n):
    """``n`` boxes in a row, each overlapping the next by IoU 0.79 and the one after by
    0.61, scores falling along it: greedy NMS at 0.7 keeps every other box, and the
    in-block iteration settles one box per round (more rounds than
    ``DEVICE_ROUNDS``, so off the CPU the NMS reruns as the block walk)."""
    x = torch.arange(n, dtype=torch.float32) * 1.2
    boxes = torch.stack((x, torch.zeros(n), x + 10, torch.full((n,), 10.)), 1)
    return boxes, torch.linspace(1, 0.5, n)


# The training step takes the NMS paths its rounding leads to (with some CPUs and thread
# counts no block walk at all), so each path is also counted on inputs that take it
# whatever the rounding: boxes, scores, groups (None: nms(), else batched_nms()), score
# threshold.
def nms_cases():
    g = torch.Generator().manual_seed(0)
    many = random_boxes(1500, 200, 300, g)  # the block walk: several blocks
    scores = torch.rand(1500, generator=g)
    levels = torch.arange(4).repeat_interleave(200)  # groups of 200: decided per group
    return {
        'walk': (many, scores, None, 0),
        'thresholded': (many, scores, None, 0.5),
        'chain': (*chain(40), None, 0),
        'per_group': (many[:800], scores[:800], levels, 0),
        # a group longer than 2 * BLOCK: the per-group path declines, the walk decides
        'long_group': (many[:800], scores[:800], (levels > 0).long(), 0),
    }


def run_nms(boxes, scores, groups, score_threshold):
    if groups is None:
        return nms_module.nms(boxes, scores, 0.7, score_threshold=score_threshold)
    cfg = dict(type='nms', iou_threshold=0.7, score_threshold=score_threshold)
    return nms_module.batched_nms(boxes, scores, groups, cfg)[1]


@pytest.mark.parametrize('variants', ['cpu', 'elsewhere'])
@pytest.mark.parametrize('case', list(nms_cases()))
def test_nms_syncs_follow_its_structure(monkeypatch, variants, case):
    """Each path of NMS makes the syncs ``OpsStructure.syncs`` gives for what it did."""
    inputs = nms_cases()[case]
    counter, structure = counted_ops(monkeypatch, variants)
    run_nms(*inputs)
    assert structure.n['nms'] == 1
    assert_ops_follow_their_structure(counter, structure)


def test_a_sync_per_box_fails_the_count(monkeypatch):
    """The control: one more sync per kept box of each NMS block, made from NMS's file,
    is counted and breaks the equality."""
    code = compile('def read_each(keep):\n    return [int(k) for k in keep.nonzero()]\n',
                   nms_module.__file__, 'exec')  # the reads then count as made in ops/nms.py
    namespace = {}
    exec(code, namespace)
    greedy_in_block = nms_module.greedy_in_block

    def with_a_read_per_box(suppress):
        keep = greedy_in_block(suppress)
        namespace['read_each'](keep)
        return keep
    monkeypatch.setattr(nms_module, 'greedy_in_block', with_a_read_per_box)
    counter, structure = counted_ops(monkeypatch, 'cpu')
    run_nms(*nms_cases()['walk'])
    with pytest.raises(AssertionError, match='ops/nms.py: [0-9]+ syncs, its structure'):
        assert_ops_follow_their_structure(counter, structure)


@pytest.mark.slow
@pytest.mark.parametrize('variants', ['cpu', 'elsewhere'])
def test_syncs_per_training_step(monkeypatch, repo, variants):
    model, optim = all_scratch_r50_fpn(repo)
    batch = detector_batch()
    model.train_step(copy.deepcopy(batch), optim)  # warm-up: lazy initialisations
    counter, structure = counted_ops(monkeypatch, variants)
    torch.manual_seed(0)
    model.train_step(copy.deepcopy(batch), optim)
    found = counter.by_file()
    ops = structure.syncs()
    assert set(found) <= set(BUDGET) | set(ops), report(counter, structure)
    for path, count in found.items():
        if path in BUDGET:
            assert count <= BUDGET[path], (f'{path}: {count} syncs, budget {BUDGET[path]}\n'
                                           f'{report(counter, structure)}')
    assert structure.n['nms'] == 2  # the RPN's: one per image, for all its levels
    assert_ops_follow_their_structure(counter, structure)
