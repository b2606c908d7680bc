"""Run mmdet's own command-line tools (``mmdet/.mim/tools/*.py``) unchanged.

Our ``tools/train.py``, ``tools/test.py`` and ``tools/analysis_tools/*.py`` are these
scripts, so they take exactly mmdet's flags and behave as mmdet's; importing
:mod:`frcnn_plugin` first is what they add (our registries, and mmengine checkpoints readable under
torch >= 2.6, see :mod:`frcnn_plugin.engine.checkpoint`), and two checks of the config as the
tool will read it, before its runner starts:

- files: a config, checkpoint or dataset path that does not exist stops the tool with
  one line naming it (for data, with the command that provides it:
  :mod:`frcnn_plugin.utils.missing_data`);
- downloads: pretrained weights that cannot be fetched (no internet) are dropped with
  one warning line each (:mod:`frcnn_plugin.utils.pretrained`), passed on to the tool as
  ``--cfg-options KEY=None``, what ``make train OFFLINE=1`` passes.

For ``train.py --resume`` without a path (or a config's ``resume = True``), the
checkpoint that ``last_checkpoint`` names must load, or the newest one that does is
passed on as ``--resume PATH``, with one line naming both
(:mod:`frcnn_plugin.engine.resume`); none that loads stops the tool with one line.

While the tool runs, errors in a dataset's files (:class:`~frcnn_plugin.datasets.defects.
DatasetError`, raised when the runner builds its data loaders) end the process with
their list of ``path:line: message`` lines instead of a traceback through mmengine, and a
training stopped by SIGINT / SIGTERM (:class:`~frcnn_plugin.engine.hooks.
stop_on_signal_hook.TrainingStopped`) with its one line and exit status 128 + the signal.

For ``--launcher pytorch`` on a machine without CUDA it applies the CPU work-around of
:mod:`frcnn_plugin.utils.dist`. Under any launcher, the process group the tool's runner
initialised is destroyed when the tool returns (mmengine leaves it to interpreter
shutdown, where gloo's threads can abort the process: :mod:`frcnn_plugin.utils.dist`).
"""
import os.path as osp
import runpy
import sys
from typing import List, Sequence

from mmengine.config import Config

from ..datasets.defects import DatasetError
from ..engine.hooks.stop_on_signal_hook import TrainingStopped
from ..engine.resume import NoCompleteCheckpoint, resume_checkpoint
from .dist import destroy_process_group_started_by, skip_cuda_pinning_for_cpu_launch
from .missing_data import missing_data_message
from .pretrained import drop_unfetchable_weights


def mmdet_tool_path(name: str) -> str:
    """Path of mmdet's ``tools/<name>`` as installed with the mmdet package."""
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'mmdet {mmdet.__version__} at {osp.dirname(mmdet.__file__)} ships no '
            f'.mim/tools/{name}; install mmdet from its wheel (pip install mmdet)')
    return path


def tool_config(path: str):
    """(args, config) as mmdet's tool at ``path`` reads them from ``sys.argv``: its own
    ``parse_args`` (mmdet's train.py and test.py both define one), its config merged with
    ``--cfg-options``. A config file that does not exist ends the process with one line."""
    args = runpy.run_path(path, run_name='mmdet_tool')['parse_args']()
    if not osp.isfile(args.config):
        sys.exit(f'frcnn_plugin: config file {args.config} not found')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return args, cfg


def run_mmdet_tool(name: str, loaders: Sequence[str] = (), downloads: bool = False) -> None:
    """Run mmdet's ``tools/<name>`` as ``__main__`` with the current ``sys.argv``.

    First, the datasets of ``loaders`` (e.g. ``'train_dataloader'``) and the tool's
    ``checkpoint`` argument, if it has one (test.py), must be on disk, or the process
    exits with one line; with ``downloads``, weights the config downloads that cannot be
    fetched are dropped, with a warning. A process group that the tool initialised is
    destroyed once it has returned.
    """
    path = mmdet_tool_path(name)
    sys.argv[0] = path
    if loaders or downloads:
        args, cfg = tool_config(path)
        missing = missing_data_message(cfg, loaders, args.config)
        if missing:
            sys.exit(missing)
        checkpoint = getattr(args, 'checkpoint', None)
        if checkpoint and '://' not in checkpoint and not osp.isfile(checkpoint):
            sys.exit(f'frcnn_plugin: checkpoint {checkpoint} not found')
        for key in drop_unfetchable_weights(cfg) if downloads else ():
            sys.argv += ['--cfg-options', f'{key}=None']
        sys.argv += resume_argv(args, cfg)
    skip_cuda_pinning_for_cpu_launch(sys.argv[1:])
    try:
        destroy_process_group_started_by(lambda: runpy.run_path(path, run_name='__main__'))
    except DatasetError as error:
        sys.exit(f'frcnn_plugin: the dataset has errors:\n{error}')
    except TrainingStopped as stop:
        print(f'frcnn_plugin: {stop}', file=sys.stderr)
        sys.exit(128 + stop.signum)


def tool_work_dir(args, cfg) -> str:
    """The work dir mmdet's train.py uses: ``--work-dir``, else the config's ``work_dir``,
    else ``./work_dirs/<config name>``."""
    if args.work_dir is not None:
        return args.work_dir
    return cfg.get('work_dir') or osp.join('./work_dirs',
                                           osp.splitext(osp.basename(args.config))[0])


def resume_argv(args, cfg) -> List[str]:
    """Arguments to add for train.py's resume: ``['--resume', PATH]`` when the checkpoint
    ``last_checkpoint`` names does not load and PATH is the newest that does (one line says
    so), else none. A ``--resume PATH`` that does not exist, or no checkpoint that loads,
    ends the process with one line."""
    if not hasattr(args, 'resume'):  # not train.py
        return []
    resume = args.resume
    if resume not in (None, 'auto'):
        if '://' not in resume and not osp.isfile(resume):
            sys.exit(f'frcnn_plugin: checkpoint {resume} (--resume) not found')
        return []
    if resume is None and not (cfg.get('resume') and cfg.get('load_from') is None):
        return []
    try:
        checkpoint, note = resume_checkpoint(tool_work_dir(args, cfg))
    except NoCompleteCheckpoint as error:
        sys.exit(f'frcnn_plugin: {error}')
    if checkpoint is None:
        return []
    print(f'frcnn_plugin: {note}', file=sys.stderr)
    return ['--resume', checkpoint]


def amp_argv(argv: List[str]) -> List[str]:
    """mmdet's ``train.py`` arguments with ``--amp`` made to work without a GPU.

    mmdet turns ``--amp`` into ``optim_wrapper.type='AmpOptimWrapper'``, which
    refuses to start on a CPU-only machine. There, ``--amp`` becomes
    ``--cfg-options optim_wrapper.type=ScratchAmpOptimWrapper`` (bfloat16 autocast on
    the CPU, :mod:`frcnn_plugin.engine.optimizers.amp_optim_wrapper`), given last so that it wins as
    ``--amp`` does, and one line says so. With a GPU, ``argv`` is returned as it is.
    """
    from ..engine.optimizers.amp_optim_wrapper import accelerator_available
    if '--amp' not in argv or accelerator_available():
        return argv
    print('tools/train.py: --amp without a GPU: training with '
          'optim_wrapper.type=ScratchAmpOptimWrapper (bfloat16 autocast on the CPU)',
          file=sys.stderr)
    return ([arg for arg in argv if arg != '--amp']
            + ['--cfg-options', 'optim_wrapper.type=ScratchAmpOptimWrapper',
               'optim_wrapper.loss_scale=dynamic'])
