"""Load mmengine checkpoints with ``torch.load(weights_only=True)``, safely, and only there.

mmengine's runner saves, beside the tensors, its ``MessageHub`` state: ``HistoryBuffer``
objects holding numpy arrays, plus numpy scalars in ``meta``. torch's weights-only
unpickler (the default from torch 2.6) refuses those globals, so stock ``tools/test.py``
and ``--resume`` fail with ``UnpicklingError ... HistoryBuffer``. ``weights_only=False``
would run any code pickled into the file; instead, while mmengine loads a checkpoint, the
unpickler may also name these globals, each bound to a stand-in of this module:

- ``mmengine.logging.history_buffer.HistoryBuffer`` -> :class:`UnpickledHistoryBuffer`,
  which checks every field (its ``statistics_methods`` must be mmengine's own four) and
  becomes a genuine ``HistoryBuffer``. mmengine's ``HistoryBuffer.__setstate__`` is never
  run: it copies the file's ``statistics_methods`` into the class-level registry.
- ``builtins.getattr`` -> :func:`history_buffer_getattr`: ``getattr(HistoryBuffer, name)``
  for ``min``, ``max``, ``current``, ``mean`` only, answered with the functions captured
  when this module is imported.
- ``numpy.dtype``, ``numpy[._]core.multiarray._reconstruct`` and ``.scalar``,
  ``numpy.ndarray`` -> stand-ins that accept bool, integer, float, complex and
  fixed-width bytes/str dtypes in exactly the form numpy pickles them, and build the
  arrays and scalars with numpy from the checked state. No object or structured dtype,
  no ``numpy.ndarray(...)`` call, and numpy's own ``dtype.__setstate__`` never sees the
  file (it lets a file mark a float64 dtype as holding object pointers).
- ``builtins.bytes``: protocol 2 pickles ``b''`` as ``bytes()``.

Attack surface (the long version, with the tests, is in the README's Security section).
A file can call every allowlisted callable with arguments built from allowlisted objects:
directly (REDUCE), and through torch's own ``_rebuild_from_type_v2(func, type, args,
state)``, which calls ``func(*args)`` for *any* object on the unpickler's stack and then
``setattr``s the file's ``state`` on the result. So no callable reachable from a file may
return a pre-existing object (a class, a module, a bound method): our stand-ins return
only new checked objects or the four statistics functions (which only read attributes of
their argument), none of our objects can be re-built once complete (a finished buffer is
a ``HistoryBuffer``, which is not allowlisted), and nothing here writes class-level state
but what every new ``HistoryBuffer`` registers: mmengine's four default statistics.
``setattr`` could reach a class only with its metaclass (``type``) on the stack, which
nothing allowlisted returns.

Scope. Nothing is allowlisted process-wide: a plain ``torch.load`` still refuses these
globals. Importing :mod:`frcnn_plugin` re-registers every scheme loader of mmengine's
``CheckpointLoader`` (local files, ``http(s)://``, ``torchvision://``, ``open-mmlab://``,
``pavi://``, ``s3://`` ...; the documented ``register_scheme(..., force=True)``) with
:func:`guard`, so ``load_from``, ``--resume``, ``tools/test.py CONFIG CKPT``,
``init_cfg=dict(type='Pretrained', ...)`` and ``init_detector`` all load through
:func:`loading_mmengine_checkpoints`, and :func:`load` does the same for our own tools.
Inside it ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` is set too, because mmengine's URL
loaders go through ``torch.hub.load_state_dict_from_url``, whose ``weights_only``
defaults to ``False``: without it a ``torchvision://`` or ``https://`` checkpoint (or a
file planted in the hub cache) runs its pickled code, plugin or not. Loaders registered
after this import are not guarded: they refuse mmengine checkpoints (fail closed).

What comes back. :func:`resolve` replaces the array and dtype stand-ins by their numpy
values, then :func:`check_plain` walks the whole result and refuses anything but plain
data (so no stand-in, function or class a file names is ever handed to the caller, in a
set, a dict key or a tuple cycle) and tensors carrying hooks, which torch never saves.
The stand-ins check sizes before computing with them (a shape of thousands of huge ints
would cost minutes), refuse zero-byte dtypes and str data beyond U+10FFFF, and refuse
wrong argument counts with this module's message.

Threads. ``torch.serialization.safe_globals`` and the environment variable are
process-wide, so for the duration of a guarded load every ``torch.load`` in the process
sees them: another thread's ``weights_only=False`` load in that window is made
weights-only (it fails, closed), and another thread's plain ``torch.load`` that names our
globals is refused by the stand-ins themselves, which work only in the thread inside
:func:`loading_mmengine_checkpoints`. torch's allowlist is a module-level set replaced
without a lock, so overlapping ``safe_globals`` contexts could drop each other's entries
mid-load; guarded loads hold one re-entrant lock (nested ones enter the allowlist once),
so they never overlap each other, and on exit remove only the entries they added (an
entry the user had allowlisted, such as ``bytes``, stays).
"""
import contextlib
import functools
import inspect
import math
import os
import pickle
import threading
import types
from collections import Counter, OrderedDict
from typing import Any, Callable

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

# The statistics mmengine registers for every HistoryBuffer, captured now: a file can
# name them, never anything else.
STATISTICS = {name: getattr(HistoryBuffer, name) for name in ('min', 'max', 'current', 'mean')}
_BUFFER_FIELDS = {'max_length', '_log_history', '_count_history'}
# bool, (unsigned) integers, floats, complex, fixed-width bytes and str: no objects.
_DTYPE_KINDS = 'biufcSU'
# numpy 2 moved numpy.core to numpy._core; checkpoints name whichever wrote them.
_NUMPY_MULTIARRAY = (getattr(np, '_core', None) or np.core).multiarray


_MAX_DIMS = 64  # numpy's NPY_MAXDIMS
# What numpy raises on a shape, size or state it cannot build.
_NUMPY_ERRORS = (ValueError, TypeError, OverflowError, MemoryError, SystemError)

_REFUSES = 'frcnn_plugin.engine.checkpoint refuses'
# Set in the thread inside loading_mmengine_checkpoints: torch's allowlist is process-wide.
_THREAD = threading.local()


def _refuse(message: str):
    raise pickle.UnpicklingError(f'{_REFUSES} {message}')


def _check_thread(name: str):
    if not getattr(_THREAD, 'loading', False):
        _refuse(f'{name} outside frcnn_plugin\'s guarded loads (another thread\'s torch.load '
                'while one runs): load mmengine checkpoints with '
                'frcnn_plugin.engine.checkpoint.load')


def _stand_in(function: Callable) -> Callable:
    """``function`` for the unpickler: only in the loading thread, arguments it takes only."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def checked(*args, **kwargs):
        _check_thread(function.__qualname__)
        try:
            signature.bind(*args, **kwargs)
        except TypeError:
            _refuse(f'{function.__qualname__}({", ".join(map(_brief, args))}'
                    f'{", " * bool(args and kwargs)}{_names(kwargs)[1:-1]}): wrong arguments')
        return function(*args, **kwargs)

    return checked


class _StandIn:
    """Made empty by the unpickler (in the loading thread only), completed by ``__setstate__``."""

    def __new__(cls, *args, **kwargs):
        _check_thread(cls.__qualname__)
        if args or kwargs:
            _refuse(f'{cls.__qualname__} with arguments {", ".join(map(_brief, args))}')
        return super().__new__(cls)


def _brief(value) -> str:
    """A short description of a value from the file (never its repr beyond plain data)."""
    if isinstance(value, (type, types.FunctionType)):
        return value.__qualname__  # both data descriptors: the file cannot override them
    if type(value) in (str, bytes, int, float, bool, type(None)):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + '...'
    return f'<{type(value).__name__}>'


def _names(keys) -> str:
    return '{' + ', '.join(sorted(map(_brief, keys))) + '}'


class UnpickledDtype(_StandIn):
    """A numpy dtype named by :func:`unpickled_dtype`, completed by its pickled state."""
    spec = None
    dtype = None

    @_stand_in
    def __setstate__(self, state):
        if self.spec is None or self.dtype is not None:
            _refuse('a numpy dtype state without numpy.dtype(...) or given twice')
        # The state must be exactly what numpy writes for that dtype, in either byte order.
        if (type(state) is tuple and len(state) == 8
                and all(type(x) in (int, str, type(None)) for x in state)
                and state[1] in ('<', '>', '|')):
            dtype = np.dtype(self.spec).newbyteorder(state[1])
            if dtype.__reduce__()[2] == state:
                self.dtype = dtype
                return
        _refuse(f'the numpy dtype state {_brief(state)} for {self.spec!r}: only the state '
                'numpy itself writes for that dtype (no fields, subarrays, flags, metadata)')

    def value(self) -> np.dtype:
        if self.dtype is None:
            _refuse(f'the numpy dtype {self.spec!r}: its pickled state is missing')
        return self.dtype


class UnpickledArray(_StandIn):
    """A numpy array started by :func:`unpickled_reconstruct`, built from its checked state."""
    array = None
    started = False

    @_stand_in
    def __setstate__(self, state):
        if not self.started or self.array is not None:
            _refuse('a numpy array state without _reconstruct(...) or given twice')
        if not (type(state) is tuple and len(state) == 5):
            _refuse(f'the numpy array state {_brief(state)}')
        version, shape, dtype, is_fortran, data = state
        # Sizes checked before math.prod, which is quadratic in the digits of huge ones.
        if not (type(version) is int and version == 1 and type(shape) is tuple
                and len(shape) <= _MAX_DIMS
                and all(type(n) is int and 0 <= n < 2**63 for n in shape)
                and type(dtype) is UnpickledDtype and type(is_fortran) is bool
                and type(data) is bytes):
            _refuse(f'a numpy array state that is not (1, shape (at most {_MAX_DIMS} sizes, '
                    'each < 2**63), dtype, is_fortran, bytes): '
                    f'({", ".join(_brief(x) for x in state)})')
        dtype = dtype.value()
        if len(data) != math.prod(shape) * dtype.itemsize:
            _refuse(f'a numpy array of shape {shape} and dtype {dtype} with {len(data)} bytes')
        _check_code_points(dtype, data)
        try:
            array = _NUMPY_MULTIARRAY._reconstruct(np.ndarray, (0, ), b'b')
            array.__setstate__((1, shape, dtype, is_fortran, data))
        except _NUMPY_ERRORS as error:
            _refuse(f'a numpy array of shape {shape} and dtype {dtype}: {error}')
        self.array = array

    def value(self) -> np.ndarray:
        if self.array is None:
            _refuse('a numpy array whose pickled state is missing')
        return self.array


def _check_code_points(dtype: np.dtype, data: bytes):
    """numpy builds str arrays of any 32-bit values; Python strs end at U+10FFFF."""
    if dtype.kind == 'U' and data and np.frombuffer(
            data, np.dtype('u4').newbyteorder(dtype.byteorder)).max() > 0x10FFFF:
        _refuse(f'a numpy {dtype} value holding a code point beyond U+10FFFF')


@_stand_in
def unpickled_dtype(spec, align=False, copy=True) -> UnpickledDtype:
    """``numpy.dtype(spec, align, copy)`` as the unpickler sees it: plain dtypes only."""
    try:
        canonical = type(spec) is str and np.dtype(spec).__reduce__()[1][0] == spec
    except Exception:  # not a dtype numpy knows
        canonical = False
    if not (canonical and np.dtype(spec).kind in _DTYPE_KINDS and np.dtype(spec).itemsize > 0
            and align is False and type(copy) is bool):
        _refuse(f'numpy.dtype({_brief(spec)}, {_brief(align)}, {_brief(copy)}): only bool, '
                'integer, float, complex and fixed-width bytes/str dtypes (of at least one '
                'byte) are loaded, never object or structured ones')
    dtype = UnpickledDtype()
    dtype.spec = spec
    return dtype


@_stand_in
def ndarray_name(*args, **kwargs):
    """Bound to ``numpy.ndarray``: only names the array type for :func:`unpickled_reconstruct`."""
    _refuse('calling numpy.ndarray(...): arrays load only as numpy pickles them '
            '(_reconstruct, then their state)')


@_stand_in
def unpickled_reconstruct(subtype, shape, dtype) -> UnpickledArray:
    """``numpy.core.multiarray._reconstruct`` as the unpickler sees it: a plain ndarray."""
    if not (subtype is ndarray_name and type(shape) is tuple and shape == (0, )
            and type(dtype) is bytes and dtype == b'b'):
        _refuse(f'_reconstruct({_brief(subtype)}, {_brief(shape)}, {_brief(dtype)}): only '
                'numpy.ndarray, as numpy pickles it')
    array = UnpickledArray()
    array.started = True
    return array


@_stand_in
def unpickled_scalar(dtype, data):
    """``numpy.core.multiarray.scalar`` as the unpickler sees it: plain numpy scalars."""
    if type(dtype) is not UnpickledDtype or type(data) is not bytes:
        _refuse(f'scalar({_brief(dtype)}, {_brief(data)}): only a numpy dtype and its bytes')
    dtype = dtype.value()
    if len(data) != dtype.itemsize:
        _refuse(f'a numpy {dtype} scalar of {len(data)} bytes')
    _check_code_points(dtype, data)
    try:
        return _NUMPY_MULTIARRAY.scalar(dtype, data)
    except _NUMPY_ERRORS as error:
        _refuse(f'a numpy {dtype} scalar: {error}')


class UnpickledHistoryBuffer(_StandIn):
    """Bound to ``HistoryBuffer``'s pickled name: checks the state, becomes a ``HistoryBuffer``.

    The state must hold exactly ``max_length`` (a positive int), ``_log_history`` and
    ``_count_history`` (1-D numeric arrays of one length) and, optionally,
    ``statistics_methods`` naming mmengine's default statistics with their own functions;
    those are dropped, not registered. The instance then becomes a ``HistoryBuffer``
    (``__class__`` assignment), which the unpickler cannot re-build or call again, and
    ensures mmengine's four defaults are registered, as mmengine's ``__init__`` and
    ``__setstate__`` do: never a name or a function from the file.
    """

    @_stand_in
    def __setstate__(self, state):
        if not (type(state) is dict and _BUFFER_FIELDS <= state.keys()
                <= _BUFFER_FIELDS | {'statistics_methods'} and not vars(self)):
            _refuse('a HistoryBuffer state with fields '
                    f'{_names(state) if type(state) is dict else _brief(state)}')
        max_length = state['max_length']
        if type(max_length) is not int or max_length < 1:
            _refuse(f'HistoryBuffer.max_length {_brief(max_length)}')
        history = {}
        for field in ('_log_history', '_count_history'):
            if type(state[field]) is not UnpickledArray:
                _refuse(f'HistoryBuffer.{field} {_brief(state[field])}: not a numpy array')
            history[field] = state[field].value()
            if history[field].ndim != 1 or history[field].dtype.kind not in 'biuf':
                _refuse(f'HistoryBuffer.{field} of shape {history[field].shape} and dtype '
                        f'{history[field].dtype}: not a 1-D numeric array')
        if len(history['_log_history']) != len(history['_count_history']):
            _refuse('a HistoryBuffer whose log and count histories differ in length')
        methods = state.get('statistics_methods', {})
        if type(methods) is not dict or not all(
                type(name) is str and STATISTICS.get(name) is method
                for name, method in methods.items()):
            _refuse('HistoryBuffer.statistics_methods '
                    f'{_names(methods) if type(methods) is dict else _brief(methods)}: only '
                    f'{_names(STATISTICS)} with the functions of mmengine.logging.HistoryBuffer')
        self.__dict__.update(max_length=max_length, **history)
        self.__class__ = HistoryBuffer
        self._set_default_statistics()


@_stand_in
def history_buffer_getattr(obj, name):
    """``getattr`` as the unpickler sees it: ``HistoryBuffer``'s four statistics methods only."""
    if obj is UnpickledHistoryBuffer and type(name) is str and name in STATISTICS:
        return STATISTICS[name]
    owner = 'HistoryBuffer' if obj is UnpickledHistoryBuffer else _brief(obj)
    _refuse(f'getattr({owner}, {_brief(name)}): only the statistics methods '
            f'{_names(STATISTICS)} of mmengine.logging.HistoryBuffer')


def allowlist() -> list:
    """The entries :func:`loading_mmengine_checkpoints` adds to torch's weights-only allowlist.

    Stand-ins are bound to the names mmengine checkpoints use (``(object, 'name')``);
    :class:`UnpickledDtype` and :class:`UnpickledArray` are listed under their own names
    because torch only runs ``__setstate__`` (BUILD) for allowlisted types.
    """
    entries = [(UnpickledHistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
               (history_buffer_getattr, 'builtins.getattr'),
               (unpickled_dtype, 'numpy.dtype'), (ndarray_name, 'numpy.ndarray'),
               UnpickledDtype, UnpickledArray, bytes]
    for core in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries += [(unpickled_reconstruct, f'{core}._reconstruct'),
                    (unpickled_scalar, f'{core}.scalar')]
    return entries


def _entry_name(entry) -> str:
    return entry[1] if isinstance(entry, tuple) else f'{entry.__module__}.{entry.__qualname__}'


# What torch.load reads as "set" in its TORCH_FORCE_* environment variables.
TRUE_VALUES = ('1', 'y', 'yes', 'true')
_LOCK = threading.RLock()


def _checked_allowlist() -> list:
    """:func:`allowlist`, unless torch's process-wide allowlist binds one of its names to
    something else (e.g. ``add_safe_globals([HistoryBuffer])``): which of the two a file
    would get is then arbitrary."""
    entries = allowlist()
    ours = {_entry_name(entry) for entry in entries}
    clashes = sorted(_entry_name(entry) for entry in torch.serialization.get_safe_globals()
                     if _entry_name(entry) in ours and entry not in entries)
    if clashes:
        raise RuntimeError(
            f'torch.serialization.add_safe_globals has allowlisted {", ".join(clashes)} for '
            'the whole process; frcnn_plugin loads mmengine checkpoints safely without '
            'that: remove it (it lets any torch.load run code through HistoryBuffer\'s '
            "statistics registry or numpy's dtype state)")
    return entries


@contextlib.contextmanager
def _weights_only():
    """Every ``torch.load`` weights-only, whatever its caller passes (torch.hub passes
    ``weights_only=False``)."""
    if os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '0') in TRUE_VALUES:
        raise RuntimeError(
            'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set: torch.load would run code pickled into '
            'the checkpoint; frcnn_plugin loads checkpoints weights-only only: unset it')
    previous = os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD')
    os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    try:
        yield
    finally:
        if previous is None:
            del os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD']
        else:
            os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = previous


@contextlib.contextmanager
def loading_mmengine_checkpoints():
    """Within: :func:`allowlist` is allowed and every ``torch.load`` is weights-only.

    Holds :data:`_LOCK`, so guarded loads never overlap; one nested in another (a loader
    calling a loader) finds everything set up already. On exit it removes only the entries
    it added: one the user had allowlisted (e.g. ``bytes``) stays.
    """
    with _LOCK:
        if getattr(_THREAD, 'loading', False):
            yield
            return
        before = set(torch.serialization.get_safe_globals())
        added = [entry for entry in _checked_allowlist() if entry not in before]
        _THREAD.loading = True
        try:
            with _weights_only(), torch.serialization.safe_globals(added):
                yield
        finally:
            _THREAD.loading = False


def resolve(loaded):
    """``loaded`` with every :class:`UnpickledArray`/:class:`UnpickledDtype` replaced by
    its numpy value in dict values, lists, tuples and tensor attributes (in place where
    mutable), then checked by :func:`check_plain`."""
    done = {}  # id -> (object, its value): the object is kept alive, its id never reused

    def visit(obj):
        if id(obj) in done:
            return done[id(obj)][1]
        kind = type(obj)
        done[id(obj)] = (obj, obj.value() if kind in (UnpickledArray, UnpickledDtype) else obj)
        if isinstance(obj, dict):
            for key in list(obj):
                obj[key] = visit(obj[key])
        elif kind is list:
            obj[:] = [visit(item) for item in obj]
        elif kind is tuple:  # a tuple reached again from inside itself stays: check_plain sees it
            done[id(obj)] = (obj, tuple(visit(item) for item in obj))
        if isinstance(obj, (dict, torch.Tensor)) and getattr(obj, '__dict__', None):
            for name, attribute in list(vars(obj).items()):
                vars(obj)[name] = visit(attribute)
        return done[id(obj)][1]

    try:
        resolved = visit(loaded)
        check_plain(resolved)
        return resolved
    except RecursionError:
        _refuse('a checkpoint nested too deeply to check')


# What a loaded checkpoint may hold, by exact type (numpy values and tensors aside).
_PLAIN = {type(None), bool, int, float, complex, str, bytes, bytearray,
          torch.Size, torch.device, torch.dtype, torch.layout, torch.qscheme}
_MAPPINGS = {dict, OrderedDict, Counter}
_COLLECTIONS = {list, tuple, set, frozenset}


def check_plain(loaded) -> None:
    """Refuses anything in ``loaded`` (walked by identity: dict keys and values, members,
    attributes) but plain values, their containers, tensors without hooks (torch never
    saves hooks), numpy arrays, scalars and dtypes of :data:`_DTYPE_KINDS`, and finished
    ``HistoryBuffer`` s: never a stand-in, a function or a class."""
    seen = set()  # loaded keeps every object alive: ids are not reused

    def visit(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        kind = type(obj)
        if kind in _PLAIN:
            return
        if kind is np.ndarray or isinstance(obj, (np.generic, np.dtype)):
            if getattr(obj, 'dtype', obj).kind not in _DTYPE_KINDS:
                _refuse(f'a numpy value of dtype {getattr(obj, "dtype", obj)}')
            return
        if isinstance(obj, torch.Tensor):
            if obj._backward_hooks or getattr(obj, '_post_accumulate_grad_hooks', None):
                _refuse('a tensor with hooks: torch never saves them')
        elif kind in _MAPPINGS:
            for key, value in obj.items():
                visit(key)
                visit(value)
        elif kind in _COLLECTIONS:
            for item in obj:
                visit(item)
        elif kind is not HistoryBuffer:
            _refuse(f'{_brief(obj)} in a checkpoint: only tensors, numpy arrays and scalars, '
                    'HistoryBuffers, plain Python values and containers of them load')
        for attribute in getattr(obj, '__dict__', {}).values():
            visit(attribute)

    visit(loaded)


def load_guarded(load: Callable, source, *args, **kwargs) -> Any:
    """``load(source, *args, **kwargs)`` inside :func:`loading_mmengine_checkpoints`, then
    :func:`resolve`; errors name ``source``."""
    try:
        with loading_mmengine_checkpoints():
            loaded = load(source, *args, **kwargs)
        return resolve(loaded)
    except pickle.UnpicklingError as error:
        message = str(error)
        if _REFUSES in message:  # ours, without torch's advice around it
            message = message[message.index(_REFUSES):].splitlines()[0]
        raise pickle.UnpicklingError(f'{source}: {message}') from error
    except Exception as error:  # e.g. a TypeError from one of torch's rebuild functions
        if hasattr(error, 'add_note'):  # Python >= 3.11
            error.add_note(f'while loading {source} (weights-only, frcnn_plugin.engine.checkpoint)')
        raise


def load(f, map_location=None) -> Any:
    """``torch.load(f, map_location, weights_only=True)`` that also reads mmengine checkpoints."""
    return load_guarded(torch.load, f, map_location=map_location, weights_only=True)


def guard(loader: Callable) -> Callable:
    """A ``CheckpointLoader`` scheme loader that runs ``loader`` through :func:`load_guarded`."""
    if getattr(loader, 'guarded_by_frcnn_plugin', False):
        return loader

    @functools.wraps(loader)  # keeps __name__: mmengine logs 'Loads checkpoint by <name>'
    def guarded(filename, *args, **kwargs):
        return load_guarded(loader, filename, *args, **kwargs)

    guarded.guarded_by_frcnn_plugin = True
    return guarded


def guard_mmengine_loaders() -> None:
    """Re-register every ``CheckpointLoader`` scheme loader through :func:`guard` (idempotent).

    A no-op before torch 2.5, which has no ``safe_globals``.
    """
    if not hasattr(torch.serialization, 'safe_globals'):
        return
    # CheckpointLoader has no public listing of its schemes: _schemes is that table.
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        CheckpointLoader.register_scheme(prefix, guard(loader), force=True)
