"""An ``.onnx`` file handed to tools/test.py or tools/infer.py is untrusted input: one
that onnxruntime cannot run as an exported detector is one line naming the file (not a
traceback from inside onnxruntime), and a file cannot make onnxruntime read outside its
folder (external data) or hand the tools something other than a list of class names."""
import subprocess

import mmcv
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from frcnn_plugin.deploy import UnloadableOnnxModel, open_onnx_model
from frcnn_plugin.deploy.export import INPUT_NAMES, OUTPUT_NAMES


def detector_shaped_model(path, classes=None, external=None):
    """A graph with tools/export.py's inputs and outputs (Identity nodes), its
    ``classes`` metadata set to the string ``classes``; ``external``: an initializer
    whose data lies at that external location."""
    inputs = [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 'h', 'w']),
              helper.make_tensor_value_info('img_shape', TensorProto.INT64, [2])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
               for name in OUTPUT_NAMES]
    nodes = [helper.make_node('Identity', ['image'], [name]) for name in OUTPUT_NAMES]
    initializers = []
    if external is not None:
        tensor = TensorProto(name='w', data_type=TensorProto.UINT8, dims=[8],
                             data_location=TensorProto.EXTERNAL)
        for key, value in (('location', external), ('offset', '0'), ('length', '8')):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        initializers.append(tensor)
        nodes.append(helper.make_node('Identity', ['w'], ['w_out']))
        outputs.append(helper.make_tensor_value_info('w_out', TensorProto.UINT8, [8]))
    model = helper.make_model(helper.make_graph(nodes, 'g', inputs, outputs, initializers),
                              opset_imports=[helper.make_opsetid('', 18)])
    if classes is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = 'classes', classes
    onnx.save(model, str(path))
    return path


def test_a_detector_shaped_file_opens_with_its_class_names(tmp_path):
    path = detector_shaped_model(tmp_path / 'm.onnx', classes='["circle", "square"]')
    session, classes = open_onnx_model(str(path))
    assert classes == ('circle', 'square')
    assert [i.name for i in session.get_inputs()] == INPUT_NAMES
    assert open_onnx_model(str(detector_shaped_model(tmp_path / 'n.onnx')))[1] is None


@pytest.mark.parametrize('classes', ['{"__class__": 1}', '["a", 2]', 'not json', '"ab"'])
def test_class_metadata_that_is_not_a_list_of_names_is_refused(tmp_path, classes):
    path = detector_shaped_model(tmp_path / 'm.onnx', classes=classes)
    with pytest.raises(UnloadableOnnxModel) as error:
        open_onnx_model(str(path))
    assert str(error.value) == f'{path}: its "classes" metadata is not a JSON list of names'


@pytest.mark.parametrize('location', ['../outside.bin', '/etc/hostname'])
def test_external_data_outside_the_models_folder_is_refused(tmp_path, location):
    (tmp_path / 'outside.bin').write_bytes(b'12345678')
    folder = tmp_path / 'model'
    folder.mkdir()
    path = detector_shaped_model(folder / 'm.onnx', external=location)
    with pytest.raises(UnloadableOnnxModel, match='onnxruntime cannot load it: .*External '
                       'data path'):
        open_onnx_model(str(path))


def test_other_files_are_one_line_naming_them(tmp_path):
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a protobuf\r\n')
    with pytest.raises(UnloadableOnnxModel, match=f'^{garbage}: onnxruntime cannot load it: '
                       '.*INVALID_PROTOBUF'):
        open_onnx_model(str(garbage))
    with pytest.raises(UnloadableOnnxModel, match='^ONNX model not found: '):
        open_onnx_model(str(tmp_path / 'none.onnx'))
    other = tmp_path / 'other.onnx'
    onnx.save(helper.make_model(helper.make_graph(
        [helper.make_node('Relu', ['x'], ['y'])], 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])]),
        opset_imports=[helper.make_opsetid('', 18)]), str(other))
    with pytest.raises(UnloadableOnnxModel) as error:
        open_onnx_model(str(other))
    assert str(error.value) == (f"{other}: inputs ['x'], not those of tools/export.py "
                                f"{INPUT_NAMES}")


@pytest.mark.parametrize('tool', ['test', 'infer'])
def test_tools_give_one_line_for_a_file_that_is_no_model(repo, python, tmp_path, tool):
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a protobuf')
    image = tmp_path / 'image.jpg'
    mmcv.imwrite(np.zeros((32, 48, 3), np.uint8), str(image))
    extra = (['--work-dir', tmp_path / 'work'] if tool == 'test' else
             [image, '--out-dir', tmp_path / 'out'])
    proc = subprocess.run([python, f'tools/{tool}.py', 'configs/frcnn_shapes.py', garbage,
                           *map(str, extra)], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f'tools/{tool}.py: {garbage}: onnxruntime cannot load it: ')
