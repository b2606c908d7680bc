"""Time our components against MMDetection's (mmcv's, torchvision's) on the same inputs.

    python tools/benchmark.py [--quick] [--json FILE] [--markdown FILE] [--only a,b]
                              [--threads N] [--device cpu|cuda] [--list]

In one process, each case runs ours and theirs alternately (ours, theirs, ours, ...)
after a warm-up of each, so load changes on the machine hit both alike; it reports the
median times and ``ratio = median(ours) / median(theirs)`` (lower is better).
``ratio[name]`` is the worst (largest) ratio of that name's cases. The cases are in
tools/benchmark_cases.py; the tutorials' loop-based anchor target layer (docs/references.md),
timed against ours as ``tutorial_speedup.anchor_target`` (tutorial time / our time), in
tools/benchmark_tutorial.py.
With ``--device cuda`` every case runs on the GPU (each call timed to its end by a
``torch.cuda.synchronize()``); see benchmark_cases.py for the torchvision cases added there
and the mmcv ones left out when mmcv has no CUDA kernels.
"""
import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import env_check  # first: without the environment, one line instead of a traceback

env_check.require_environment()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_cases  # noqa: E402
import benchmark_tutorial  # noqa: E402

# The goals: the largest acceptable ratio per name.
GOALS = {**dict.fromkeys(('anchor_generator', 'assigner', 'sampler', 'coder'), 1.0),
         **dict.fromkeys(('nms', 'roi_align', 'roi_pool'), 1.5),
         **dict.fromkeys(('rpn_head', 'bbox_head', 'train_iter', 'inference'), 1.05),
         # The exported model in onnxruntime against the PyTorch model (ours vs ours).
         'onnxruntime': 0.8}
# Repeats (after one warm-up call each): (light cases, whole-detector cases). Light
# cases stop early, after at least MIN_REPEATS, once a case has run BUDGET_S seconds:
# millisecond cases get many repeats (their medians move a few percent between runs
# with 15), second-long ones a few.
REPEATS = {False: (61, 3), True: (3, 1)}
MIN_REPEATS = 7
BUDGET_S = 10.
# In a --markdown file, this line and everything after it are written by hand (e.g.
# docs/benchmark.md's 'Fast paths'): a new table replaces only what comes before it.
HAND_WRITTEN = '<!-- Written by hand from here on; tools/benchmark.py --markdown keeps it. -->'


def finish_device_work():
    """Wait for the GPU's queued kernels (CUDA calls return before they finish)."""
    if benchmark_cases.DEVICE.type == 'cuda':
        torch.cuda.synchronize()


def median_ms(first, second, repeats, warmup=1, budget_s=float('inf')):
    """Median milliseconds of two zero-argument callables timed alternately,
    ``repeats`` times or, after ``MIN_REPEATS``, until ``budget_s`` seconds have passed."""
    for _ in range(warmup):
        first(), second()
    finish_device_work()
    times = ([], [])
    begin = time.perf_counter()
    for done in range(repeats):
        if done >= MIN_REPEATS and time.perf_counter() - begin > budget_s:
            break
        for fn, out in zip((first, second), times):
            start = time.perf_counter()
            fn()
            finish_device_work()
            out.append(time.perf_counter() - start)
    return tuple(statistics.median(t) * 1e3 for t in times)


def run_cases(names, quick, log):
    """{"name/case": {"ours_ms", "theirs_ms", "ratio"}} for the benchmark ``names``."""
    light, heavy = REPEATS[quick]
    skip_mmcv = (benchmark_cases.DEVICE.type == 'cuda'
                 and not benchmark_cases.mmcv_has_cuda_ops())
    results = {}
    for name in names:
        for case in benchmark_cases.CASES[name](quick):
            if skip_mmcv and case.needs_mmcv_cuda:
                log(f'{name}/{case.name:31s} left out: mmcv was built without CUDA ops')
                continue
            if case.heavy:
                ours, theirs = median_ms(case.ours, case.theirs, heavy)
            else:
                ours, theirs = median_ms(case.ours, case.theirs, light, budget_s=BUDGET_S)
            key = f'{name}/{case.name}'
            results[key] = dict(ours_ms=ours, theirs_ms=theirs, ratio=ours / theirs)
            log(f'{key:36s} ours {ours:10.2f} ms  theirs {theirs:10.2f} ms  '
                f'ratio {ours / theirs:6.3f}')
    return results


def tutorial_speedup(quick):
    """Tutorial time / our time for the anchor target layer on the zebra image."""
    bbox = benchmark_tutorial.zebra_boxes()
    ours = benchmark_tutorial.OursAnchorTarget()
    gts = torch.from_numpy(bbox).float()
    tutorial_ms, ours_ms = median_ms(
        lambda: benchmark_tutorial.tutorial_anchor_target(bbox, np.random.default_rng(0)),
        lambda: ours(gts), 3 if quick else 7)
    return dict(tutorial_ms=tutorial_ms, ours_ms=ours_ms, speedup=tutorial_ms / ours_ms)


def machine(quick):
    import mmcv
    import mmdet
    import mmengine
    cpu = platform.processor()
    if Path('/proc/cpuinfo').exists():
        names = [line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo')
                 if line.startswith('model name')]
        cpu = names[0] if names else cpu
    device = benchmark_cases.DEVICE.type
    if device == 'cuda':
        device = (f'cuda ({torch.cuda.get_device_name()}; mmcv '
                  + ('with' if benchmark_cases.mmcv_has_cuda_ops() else 'without')
                  + ' CUDA ops)')
    try:  # mmcv-lite: mmdet's ops run on backend/mmcv_ext.py (torchvision's kernels)
        importlib.metadata.version('mmcv-lite')
        mmcv_version = f'mmcv-lite {mmcv.__version__} with backend/mmcv_ext.py'
    except importlib.metadata.PackageNotFoundError:
        mmcv_version = f'mmcv {mmcv.__version__}'
    return dict(cpu=cpu, cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
                torch=torch.__version__, mmdet=mmdet.__version__, mmcv=mmcv_version,
                mmengine=mmengine.__version__, python=platform.python_version(),
                date=datetime.datetime.now().isoformat(timespec='seconds'),
                quick=quick, device=device)


def markdown(report):
    m = report['machine']
    lines = ['# Benchmarks: ours vs MMDetection', '',
             'Generated by `python tools/benchmark.py'
             + (' --quick' if m['quick'] else '')
             + (' --device cuda' if m['device'].startswith('cuda') else '')
             + ' --markdown docs/benchmark.md`; '
             'do not edit the tables by hand (the sections after them are written by hand '
             'and kept). Ratio = median(ours) / median(mmdet), lower is better; '
             "a name's ratio is its worst case. The onnxruntime rows time our detector "
             'exported by tools/export.py, in onnxruntime (ours), against the same weights '
             'in PyTorch eager (theirs).', '',
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
             f"{m['device']}; torch {m['torch']}, mmdet {m['mmdet']}, {m['mmcv']}, "
             f"Python {m['python']}; {m['date']}" + (' (quick run)' if m['quick'] else ''), '',
             '| name | case | ours ms | theirs ms | ratio | goal | met? |',
             '| --- | --- | ---: | ---: | ---: | ---: | --- |']
    for key, r in report['cases'].items():
        name, case = key.split('/', 1)
        goal = GOALS[name]
        lines.append(f"| {name} | {case} | {r['ours_ms']:.2f} | {r['theirs_ms']:.2f} | "
                     f"{r['ratio']:.3f} | <= {goal} | {'yes' if r['ratio'] <= goal else 'no'} |")
    if 'anchor_target' in report['tutorial_speedup']:
        s = report['tutorial_speedup']['anchor_target']
        tutorial = report['tutorial_timing']
        # Reported without a goal: the tutorial's loop is bound by Python's dispatch, so
        # the speed-up measures that loop as much as our code.
        lines += ['', '| tutorial speed-up | tutorial ms | ours ms | speed-up |',
                  '| --- | ---: | ---: | ---: |',
                  f"| anchor_target (800x800, zebras) | {tutorial['tutorial_ms']:.1f} | "
                  f"{tutorial['ours_ms']:.2f} | {s:.0f}x |"]
    return '\n'.join(lines) + '\n'


def hand_written(path):
    """The hand-written part of an existing markdown file: from the ``HAND_WRITTEN`` line
    on, after a blank line ('' when there is none)."""
    text = path.read_text() if path.exists() else ''
    start = text.find(HAND_WRITTEN)
    return '' if start < 0 else '\n' + text[start:]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer repeats, smaller detector images (same keys)')
    parser.add_argument('--json', type=Path, help='write the results here')
    parser.add_argument('--markdown', type=Path, help='write the results table here')
    parser.add_argument('--only',
                        help='comma-separated names (default: all, and tutorial_speedup)')
    parser.add_argument('--threads', type=int, help="torch threads (default: torch's)")
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'),
                        help='where the cases run (default: cpu)')
    parser.add_argument('--list', action='store_true', help='print the names and exit')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    names = list(benchmark_cases.CASES)
    if args.list:
        print('\n'.join(names + ['tutorial_speedup.anchor_target']))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('--device cuda: torch sees no CUDA device')
    benchmark_cases.DEVICE = torch.device(args.device)
    register_all_modules()  # the detectors' configs name mmdet's types without a scope
    selected = names if args.only is None else args.only.split(',')
    unknown = set(selected) - set(names) - {'tutorial_speedup'}
    if unknown:
        sys.exit(f'unknown benchmark names: {sorted(unknown)}; --list shows them')
    start = time.perf_counter()
    cases = run_cases([n for n in names if n in selected], args.quick, print)
    report = dict(ratio={}, tutorial_speedup={}, cases=cases, machine=machine(args.quick))
    for key, r in cases.items():
        name = key.split('/')[0]
        report['ratio'][name] = max(report['ratio'].get(name, 0.), r['ratio'])
    if args.only is None or 'tutorial_speedup' in selected:
        report['tutorial_timing'] = tutorial_speedup(args.quick)
        report['tutorial_speedup']['anchor_target'] = report['tutorial_timing']['speedup']
        print(f"tutorial_speedup.anchor_target: {report['tutorial_timing']}")
    print(f'total {time.perf_counter() - start:.1f} s')
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(report) + hand_written(args.markdown))


if __name__ == '__main__':
    main()
