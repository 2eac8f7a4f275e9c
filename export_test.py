"""Tests for export.py and models/export.py.

Tiny models (a capsule model of one and of two targets, the baseline),
freshly built and saved as checkpoints, are exported once (the one-target
capsule model by the command line) and then run by a fresh Python process
that has only TensorFlow, TFLite and onnxruntime: no project folder on its
path. Their outputs are checked against the checkpoint's evaluation.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import errors
from input_data import datasets
from models import checkpoints
from models import evaluation
from models import export
from models import run_config
import test_utils

if not all(importlib.util.find_spec(name)
           for name in ('tf2onnx', 'onnx', 'onnxruntime')):
  pytest.skip('the export tests need pip install -r requirements-export.txt',
              allow_module_level=True)

_HERE = os.path.dirname(os.path.abspath(__file__))
_BATCH = 4
_TIMEOUT_S = 300
# case: (model type, num_targets, hparams override).
_CASES = {
    'capsule': ('capsule', 1, test_utils.TINY),
    'multi': ('capsule', 2, test_utils.TINY),
    'baseline': ('baseline', 1, ''),
}

# Run by a fresh interpreter with -I (no PYTHONPATH, no script folder).
_RUN_EXPORTS = textwrap.dedent('''
    import json, sys
    import numpy as np
    import onnxruntime
    import tensorflow as tf
    import os
    assert os.path.realpath(sys.argv[3]) not in map(os.path.realpath,
                                                    sys.path), sys.path
    try:
      import models
      sys.exit('a project module is importable')
    except ImportError:
      pass
    results = {}
    for case, folder in json.loads(sys.argv[1]).items():
      images = np.load(folder + '/../images.npy')
      serve = tf.saved_model.load(folder).signatures['serving_default']
      for name, value in serve(images=tf.constant(images)).items():
        results[f'{case}/savedmodel/{name}'] = value.numpy()
      lite = tf.lite.Interpreter(model_path=folder + '/model.tflite')
      runner = lite.get_signature_runner('serving_default')
      for name, value in runner(images=images).items():
        results[f'{case}/tflite/{name}'] = value
      session = onnxruntime.InferenceSession(folder + '/model.onnx')
      names = [output.name for output in session.get_outputs()]
      for name, value in zip(names, session.run(names, {'images': images})):
        results[f'{case}/onnx/{name}'] = value
    np.savez(sys.argv[2], **results)
''')


def _export_process(*args):
  return subprocess.Popen(
      [sys.executable, os.path.join(_HERE, 'export.py'), *args],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_HERE)


def _images(num_targets, seed):
  inputs = export.inputs_of('mnist', num_targets)
  return np.random.RandomState(seed).uniform(
      size=(_BATCH, inputs.size, inputs.size, inputs.depth)).astype(
          np.float32)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """Each case's checkpoint exported, and what a fresh process read back."""
  root = tmp_path_factory.mktemp('export')
  cases = {}
  for seed, (case, (model_type, num_targets, override)) in enumerate(
      _CASES.items()):
    folder = root / case
    hparams = test_utils.tiny_hparams(override)
    keras.utils.set_random_seed(seed)
    model = export.build_model(
        hparams, model_type=model_type, num_targets=num_targets,
        inputs=export.inputs_of('mnist', num_targets))
    (folder / 'train').mkdir(parents=True)
    checkpoint = checkpoints.save(model, str(folder / 'train'))
    np.save(folder / 'images.npy', _images(num_targets, seed))
    cases[case] = dict(checkpoint=checkpoint, hparams=hparams,
                       export_dir=str(folder / 'export'))
  capsule = cases['capsule']
  command = _export_process(f'--checkpoint={capsule["checkpoint"]}',
                            f'--export_dir={capsule["export_dir"]}',
                            f'--hparams_override={test_utils.TINY}')
  for case in ('multi', 'baseline'):
    model_type, num_targets, _ = _CASES[case]
    export.export(cases[case]['hparams'],
                  checkpoint=cases[case]['checkpoint'],
                  export_dir=cases[case]['export_dir'],
                  model_type=model_type, num_targets=num_targets,
                  report=lambda line: None)
  stdout, stderr = command.communicate(timeout=_TIMEOUT_S)
  assert command.returncode == 0, stderr[-3000:]
  results = str(root / 'results.npz')
  folders = {case: values['export_dir'] for case, values in cases.items()}
  subprocess.run([sys.executable, '-I', '-c', _RUN_EXPORTS,
                  json.dumps(folders), results, _HERE], check=True,
                 cwd=str(root),
                 env={key: value for key, value in os.environ.items()
                      if key != 'PYTHONPATH'}, timeout=_TIMEOUT_S)
  return dict(cases=cases, stdout=stdout,
              outputs=dict(np.load(results)))


def _evaluation(case, values, images):
  """The checkpoint's evaluation logits, and the model's own poses and
  reconstructions of its top classes."""
  model_type, num_targets, _ = _CASES[case]
  labels = np.zeros(len(images), np.int32)
  channels_first = images.transpose([0, 3, 1, 2])
  arrays = dict(images=channels_first,
                labels=np.eye(10, dtype=np.float32)[labels],
                recons_image=channels_first, recons_label=labels,
                spare_image=channels_first, spare_label=labels)
  evaluator = evaluation.Evaluator(
      values['hparams'], model_type=model_type, num_targets=num_targets,
      input_fn=test_utils.array_input_fn(arrays),
      config=run_config.RunConfig(eval_batch_size=len(images)))
  checkpoints.load(evaluator.model, values['checkpoint'])
  logits = evaluator.logits(arrays).numpy()
  top = np.argsort(-logits, axis=1)[:, :num_targets]
  arrays.update(recons_label=top[:, 0], spare_label=top[:, -1])
  out = evaluator.model.forward(arrays)
  own = dict(logits=logits, classes=top if num_targets == 2 else top[:, 0])
  if out.capsule_output is not None:
    own['poses'] = out.capsule_output.numpy()
    remakes = [np.reshape(remake, channels_first.shape).transpose(
        [0, 2, 3, 1]) for remake in out.remakes]
    own['reconstructions'] = (remakes[0] if num_targets == 1
                              else np.stack(remakes, axis=1))
  return own


@pytest.mark.parametrize('case', list(_CASES))
def test_export_computes_the_checkpoints_evaluation(exported, case):
  values = exported['cases'][case]
  images = np.load(os.path.join(values['export_dir'], '..', 'images.npy'))
  own = _evaluation(case, values, images)
  outputs = {key.split('/', 1)[1]: value
             for key, value in exported['outputs'].items()
             if key.startswith(case + '/')}
  scores = own['logits'] if case != 'baseline' else tf.nn.softmax(
      own['logits']).numpy()
  expected = dict(scores=scores, classes=own['classes'])
  for name in ('poses', 'reconstructions'):
    if name in own:
      expected[name] = own[name]
  assert sorted(expected) == sorted(
      key.split('/')[1] for key in outputs if key.startswith('savedmodel/'))
  for form, atol in (('savedmodel', 1e-5), ('tflite', 1e-4), ('onnx', 1e-4)):
    for name, value in expected.items():
      got = outputs[f'{form}/{name}']
      if name == 'classes':
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, value, err_msg=f'{form} {name}')
      else:
        np.testing.assert_allclose(got, value, rtol=0, atol=atol,
                                   err_msg=f'{form} {name}')
  # The scores depend on the image: the comparison could have failed.
  assert np.ptp(scores, axis=0).max() > 100 * 1e-5


def test_command_prints_devices_and_each_file(exported):
  export_dir = exported['cases']['capsule']['export_dir']
  lines = exported['stdout'].splitlines()
  assert lines[0].startswith('Devices: ') and 'no XLA' in lines[0], lines
  assert lines[1].startswith(f'Wrote {export_dir} (SavedModel of ')
  assert lines[2:] == [
      f'Wrote {export_dir}/{name} '
      f'({os.path.getsize(os.path.join(export_dir, name)) / 1e6:.1f} MB)'
      for name in (export.TFLITE_FILE, export.ONNX_FILE)]


def test_checkpoint_of_another_model_fails_in_one_line(exported, tmp_path):
  with pytest.raises(checkpoints.CheckpointMismatchError) as raised:
    export.export(test_utils.tiny_hparams(),
                  checkpoint=exported['cases']['baseline']['checkpoint'],
                  export_dir=str(tmp_path / 'export'))
  assert len(str(raised.value).splitlines()) == 1
  assert 'conv_capsule1/weights missing' in str(raised.value)
  assert isinstance(raised.value, errors.UserError)  # One line on the CLI.
  assert not os.listdir(tmp_path)


def _files(folder):
  return {path: open(os.path.join(folder, path), 'rb').read()
          for path in os.listdir(folder)
          if os.path.isfile(os.path.join(folder, path))}


def test_an_export_is_never_overwritten(exported, tmp_path):
  values = exported['cases']['capsule']
  before = _files(values['export_dir'])
  with pytest.raises(export.ExportError, match=r'export_dir .* is not empty '
                     r'\(it holds assets, fingerprint\.pb, model\.onnx, '
                     r'\.\.\.\)'):
    export.export(values['hparams'], checkpoint=values['checkpoint'],
                  export_dir=values['export_dir'])
  assert _files(values['export_dir']) == before
  (tmp_path / 'file').write_text('keep me')
  for export_dir, message in ((tmp_path / 'file', 'is a file'),
                              (tmp_path / 'file' / 'sub', 'cannot write')):
    with pytest.raises(export.ExportError, match=message) as raised:
      export.export(values['hparams'], checkpoint=values['checkpoint'],
                    export_dir=str(export_dir), conversions=())
    assert len(str(raised.value).splitlines()) == 1
  assert os.listdir(tmp_path) == ['file']
  assert isinstance(raised.value, errors.UserError)


def test_failed_conversion_names_its_format_and_keeps_the_others(
    exported, tmp_path, monkeypatch):
  values = exported['cases']['capsule']

  def fail(serving, folder, probe):
    raise RuntimeError('no converter for this op\nsecond line')

  converters = export._CONVERTERS  # pylint: disable=protected-access
  monkeypatch.setitem(converters, 'onnx', (export.ONNX_FILE, fail))
  (tmp_path / 'export').mkdir()  # An empty folder is fine.
  with pytest.raises(export.ExportError) as raised:
    export.export(values['hparams'], checkpoint=values['checkpoint'],
                  export_dir=str(tmp_path / 'export'))
  assert str(raised.value) == (
      f'onnx: no converter for this op (the other files are written in '
      f'{tmp_path / "export"})')
  assert sorted(os.listdir(tmp_path)) == ['export']
  assert {'saved_model.pb', export.TFLITE_FILE} <= set(
      os.listdir(tmp_path / 'export'))
  assert export.ONNX_FILE not in os.listdir(tmp_path / 'export')


def test_inputs_of_each_data_set_are_the_test_pipelines():
  labels = tf.zeros([2], tf.int32)
  for dataset in datasets.DATASETS:
    inputs = export.inputs_of(dataset)
    features = inputs.preprocess(tf.random.uniform(
        [2, inputs.size, inputs.size, inputs.depth]), labels)
    assert features['images'].shape[1] == inputs.depth  # Channels first.
  cifar = export.inputs_of('cifar10')
  images = tf.random.uniform([2, 32, 32, 3])
  np.testing.assert_allclose(
      cifar.preprocess(images, labels)['images'],
      tf.transpose(tf.image.per_image_standardization(
          255 * images[:, 4:28, 4:28]), [0, 3, 1, 2]), atol=1e-5)
  assert export.inputs_of('norb').preprocess(
      tf.zeros([2, 96, 96, 2]), labels)['images'].shape == [2, 2, 32, 32]
  assert export.inputs_of('mnist', num_targets=2).size == 36
  with pytest.raises(errors.ConfigError, match='MultiMNIST'):
    export.inputs_of('cifar10', num_targets=2)
