"""A checkpoint as SavedModel, TFLite and ONNX files that run without this
code (docs/export.md): TensorFlow's own convolution and no XLA, ops every
converter knows; a converted file is kept only if it computes the
SavedModel's numbers on random images.
"""

import collections
import os
from typing import Callable, Dict, List, Sequence
import warnings

import numpy as np
import tensorflow as tf

import errors
import files
from input_data import image_ops
from input_data.affnist import dataset as affnist
from input_data.cifar10 import cifar10_input
from input_data.mnist import canvas
from input_data.mnist import mnist_input_record as digits
from input_data.norb import norb_input_record as norb
from input_data.svhn import dataset as svhn
from models import checkpoints
from models.hparams import HParams
from models import model as model_lib
from models import registry

SIGNATURE = 'serving_default'
TFLITE_FILE = 'model.tflite'
ONNX_FILE = 'model.onnx'
CONVERSIONS = ('tflite', 'onnx')
ONNX_OPSET = 17
# The most a converted file's outputs may differ from the SavedModel's.
TOLERANCE = 1e-4
_PROBE_BATCH = 2
_DIGIT_SIZE = 28
# smallNORB's stored 96x96 views are resized to this, then centre-cropped.
NORB_SIZE = 96
NORB_RESIZED = 48
# TensorFlow's own convolution and no XLA: ops that every converter knows.
MODEL_CONFIG = model_lib.ModelConfig(conv_implementation='native',
                                     xla_routing=False)


class ExportError(errors.UserError, OSError):
  """An export folder that cannot be written, or a conversion that failed."""


def _cifar10(images: tf.Tensor, labels: tf.Tensor) -> Dict[str, tf.Tensor]:
  # The reader's own test-time crop and standardization, of pixels as read.
  return cifar10_input.features(
      images * digits.MAX_PIXEL, labels, train=False)


def _norb(images: tf.Tensor, labels: tf.Tensor) -> Dict[str, tf.Tensor]:
  # TF1's resize_images, as norb_input_record: no half-pixel centres.
  images = tf.raw_ops.ResizeBilinear(
      images=images * digits.MAX_PIXEL, size=[NORB_RESIZED, NORB_RESIZED],
      align_corners=False, half_pixel_centers=False)
  size = norb.DISTORTED_SIZE[NORB_RESIZED]
  return image_ops.standardized_features(
      tf.image.resize_with_crop_or_pad(images, size, size), labels,
      norb.NUM_CLASSES)


# A data set's images as a user has them, `[batch, size, size, depth]` in
# [0, 1], and `preprocess(images, labels)`: the reference's test-time input
# pipeline, to the features (`input_data.interface`) the model reads.
Inputs = collections.namedtuple('Inputs', ('size', 'depth', 'preprocess'))
_MNIST = dict(depth=digits.DEPTH, preprocess=lambda images, labels: (
    digits.digit_features(tf.transpose(images, [0, 3, 1, 2]), labels)))
# The test pipelines of `input_data.datasets.DATASETS`.
INPUTS: Dict[str, Inputs] = {
    'mnist': Inputs(_DIGIT_SIZE, **_MNIST),
    'expanded_mnist': Inputs(_DIGIT_SIZE + 2 * canvas.EXPANDED_PAD, **_MNIST),
    'affnist': Inputs(affnist.IMAGE_SIZE, **_MNIST),
    'affine_mnist': Inputs(affnist.IMAGE_SIZE, **_MNIST),
    'norb': Inputs(NORB_SIZE, norb.DEPTH, _norb),
    'cifar10': Inputs(cifar10_input.IMAGE_SIZE, cifar10_input.DEPTH,
                      _cifar10),
    'svhn': Inputs(svhn.IMAGE_SIZE, svhn.DEPTH, lambda images, labels: (
        image_ops.standardized_features(images * digits.MAX_PIXEL, labels,
                                        svhn.NUM_CLASSES))),
}


def inputs_of(dataset: str, num_targets: int = 1) -> Inputs:
  """`INPUTS` of a `--dataset`; two targets: MultiMNIST's (or ConfigError)."""
  if dataset not in INPUTS:
    raise errors.ConfigError(f'unknown dataset {dataset!r}; use one of '
                             f'{", ".join(INPUTS)}')
  if num_targets == 1:
    return INPUTS[dataset]
  if (dataset, num_targets) != ('mnist', 2):
    raise errors.ConfigError(f'num_targets must be 1, or 2 for MultiMNIST '
                             f'(mnist); got {num_targets} for {dataset}')
  return Inputs(_DIGIT_SIZE + 2 * canvas.MULTI_MNIST_PAD, **_MNIST)


def _features(inputs: Inputs, images: tf.Tensor) -> Dict[str, tf.Tensor]:
  """The model's features of images, labels 0, the input both targets'."""
  labels = tf.zeros([tf.shape(images)[0]], tf.int32)
  features = inputs.preprocess(images, labels)
  return dict(features, spare_image=features['recons_image'],
              spare_label=labels)


def build_model(hparams: HParams, *, model_type: str, inputs: Inputs,
                num_targets: int) -> model_lib.Model:
  """The model of these inputs with MODEL_CONFIG; raises as registry's."""
  probe = _features(inputs, tf.zeros([1, inputs.size, inputs.size,
                                      inputs.depth]))
  return registry.build_model(
      hparams, model_type=model_type, config=MODEL_CONFIG,
      shape=model_lib.data_shape(probe, num_targets))


def _serving(model: model_lib.Model, inputs: Inputs) -> tf.Module:
  """The exported module: the model's weights, and `serve` of images to
  scores, classes (the top scores, as `layers.evaluate` counts them) and,
  for capsule models, poses and reconstructions (docs/export.md)."""
  shape = model.shape
  # `[batch, 1, ...]` to `[batch, ...]` for one target.
  targets = lambda tensor: tensor[:, 0] if shape.num_targets == 1 else tensor

  def serve(images: tf.Tensor) -> Dict[str, tf.Tensor]:
    out = model.forward(_features(inputs, images))
    _, top = tf.nn.top_k(out.logits, k=shape.num_targets)  # [b, targets]
    result = {'classes': targets(tf.cast(top, tf.int64))}
    if out.capsule_output is None:
      return dict(result, scores=tf.nn.softmax(out.logits))
    result.update(scores=out.logits, poses=out.capsule_output)
    if out.remakes is not None:
      remakes = [model.decode(out.capsule_output,
                              tf.one_hot(top[:, i], shape.num_classes))
                 for i in range(shape.num_targets)]  # [b, pixels] each
      result['reconstructions'] = targets(tf.stack(
          [model.channels_last(remake) for remake in remakes], axis=1))
    return result

  serving = tf.Module(name='capsules')
  # Tracked, so the SavedModel holds them: the variables under Keras's.
  serving.weights = [variable.value for variable in model.trainable_variables]
  serving.serve = tf.function(serve, autograph=False, input_signature=[
      tf.TensorSpec([None, inputs.size, inputs.size, inputs.depth],
                    tf.float32, name='images')])
  return serving


def _tflite(serving, folder, probe):
  del serving  # Converted from the SavedModel in folder, its signature kept.
  converter = tf.lite.TFLiteConverter.from_saved_model(folder)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  data = converter.convert()
  with warnings.catch_warnings():  # Its move to the ai-edge-litert package.
    warnings.simplefilter('ignore')
    # TFLite's own kernels: XNNPACK, the default, announces itself on stderr.
    interpreter = tf.lite.Interpreter(
        model_content=data, experimental_op_resolver_type=(
            tf.lite.experimental.OpResolverType
            .BUILTIN_WITHOUT_DEFAULT_DELEGATES))
  return data, interpreter.get_signature_runner(SIGNATURE)(images=probe)


def _onnx(serving, folder, probe):
  del folder  # Converted from the function.
  try:
    # pylint: disable=g-import-not-at-top
    import onnxruntime
    import tf2onnx
  except ImportError as error:
    raise ExportError(f'{error}: pip install -r '
                      'requirements-export.txt') from None
  proto, _ = tf2onnx.convert.from_function(
      serving.serve, input_signature=serving.serve.input_signature,
      opset=ONNX_OPSET)
  data = proto.SerializeToString()
  session = onnxruntime.InferenceSession(
      data, providers=['CPUExecutionProvider'])
  names = [output.name for output in session.get_outputs()]
  return data, dict(zip(names, session.run(names, {'images': probe})))


# Format: (file, convert(serving, SavedModel folder, probe) to bytes, outputs).
_CONVERTERS = {'tflite': (TFLITE_FILE, _tflite), 'onnx': (ONNX_FILE, _onnx)}


def _differences(outputs, expected) -> List[str]:
  """What a converted file's outputs get wrong, empty when nothing."""
  if set(outputs) != set(expected):
    return [f'outputs {sorted(outputs)}, expected {sorted(expected)}']
  problems = []
  for name, value in expected.items():
    got, value = np.asarray(outputs[name]), value.numpy()
    if got.shape != value.shape or got.dtype != value.dtype:
      problems.append(f'{name} is {got.dtype} {list(got.shape)}, expected '
                      f'{value.dtype} {list(value.shape)}')
    elif value.dtype.kind == 'f' and not np.allclose(got, value, rtol=0,
                                                     atol=TOLERANCE):
      problems.append(f'{name} differs by up to '
                      f'{np.max(np.abs(got - value)):.2g}')
  return problems


def _convert(serving: tf.Module, conversion: str, folder: str) -> str:
  """Writes a converted file into folder if it computes what serve does."""
  file_name, convert = _CONVERTERS[conversion]
  probe = np.random.RandomState(0).uniform(size=(
      _PROBE_BATCH, *serving.serve.input_signature[0].shape[1:])).astype(
          np.float32)
  try:
    data, outputs = convert(serving, folder, probe)
    problems = _differences(outputs, serving.serve(tf.constant(probe)))
  except Exception as error:  # pylint: disable=broad-except
    # The converters' errors, of many types (and tf2onnx missing): the other
    # formats go on.
    raise ExportError(f'{conversion}: {files.first_line(error)}') from error
  if problems:
    raise ExportError(f'{conversion}: the converted model computes other '
                      f'numbers than the SavedModel: {"; ".join(problems)}')
  with tf.io.gfile.GFile(os.path.join(folder, file_name), 'wb') as output:
    output.write(data)
  return file_name


def _check_export_dir(export_dir: str) -> None:
  """Raises ExportError unless export_dir is absent or an empty folder."""
  if not tf.io.gfile.exists(export_dir):
    return
  if not tf.io.gfile.isdir(export_dir):
    raise ExportError(f'export_dir {export_dir} is a file; give a new or '
                      f'empty folder')
  names = tf.io.gfile.listdir(export_dir)
  if names:
    raise ExportError(
        f'export_dir {export_dir} is not empty (it holds '
        f'{", ".join(sorted(names)[:3])}{", ..." if len(names) > 3 else ""}); '
        f'give a new or empty folder: an export never replaces files')


def export(hparams: HParams, *, checkpoint: str, export_dir: str,
           model_type: str = 'capsule', dataset: str = 'mnist',
           num_targets: int = 1, conversions: Sequence[str] = CONVERSIONS,
           report: Callable[[str], None] = print) -> List[str]:
  """Writes a checkpoint's model as a SavedModel and converted files.

  hparams, model_type, dataset and num_targets are the checkpoint's, as in
  experiment.py; conversions names the files besides the SavedModel; report
  gets one line per file written. The files go into a temporary folder
  beside export_dir, then renamed to it (`files.write_atomically`). Returns
  the paths written: export_dir, then the converted files. Raises
  errors.ConfigError (bad arguments or hparams), `checkpoints.load`'s errors
  and ExportError: export_dir is a file, not empty or cannot be written
  (nothing is written), or a conversion failed (the others are written).
  """
  unknown = sorted(set(conversions) - set(CONVERSIONS))
  if unknown:
    raise errors.ConfigError(f'unknown conversion {", ".join(unknown)}; use '
                             f'{", ".join(CONVERSIONS)}')
  for name, value in (('checkpoint', checkpoint), ('export_dir', export_dir)):
    if not value:
      raise errors.ConfigError(f'{name} is required: pass --{name}=...')
  inputs = inputs_of(dataset, num_targets)
  export_dir = export_dir.rstrip('/')
  _check_export_dir(export_dir)
  model = build_model(hparams, model_type=model_type, inputs=inputs,
                      num_targets=num_targets)
  step = checkpoints.load(model, checkpoint)
  serving = _serving(model, inputs)
  written, failures = [], []

  def write(folder: str) -> None:
    tf.saved_model.save(serving, folder, signatures={SIGNATURE: serving.serve})
    for conversion in conversions:
      try:
        written.append(os.path.join(export_dir,
                                    _convert(serving, conversion, folder)))
      except ExportError as error:
        failures.append(error)

  try:  # The rename replaces an empty folder, never one that holds files.
    files.write_atomically(export_dir, write)
  except (tf.errors.OpError, OSError) as error:
    raise ExportError(f'cannot write export_dir {export_dir}: '
                      f'{files.first_line(error)}') from None
  report(f'Wrote {export_dir} (SavedModel of {checkpoint}, step {step})')
  for path in written:
    report(f'Wrote {path} ({tf.io.gfile.stat(path).length / 1e6:.1f} MB)')
  if failures:
    raise ExportError(
        f'{"; ".join(str(failure) for failure in failures)} (the other '
        f'files are written in {export_dir})') from failures[0]
  return [export_dir] + written
