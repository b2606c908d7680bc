"""Hostile checkpoints against every path that loads one, with frcnn_plugin imported.

Each payload is pickle bytecode assembled here (protocol 2, the opcodes torch's weights-only
unpickler reads) and written as the ``data.pkl`` of a zip saved by ``torch.save``. Payloads
that run code touch a marker file; each must be refused with a clear error, create no file
and leave ``HistoryBuffer`` (its methods and its class-level statistics registry) as it was,
whether loaded by plain ``torch.load``, mmengine's ``_load_checkpoint``, ``load_checkpoint``
into a model or a ``Runner`` resume (``load_from``, ``--resume``, ``tools/test.py`` and
``init_detector`` all end in ``_load_checkpoint``).
"""
import pickle
import struct
import threading
import zipfile

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint
from test_checkpoint import Toy

import frcnn_plugin  # noqa: F401  (what every config imports)
from frcnn_plugin.engine.checkpoint import loading_mmengine_checkpoints

HISTORY_BUFFER = 'mmengine.logging.history_buffer.HistoryBuffer'
REBUILD_FROM_TYPE = 'torch._tensor._rebuild_from_type_v2'


# A small pickle assembler: each function returns the bytecode that pushes one value.
def glob(dotted: str) -> bytes:
    module, name = dotted.rsplit('.', 1)
    return pickle.GLOBAL + f'{module}\n{name}\n'.encode()


def text(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + struct.pack('<I', len(data)) + data


def integer(value: int) -> bytes:
    return pickle.BININT + struct.pack('<i', value)


def tup(*items: bytes) -> bytes:
    return pickle.MARK + b''.join(items) + pickle.TUPLE


def listing(*items: bytes) -> bytes:
    """A list: its items are evaluated in order (a way to sequence steps)."""
    return pickle.EMPTY_LIST + pickle.MARK + b''.join(items) + pickle.APPENDS


def mapping(*pairs) -> bytes:
    return pickle.EMPTY_DICT + pickle.MARK + b''.join(k + v for k, v in pairs) + pickle.SETITEMS


def call(func: bytes, *args: bytes) -> bytes:  # REDUCE
    return func + tup(*args) + pickle.REDUCE


def new(cls: bytes, *args: bytes) -> bytes:  # NEWOBJ
    return cls + tup(*args) + pickle.NEWOBJ


def build(obj: bytes, state: bytes) -> bytes:  # BUILD: obj.__setstate__(state)
    return obj + state + pickle.BUILD


def put(value: bytes, slot: int) -> bytes:
    return value + pickle.BINPUT + bytes([slot])


def get(slot: int) -> bytes:
    return pickle.BINGET + bytes([slot])


def raw(data: bytes) -> bytes:
    """bytes, as protocol 2 pickles them."""
    if not data:
        return call(glob('builtins.bytes'))
    return call(glob('_codecs.encode'), text(data.decode('latin1')), text('latin1'))


def rebuild_from_type(func: bytes, new_type: bytes, args: bytes, state: bytes = pickle.NONE):
    """torch's own allowlisted call gadget: ``func(*args)``, then ``state`` set on it."""
    return call(glob(REBUILD_FROM_TYPE), func, new_type, args, state)


def value(item) -> bytes:
    """A plain value (str, int, None) or, as is, bytecode already assembled (bytes)."""
    if item is None:
        return pickle.NONE
    return text(item) if isinstance(item, str) else integer(item) if isinstance(item, int) else item


# The dtype states numpy writes for 'f8' and 'O8'.
F8_STATE = (3, '<', None, None, None, -1, -1, 0)
O8_STATE = (3, '|', None, None, None, -1, -1, 63)


def numpy_dtype(spec: str, state) -> bytes:
    """``numpy.dtype(spec)`` completed by ``state`` (BUILD), as numpy pickles a dtype."""
    return build(call(glob('numpy.dtype'), text(spec), pickle.NEWFALSE, pickle.NEWTRUE),
                 tup(*map(value, state)))


def numpy_array(shape, dtype: bytes, data: bytes) -> bytes:
    """An ndarray as numpy pickles it: ``_reconstruct(ndarray, (0,), b'b')`` then its state."""
    start = call(glob('numpy._core.multiarray._reconstruct'), glob('numpy.ndarray'),
                 tup(integer(0)), raw(b'b'))
    return build(start, tup(integer(1), tup(*map(integer, shape)), dtype, pickle.NEWFALSE, data))


def history_buffer(statistics: bytes = None, how: str = 'build') -> bytes:
    """A HistoryBuffer whose state carries ``statistics`` as its ``statistics_methods``."""
    f8 = numpy_dtype('f8', F8_STATE)
    state = mapping((text('max_length'), integer(10)),
                    (text('_log_history'), numpy_array((0, ), f8, raw(b''))),
                    (text('_count_history'), numpy_array((0, ), f8, raw(b''))),
                    (text('statistics_methods'), statistics or mapping()))
    if how == 'build':
        return build(new(glob(HISTORY_BUFFER)), state)
    return rebuild_from_type(glob(HISTORY_BUFFER), glob(HISTORY_BUFFER), tup(), state)


def hb_getattr(obj: bytes, name: str) -> bytes:
    return call(glob('builtins.getattr'), obj, text(name))


POISON = ('__getattribute__', '__class__', '__init__', '__globals__', '__builtins__',
          '__subclasses__', '__reduce_ex__')


def poison(names=POISON, how='build') -> bytes:
    """A HistoryBuffer whose statistics_methods name dunders: at bb3cc22 its
    ``__setstate__`` copies them into the class-level registry ``getattr`` trusts."""
    return history_buffer(mapping(*[(text(n), integer(0)) for n in names]), how)


def eval_chain(code: str) -> bytes:
    """The chain of the report: poison the registry, look dunders up through ``getattr``,
    call them through ``_rebuild_from_type_v2``: ``HistoryBuffer.__init__.__builtins__
    ['eval'](code)``."""
    hb = glob(HISTORY_BUFFER)
    getattribute, type_, dict_, builtin_type, eval_ = 1, 2, 3, 4, 5
    return listing(
        poison(),
        put(hb_getattr(hb, '__getattribute__'), getattribute),  # object.__getattribute__
        put(hb_getattr(hb, '__class__'), type_),  # type
        # dict: object.__getattribute__({}, '__class__')
        put(rebuild_from_type(get(getattribute), get(type_),
                              tup(pickle.EMPTY_DICT, text('__class__'))), dict_),
        # builtin_function_or_method: _codecs.encode.__class__
        put(rebuild_from_type(get(getattribute), get(type_),
                              tup(glob('_codecs.encode'), text('__class__'))), builtin_type),
        # HistoryBuffer.__init__.__builtins__.get('eval')
        put(rebuild_from_type(
            rebuild_from_type(get(getattribute), get(builtin_type), tup(
                rebuild_from_type(get(getattribute), get(dict_),
                                  tup(hb_getattr(hb, '__init__'), text('__builtins__'))),
                text('get'))),
            get(builtin_type), tup(text('eval'))), eval_),
        rebuild_from_type(get(eval_), get(dict_), tup(text(code))))


def touch(marker: str) -> str:
    return f'open({marker!r}, "w").close()'


def set_class_attribute() -> bytes:
    """``setattr(HistoryBuffer, 'update', ...)`` through the setattr of
    ``_rebuild_from_type_v2``'s state, on ``type(buffer)`` looked up with a poisoned getattr."""
    hb = glob(HISTORY_BUFFER)
    return listing(
        poison(('__getattribute__', '__class__')),
        rebuild_from_type(hb_getattr(hb, '__getattribute__'), hb_getattr(hb, '__class__'),
                          tup(history_buffer(), text('__class__')),
                          mapping((text('update'), glob(REBUILD_FROM_TYPE)))))



# name: (payload(marker) -> bytecode, what the refusal says).
ATTACKS = {
    # Reduce straight to code.
    'reduce os.system': (lambda m: call(glob('os.system'), text(f'touch {m}')), 'blocked'),
    'reduce posix.system': (lambda m: call(glob('posix.system'), text(f'touch {m}')),
                            'blocked'),
    'reduce eval': (lambda m: call(glob('builtins.eval'), text(touch(m))), 'Unsupported global'),
    'reduce exec': (lambda m: call(glob('builtins.exec'), text(touch(m))), 'Unsupported global'),
    'reduce subprocess': (lambda m: call(glob('subprocess.check_call'),
                                         listing(text('touch'), text(m))), 'Unsupported global'),
    # getattr to dunders, and beyond the statistics methods.
    **{f'getattr {name}': (lambda m, name=name: hb_getattr(glob(HISTORY_BUFFER), name),
                           'getattr') for name in POISON},
    'getattr on a statistics method': (
        lambda m: hb_getattr(hb_getattr(glob(HISTORY_BUFFER), 'mean'), '__globals__'), 'getattr'),
    'getattr on torch': (lambda m: hb_getattr(glob('torch.Tensor'), '__init__'), 'getattr'),
    # Class-level state written while loading.
    'poison the registry (BUILD)': (lambda m: poison(), 'statistics_methods'),
    'poison the registry (_rebuild_from_type_v2)': (lambda m: poison(how='rebuild'),
                                                    'statistics_methods'),
    'replace mean in the registry': (
        lambda m: history_buffer(mapping((text('mean'), glob(REBUILD_FROM_TYPE)))),
        'statistics_methods'),
    'BUILD a finished HistoryBuffer again': (
        lambda m: listing(put(history_buffer(), 1), build(get(1), mapping(
            (text('statistics_methods'), mapping((text('__init__'), integer(0))))))),
        'Can only build'),
    'instance registry through an extra field': (
        lambda m: build(new(glob(HISTORY_BUFFER)), mapping(
            (text('max_length'), integer(1)),
            (text('_statistics_methods'), mapping((text('mean'), glob(REBUILD_FROM_TYPE)))))),
        'fields'),
    'poison, getattr dunders, call: eval': (lambda m: eval_chain(touch(m)), 'statistics_methods'),
    'setattr on HistoryBuffer via rebuild state': (lambda m: set_class_attribute(),
                                                   'statistics_methods'),
    # torch's own rebuild functions as gadgets.
    'rebuild_from_type_v2 calls getattr': (
        lambda m: rebuild_from_type(glob('builtins.getattr'), glob('torch.Tensor'),
                                    tup(glob(HISTORY_BUFFER), text('__init__'))), 'getattr'),
    'rebuild_wrapper_subclass of HistoryBuffer': (
        lambda m: call(glob('torch._utils._rebuild_wrapper_subclass'), glob(HISTORY_BUFFER),
                       glob('torch.float32'), tup(integer(2)), tup(integer(1)), integer(0),
                       call(glob('torch.serialization._get_layout'), text('torch.strided')),
                       text('cpu'), pickle.NEWFALSE),
        'does not inherit from Tensor'),
    'rebuild_parameter_with_state sets __class__': (
        lambda m: call(glob('torch._utils._rebuild_parameter_with_state'),
                       call(glob('torch._utils._rebuild_meta_tensor_no_storage'),
                            glob('torch.float32'), tup(integer(2)), tup(integer(1)),
                            pickle.NEWFALSE),
                       pickle.NEWFALSE, call(glob('collections.OrderedDict')),
                       mapping((text('__class__'), glob(HISTORY_BUFFER)))),
        '__class__'),
    'scalar(object dtype) as identity': (
        lambda m: rebuild_from_type(glob('numpy._core.multiarray.scalar'), glob(HISTORY_BUFFER),
                                    tup(numpy_dtype('O8', O8_STATE), glob(HISTORY_BUFFER))),
        'numpy.dtype'),
    # numpy objects.
    'numpy object dtype': (lambda m: numpy_dtype('O8', O8_STATE), 'numpy.dtype'),
    'numpy object array': (
        lambda m: numpy_array((2, ), numpy_dtype('O8', O8_STATE),
                              listing(text('x'), glob('builtins.getattr'))), 'numpy.dtype'),
    'numpy.ndarray(shape, "O")': (
        lambda m: call(glob('numpy.ndarray'), tup(integer(2)), text('O')), 'numpy.ndarray'),
    'numpy.dtypes.ObjectDType()': (lambda m: call(glob('numpy.dtypes.ObjectDType')),
                                   'Unsupported global'),
    'numpy structured dtype with an object field': (
        lambda m: numpy_dtype('V8', (3, '|', None, tup(text('a')),
                                     mapping((text('a'), tup(numpy_dtype('O8', O8_STATE),
                                                             integer(0)))), 8, 1, 63)),
        'numpy.dtype'),
    'our dtype stand-in named directly': (
        lambda m: build(new(glob('frcnn_plugin.engine.checkpoint.UnpickledDtype')),
                        tup(*map(value, O8_STATE))), 'without numpy.dtype'),
    'numpy float64 flagged as holding objects': (
        lambda m: numpy_array((1, ), numpy_dtype('f8', (3, '<', None, None, None, -1, -1, 1)),
                              raw(bytes(8))), 'dtype state'),
}


def write_checkpoint(path, payload: bytes):
    """``{'state_dict': {}, 'meta': {'payload': <payload>}}`` in torch's zip format."""
    torch.save({}, path)
    with zipfile.ZipFile(path) as archive:
        records = {name: archive.read(name) for name in archive.namelist()}
    (data_pkl, ) = [name for name in records if name.endswith('/data.pkl')]
    records[data_pkl] = (pickle.PROTO + bytes([2]) + mapping(
        (text('state_dict'), pickle.EMPTY_DICT),
        (text('meta'), mapping((text('payload'), payload)))) + pickle.STOP)
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in records.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    return Runner(model=Toy(), work_dir=str(tmp_path_factory.mktemp('runner')),
                  experiment_name='hostile_checkpoints', log_level='ERROR',
                  default_scope='mmdet')  # conftest's: a runner makes its scope current


LOADERS = {
    'torch.load': lambda path, runner: torch.load(path),
    '_load_checkpoint': lambda path, runner: _load_checkpoint(str(path)),
    'load_checkpoint': lambda path, runner: load_checkpoint(Toy(), str(path)),
    'Runner.resume': lambda path, runner: runner.resume(str(path)),
}


def class_state():
    """What loading must not change: HistoryBuffer's attributes and statistics registry."""
    return dict(vars(HistoryBuffer)), dict(HistoryBuffer._statistics_methods)


@pytest.fixture
def untouched_history_buffer():
    """Checks nothing changed, and puts it back whatever happened (a failing attack must not
    leave the next test a poisoned class)."""
    HistoryBuffer()  # mmengine's default statistics registered, as in any run
    attributes, registry = class_state()
    yield
    try:
        assert class_state() == (attributes, registry), 'loading changed HistoryBuffer'
    finally:
        for name in set(vars(HistoryBuffer)) - set(attributes):
            delattr(HistoryBuffer, name)
        for name, value in attributes.items():
            if name not in ('__dict__', '__weakref__', '__doc__'):
                setattr(HistoryBuffer, name, value)
        HistoryBuffer._statistics_methods.clear()
        HistoryBuffer._statistics_methods.update(registry)


@pytest.mark.parametrize('loader', LOADERS)
@pytest.mark.parametrize('attack', ATTACKS)
def test_hostile_checkpoint_is_refused(attack, loader, runner, tmp_path,
                                       untouched_history_buffer):
    payload, reason = ATTACKS[attack]
    marker = tmp_path / 'pwned'
    path = write_checkpoint(tmp_path / 'evil.pth', payload(str(marker)))
    with pytest.raises((pickle.UnpicklingError, TypeError, RuntimeError)) as error:
        LOADERS[loader](path, runner)
    assert not marker.exists()
    if loader == 'torch.load':  # the plugin adds nothing outside mmengine's loaders
        assert isinstance(error.value, pickle.UnpicklingError)
    else:
        assert reason in str(error.value)
        assert str(path) in str(error.value) + ''.join(getattr(error.value, '__notes__', []))


@pytest.mark.parametrize('url', ['torchvision://vgg16', 'https://example.org/zoo/detector.pth',
                                 'open-mmlab://detectron2/resnet50_caffe'])
def test_hostile_file_in_the_download_cache_is_refused(url, tmp_path, monkeypatch,
                                                       untouched_history_buffer):
    """mmengine loads URLs through torch.hub.load_state_dict_from_url, which defaults to
    weights_only=False: a cached (or served) file would run its code, plugin or not."""
    from mmengine.runner.checkpoint import get_external_models, get_torchvision_models
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    resolved = {'torchvision://vgg16': get_torchvision_models()['vgg16'],
                'open-mmlab://detectron2/resnet50_caffe':
                get_external_models()['detectron2/resnet50_caffe']}
    filename = resolved.get(url, url).rsplit('/', 1)[1]
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    marker = tmp_path / 'pwned'
    write_checkpoint(cache / filename, call(glob('builtins.eval'), text(touch(str(marker)))))
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        _load_checkpoint(url)
    assert not marker.exists()


def test_forcing_weights_only_off_is_refused(tmp_path, monkeypatch, untouched_history_buffer):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 makes torch.load unpickle anything when the caller
    does not pass weights_only, as mmengine's loaders do not."""
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'pwned'
    path = write_checkpoint(tmp_path / 'evil.pth',
                            call(glob('builtins.eval'), text(touch(str(marker)))))
    with pytest.raises(RuntimeError, match='TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        _load_checkpoint(str(path))
    assert not marker.exists()


def test_our_names_allowlisted_process_wide_are_refused(tmp_path, untouched_history_buffer):
    """``add_safe_globals([HistoryBuffer])`` (a common workaround) binds the name to the real
    class, whose ``__setstate__`` writes the registry: which binding a file gets would be
    arbitrary, so the loaders refuse to run rather than guess."""
    path = write_checkpoint(tmp_path / 'evil.pth', poison())
    with torch.serialization.safe_globals([HistoryBuffer]):
        with pytest.raises(RuntimeError, match='HistoryBuffer.*remove it'):
            _load_checkpoint(str(path))


def big(value: int) -> bytes:
    """An int of up to 255 bytes (LONG1)."""
    data = pickle.encode_long(value)
    return pickle.LONG1 + bytes([len(data)]) + data


def f8_array(shape=(1, )) -> bytes:
    return numpy_array(shape, numpy_dtype('f8', F8_STATE), raw(bytes(8)))


U1_STATE = (3, '<', None, None, None, 4, 4, 8)
RECONSTRUCT = 'numpy._core.multiarray._reconstruct'


def loaded_as_plain_data_only():
    """What the loaders must hand back: nothing from the unpickler's stand-ins or globals."""
    unfinished_buffer = new(glob(HISTORY_BUFFER))
    # [t, L] with t = (L, array), L = [t]: a tuple reached again from inside itself
    tuple_cycle = (pickle.EMPTY_LIST + pickle.MARK
                   + put(pickle.MARK + put(pickle.EMPTY_LIST, 1) + f8_array() + pickle.TUPLE, 2)
                   + get(1) + get(2) + pickle.APPEND + pickle.APPENDS)
    return {
        'unfinished HistoryBuffer in a set': call(glob('builtins.set'),
                                                  listing(unfinished_buffer)),
        'array in a tuple in a set': call(glob('builtins.set'), listing(tup(f8_array()))),
        'array in a tuple dict key': mapping((tup(f8_array()), integer(1))),
        'unfinished HistoryBuffer in a Counter': call(glob('collections.Counter'),
                                                      listing(unfinished_buffer)),
        'array in a tuple cycle': tuple_cycle,
        'HistoryBuffer.mean as a value': hb_getattr(glob(HISTORY_BUFFER), 'mean'),
        'getattr as a value': glob('builtins.getattr'),
        'numpy.ndarray as a value': glob('numpy.ndarray'),
        'a stand-in class as a value': glob('frcnn_plugin.engine.checkpoint.UnpickledArray'),
        'backward hook on a parameter': call(glob('torch._utils._rebuild_parameter'),
                                             call(glob('torch.Tensor')), pickle.NEWTRUE,
                                             mapping((integer(0), f8_array()))),
    }


def numpy_edges():
    """Arrays and scalars numpy would build, or choke on, that the loaders must refuse fast."""
    # 4000 sizes of 255 bytes (a 1 MB file): math.prod over them took minutes
    huge_shape = pickle.MARK + big(2**2030 + 1) * 4000 + integer(0) + pickle.TUPLE
    start = call(glob(RECONSTRUCT), glob('numpy.ndarray'), tup(integer(0)), raw(b'b'))
    u1 = numpy_dtype('U1', U1_STATE)
    return {
        'huge shape': (build(start, tup(integer(1), huge_shape, numpy_dtype('f8', F8_STATE),
                                        pickle.NEWFALSE, raw(b''))), 'at most 64 sizes'),
        '65 dims': (f8_array((1, ) * 65), 'at most 64 sizes'),
        'S0 array of 2**40 from no bytes': (
            numpy_array((2**20, 2**20), numpy_dtype('S0', (3, '|', None, None, None, 0, 1, 0)),
                        raw(b'')), 'at least one byte'),
        'size beyond 2**63': (build(start, tup(integer(1), tup(integer(0), big(2**63)),
                                               numpy_dtype('f8', F8_STATE), pickle.NEWFALSE,
                                               raw(b''))), 'each < 2**63'),
        'U0 scalar': (call(glob('numpy._core.multiarray.scalar'),
                           numpy_dtype('U0', (3, '<', None, None, None, 0, 4, 8)), raw(b'')),
                      'at least one byte'),
        'U1 array beyond U+10FFFF': (numpy_array((1, ), u1, raw(b'\xff' * 4)), 'U+10FFFF'),
        'U1 scalar beyond U+10FFFF': (call(glob('numpy._core.multiarray.scalar'), u1,
                                           raw(b'\xff' * 4)), 'U+10FFFF'),
    }


WRONG_ARGUMENTS = {
    '_reconstruct with 4 arguments': call(glob(RECONSTRUCT), glob('numpy.ndarray'),
                                          tup(integer(0)), raw(b'b'), integer(1)),
    'numpy.dtype with 4 arguments': call(glob('numpy.dtype'), text('f8'), pickle.NEWFALSE,
                                         pickle.NEWTRUE, integer(1)),
    'scalar with 1 argument': call(glob('numpy._core.multiarray.scalar'), raw(b'')),
    'getattr with 1 argument': call(glob('builtins.getattr'), glob(HISTORY_BUFFER)),
    'HistoryBuffer(1)': call(glob(HISTORY_BUFFER), integer(1)),
    'NEWOBJ UnpickledArray(1)': new(glob('frcnn_plugin.engine.checkpoint.UnpickledArray'),
                                    integer(1)),
}


def refused(path, match: str):
    with pytest.raises(pickle.UnpicklingError) as error:
        _load_checkpoint(str(path))
    assert f'{path}: frcnn_plugin.engine.checkpoint refuses' in str(error.value)
    assert match in str(error.value)


@pytest.mark.parametrize('case', loaded_as_plain_data_only())
def test_only_plain_data_comes_back(case, tmp_path):
    path = write_checkpoint(tmp_path / 'evil.pth', loaded_as_plain_data_only()[case])
    refused(path, 'hooks' if 'hook' in case else 'in a checkpoint: only tensors')


@pytest.mark.parametrize('case', numpy_edges())
def test_numpy_edges_are_refused_fast(case, tmp_path):
    payload, match = numpy_edges()[case]
    refused(write_checkpoint(tmp_path / 'evil.pth', payload), match)


@pytest.mark.parametrize('case', WRONG_ARGUMENTS)
def test_stand_ins_called_with_wrong_arguments_are_refused(case, tmp_path):
    refused(write_checkpoint(tmp_path / 'evil.pth', WRONG_ARGUMENTS[case]), 'argument')


def test_the_users_own_allowlist_entry_survives_a_load(tmp_path):
    """torch's safe_globals removes its entries by value on exit: ``bytes``, also ours,
    must stay allowlisted when the user had added it."""
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': {}, 'meta': {}}, path)
    torch.serialization.add_safe_globals([bytes])
    try:
        _load_checkpoint(str(path))
        assert bytes in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()


@pytest.mark.parametrize('case', ['HistoryBuffer', 'numpy array', 'getattr'])
def test_other_threads_get_no_stand_ins_during_a_guarded_load(case, tmp_path):
    """The allowlist is process-wide while a guarded load runs: another thread's plain
    torch.load must still refuse, not return unresolved stand-ins."""
    payload = {'HistoryBuffer': new(glob(HISTORY_BUFFER)), 'numpy array': f8_array(),
               'getattr': hb_getattr(glob(HISTORY_BUFFER), 'mean')}[case]
    path = write_checkpoint(tmp_path / 'evil.pth', payload)
    errors = []

    def plain_load():
        try:
            torch.load(path)
        except pickle.UnpicklingError as error:
            errors.append(str(error))

    with loading_mmengine_checkpoints():
        thread = threading.Thread(target=plain_load)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "outside frcnn_plugin's guarded loads" in errors[0]
