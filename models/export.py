"""A checkpoint as a model that runs without this code: SavedModel, TFLite,
ONNX.

`export` builds the model with TensorFlow's own convolution and no XLA, so
that the graph holds only ops every converter knows, loads the checkpoint
and writes a folder: a SavedModel whose `serving_default` signature takes
`images` float32 `[batch, height, width, channels]` in [0, 1] as a user has
them and runs the reference's test-time preprocessing (`INPUTS`) inside,
with `model.tflite` (TFLite builtin ops only) and `model.onnx` beside it.
The outputs are `Serving`'s.

Each converted file is run on random images against the SavedModel before
it is kept: a converter that changed the numbers by more than TOLERANCE
fails rather than ships. The folder appears under its name only once the
SavedModel is complete; a failed conversion names its format and keeps the
other files.
"""

import dataclasses
import os
import tempfile
import uuid
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple
import warnings

import numpy as np
import tensorflow as tf

import errors
import files
from input_data.affnist import affnist_input
from input_data.cifar10 import cifar10_input
from input_data.mnist import canvas
from input_data.mnist import mnist_input_record
from input_data.norb import norb_input_record
from input_data.svhn import svhn_input
from models import checkpoints
from models.hparams import HParams
from models import model as model_lib
from models import registry
from models import run_config

SIGNATURE = 'serving_default'
TFLITE_FILE = 'model.tflite'
ONNX_FILE = 'model.onnx'
CONVERSIONS = ('tflite', 'onnx')
ONNX_OPSET = 17
# The most a converted file's outputs may differ from the SavedModel's.
TOLERANCE = 1e-4
REQUIREMENTS = 'requirements-export.txt'
_PROBE_BATCH = 2
_MAX_PIXEL = 255.0
_DIGIT_SIZE = 28
# smallNORB's stored 96x96 views are resized to this, then centre-cropped.
NORB_SIZE = 96
NORB_RESIZED = 48
# TensorFlow's own convolution and no XLA: ops that every converter knows.
RUN_CONFIG = run_config.RunConfig(conv_implementation='native',
                                  xla_routing=False)


class ExportError(errors.UserError, OSError):
  """An export folder that cannot be written, or a conversion that failed."""


def _standardized(images: tf.Tensor) -> tf.Tensor:
  """Per-image standardization of images scaled to [0, 255], as read."""
  return tf.image.per_image_standardization(images * _MAX_PIXEL)


def _central_crop(images: tf.Tensor, size: int) -> tf.Tensor:
  return tf.image.resize_with_crop_or_pad(images, size, size)


def _norb(images: tf.Tensor) -> tf.Tensor:
  # TF1's resize_images, as norb_input_record: no half-pixel centres.
  images = tf.raw_ops.ResizeBilinear(
      images=images, size=[NORB_RESIZED, NORB_RESIZED], align_corners=False,
      half_pixel_centers=False)
  return _standardized(_central_crop(
      images, norb_input_record.DISTORTED_SIZE[NORB_RESIZED]))


@dataclasses.dataclass(frozen=True)
class Inputs:
  """A data set's images as a user has them, and its test preprocessing.

  Attributes:
    size: height and width of the images the signature takes.
    depth: their channels.
    num_classes: classes of the data set.
    preprocess: the reference's test-time input pipeline, images
      `[batch, size, size, depth]` in [0, 1] to the model's input, channels
      last.
  """
  size: int
  depth: int
  num_classes: int
  preprocess: Callable[[tf.Tensor], tf.Tensor] = lambda images: images


_DIGITS = dict(depth=mnist_input_record.DEPTH,
               num_classes=mnist_input_record.NUM_CLASSES)
# The test pipelines of `input_data.datasets.DATASETS`; MNIST with two
# targets is MultiMNIST, on its canvas.
INPUTS: Dict[str, Inputs] = {
    'mnist': Inputs(_DIGIT_SIZE, **_DIGITS),
    'multi_mnist': Inputs(_DIGIT_SIZE + 2 * canvas.MULTI_MNIST_PAD,
                          **_DIGITS),
    'expanded_mnist': Inputs(_DIGIT_SIZE + 2 * canvas.EXPANDED_PAD,
                             **_DIGITS),
    'affnist': Inputs(affnist_input.IMAGE_SIZE, **_DIGITS),
    'affine_mnist': Inputs(affnist_input.IMAGE_SIZE, **_DIGITS),
    'norb': Inputs(NORB_SIZE, norb_input_record.DEPTH,
                   norb_input_record.NUM_CLASSES, _norb),
    'cifar10': Inputs(
        cifar10_input.IMAGE_SIZE, cifar10_input.DEPTH,
        cifar10_input.NUM_CLASSES,
        lambda images: _standardized(
            _central_crop(images, cifar10_input.CROPPED_SIZE))),
    'svhn': Inputs(svhn_input.IMAGE_SIZE, svhn_input.DEPTH,
                   svhn_input.NUM_CLASSES, _standardized),
}


def inputs_of(dataset: str, num_targets: int = 1) -> Inputs:
  """`INPUTS` of a `--dataset` name and number of targets.

  Raises:
    errors.ConfigError: an unknown data set, or two targets off MNIST.
  """
  if num_targets not in (1, 2):
    raise errors.ConfigError(f'num_targets must be 1 or 2, got {num_targets}')
  if dataset not in INPUTS or dataset == 'multi_mnist':
    raise errors.ConfigError(
        f'unknown dataset {dataset!r}; use one of '
        f'{", ".join(name for name in INPUTS if name != "multi_mnist")}')
  if num_targets == 2:
    if dataset != 'mnist':
      raise errors.ConfigError(f'num_targets=2 is MultiMNIST: use '
                               f'--dataset=mnist, not {dataset}')
    dataset = 'multi_mnist'
  return INPUTS[dataset]


# The model's API: in the three functions below and nowhere else here.


def build_model(hparams: HParams, *, model_type: str, inputs: Inputs,
                num_targets: int
               ) -> Tuple[model_lib.Model, model_lib.DataShape]:
  """The model for these inputs, with TensorFlow's convolution and no XLA.

  Raises:
    errors.ConfigError: an unknown model_type, or hparams it cannot use.
  """
  probe = tf.zeros([1, inputs.size, inputs.size, inputs.depth])
  shape = model_lib.DataShape(inputs.preprocess(probe).shape[1], inputs.depth,
                              inputs.num_classes, num_targets)
  return registry.build_model(hparams, model_type=model_type, shape=shape,
                               config=RUN_CONFIG), shape


def _forward(model: model_lib.Model, shape: model_lib.DataShape,
             images: tf.Tensor) -> Dict[str, object]:
  """Logits, and a capsule model's poses and decoder, of model inputs.

  Args:
    model: a model of `build_model`.
    shape: its data shape.
    images: float32 `[batch, height, width, depth]`, preprocessed.

  Returns:
    `logits` `[batch, classes]`; for capsule models `poses`
    `[batch, classes, atoms]`, and with the decoder `decode`, which maps a
    `[batch, classes]` one-hot mask to `[batch, height, width, depth]`
    reconstructions.
  """
  channels_first = tf.transpose(images, [0, 3, 1, 2])
  label = tf.zeros([tf.shape(images)[0]], tf.int32)
  out = model.forward(model_lib.features(dict(
      images=channels_first, labels=tf.one_hot(label, shape.num_classes),
      recons_image=channels_first, recons_label=label,
      spare_image=channels_first, spare_label=label), shape))
  result = {'logits': out.logits}
  if out.capsule_output is not None:
    result['poses'] = out.capsule_output
  if out.remakes is not None:
    result['decode'] = lambda mask: tf.transpose(tf.reshape(
        model.decode(out.capsule_output, mask),
        [-1, shape.depth, shape.height, shape.height]), [0, 2, 3, 1])
  return result


def _weights(model: model_lib.Model) -> List[tf.Variable]:
  """The TensorFlow variables under the model's Keras variables."""
  return [variable.value for variable in model.trainable_variables]


class Serving(tf.Module):
  """The exported module: a model's weights and its serving function.

  `serve(images)`, images float32 `[batch, size, size, depth]` in [0, 1],
  returns
    scores: `[batch, classes]`, the capsule lengths, or the baseline's
      softmax;
    classes: int64 `[batch]`, or `[batch, 2]` for two targets: the top
      scores, as the evaluation counts them (`layers.evaluate`);
    poses: capsule models, `[batch, classes, atoms]`, the class capsules;
    reconstructions: capsule models with the decoder (hparam remake),
      `[batch, height, width, depth]` (`[batch, 2, ...]` for two targets)
      of the predicted classes, at the model's input size (after any crop).
  """

  def __init__(self, model: model_lib.Model, shape: model_lib.DataShape,
               inputs: Inputs):
    super().__init__(name='capsules')
    self.weights = _weights(model)  # Tracked: the SavedModel holds them.
    self.inputs = inputs
    self.num_targets = shape.num_targets
    self._call = lambda images: self._serve(model, shape, images)
    self.serve = self.function()

  def function(self, batch: Optional[int] = None):
    """`serve` for batches of that size (None: any)."""
    size, depth = self.inputs.size, self.inputs.depth
    return tf.function(self._call, autograph=False, input_signature=[
        tf.TensorSpec([batch, size, size, depth], tf.float32, name='images')])

  def _serve(self, model, shape, images) -> Dict[str, tf.Tensor]:
    out = _forward(model, shape, self.inputs.preprocess(images))
    logits = out['logits']
    _, top = tf.nn.top_k(logits, k=self.num_targets)  # [b, k]
    classes = tf.cast(top, tf.int64)
    result = {'scores': logits if 'poses' in out else tf.nn.softmax(logits),
              'classes': classes[:, 0] if self.num_targets == 1 else classes}
    if 'poses' in out:
      result['poses'] = out['poses']
    if 'decode' in out:
      remakes = [out['decode'](tf.one_hot(top[:, i], logits.shape[-1]))
                 for i in range(self.num_targets)]
      result['reconstructions'] = (remakes[0] if self.num_targets == 1
                                   else tf.stack(remakes, axis=1))
    return result


def _tflite(serving: Serving, batch: Optional[int]) -> bytes:
  # From a SavedModel, whose conversion folds the routing's 6-D slices at a
  # known batch (from the function itself it keeps them, and TFLite's
  # StridedSlice takes at most 5-D).
  with tempfile.TemporaryDirectory() as folder:
    tf.saved_model.save(serving, folder,
                        signatures={SIGNATURE: serving.function(batch)})
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _run_tflite(data: bytes, images: np.ndarray) -> Dict[str, np.ndarray]:
  with warnings.catch_warnings():  # Its move to the ai-edge-litert package.
    warnings.simplefilter('ignore')
    # TFLite's own kernels: XNNPACK, the default, announces itself on stderr.
    interpreter = tf.lite.Interpreter(
        model_content=data, experimental_op_resolver_type=(
            tf.lite.experimental.OpResolverType
            .BUILTIN_WITHOUT_DEFAULT_DELEGATES))
  return interpreter.get_signature_runner(SIGNATURE)(images=images)


def _onnx(serving: Serving, batch: Optional[int]) -> bytes:
  del batch  # Any batch.
  try:
    import tf2onnx  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ExportError(f'tf2onnx is missing ({error}): pip install -r '
                      f'{REQUIREMENTS}') from None
  proto, _ = tf2onnx.convert.from_function(
      serving.serve, input_signature=serving.serve.input_signature,
      opset=ONNX_OPSET)
  return proto.SerializeToString()


def _run_onnx(data: bytes, images: np.ndarray) -> Dict[str, np.ndarray]:
  import onnxruntime  # pylint: disable=g-import-not-at-top
  session = onnxruntime.InferenceSession(
      data, providers=['CPUExecutionProvider'])
  names = [output.name for output in session.get_outputs()]
  return dict(zip(names, session.run(names, {'images': images})))


# Format: (file name, convert(serving, tflite batch), run(data, images)).
_CONVERTERS = {
    'tflite': (TFLITE_FILE, _tflite, _run_tflite),
    'onnx': (ONNX_FILE, _onnx, _run_onnx),
}


def _differences(outputs: Mapping[str, np.ndarray],
                 expected: Mapping[str, np.ndarray]) -> List[str]:
  """What a converted file's outputs get wrong, empty when nothing."""
  if set(outputs) != set(expected):
    return [f'outputs {sorted(outputs)}, expected {sorted(expected)}']
  problems = []
  for name, value in expected.items():
    got = np.asarray(outputs[name])
    if got.shape != value.shape or got.dtype != value.dtype:
      problems.append(f'{name} is {got.dtype} {list(got.shape)}, expected '
                      f'{value.dtype} {list(value.shape)}')
    elif value.dtype.kind == 'f' and not np.allclose(got, value, rtol=0,
                                                     atol=TOLERANCE):
      problems.append(f'{name} differs by up to '
                      f'{np.max(np.abs(got - value)):.2g}')
  return problems


def _convert(serving: Serving, conversion: str, folder: str, *,
             tflite_batch: Optional[int]) -> str:
  """Writes one converted file into folder once it computes what serve does.

  Raises:
    ExportError: the conversion failed, or its file computes other numbers.
  """
  file_name, convert, run = _CONVERTERS[conversion]
  inputs = serving.inputs
  batch = (conversion == 'tflite' and tflite_batch) or _PROBE_BATCH
  probe = np.random.RandomState(0).uniform(
      size=(batch, inputs.size, inputs.size, inputs.depth)).astype(np.float32)
  expected = {name: value.numpy() for name, value in serving.serve(
      tf.constant(probe)).items()}
  try:
    data = convert(serving, tflite_batch)
    problems = _differences(run(data, probe), expected)
  except ExportError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    # The converters' own errors, of many types: the other formats go on.
    raise ExportError(f'{conversion}: {files.first_line(error)}') from error
  if problems:
    raise ExportError(f'{conversion}: the converted model computes other '
                      f'numbers than the SavedModel: {"; ".join(problems)}')
  path = os.path.join(folder, file_name)
  with tf.io.gfile.GFile(path, 'wb') as output:
    output.write(data)
  return file_name


def _check_export_dir(export_dir: str) -> None:
  """Raises ExportError unless export_dir is absent or an empty folder."""
  if not export_dir:
    raise errors.ConfigError('export_dir is required: pass --export_dir=<a '
                             'new or empty folder>')
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
           tflite_batch: Optional[int] = 1,
           report: Callable[[str], None] = print) -> List[str]:
  """Writes a checkpoint's model as a SavedModel and converted files.

  The SavedModel and the files are written into a temporary folder beside
  export_dir, which is then renamed to it.

  Args:
    hparams: the checkpoint's model hyperparameters, as in training.
    checkpoint: checkpoint prefix, e.g. `.../model.ckpt-1500`.
    export_dir: a new or empty folder.
    model_type: key of `registry.MODELS`.
    dataset: a key of `INPUTS` but multi_mnist (that is mnist with
      num_targets=2): the images the model takes, and their preprocessing.
    num_targets: objects per image (2 for MultiMNIST).
    conversions: the files besides the SavedModel, names of CONVERSIONS.
    tflite_batch: the batch size model.tflite takes; None: any, which
      TFLite cannot run for capsule models (their routing slices 6-D
      tensors, which TFLite's StridedSlice cannot at an unknown batch).
    report: called with one line per file written.

  Returns:
    The paths written: export_dir, then the converted files.

  Raises:
    errors.ConfigError: an unknown model, data set or conversion, or
      hparams the model cannot use.
    checkpoints.MissingCheckpointError, checkpoints.CheckpointError: as
      `checkpoints.load`, e.g. a checkpoint of another architecture.
    ExportError: export_dir is a file, not empty or cannot be written
      (nothing is written), or a conversion failed (the SavedModel and the
      other files are written).
  """
  unknown = sorted(set(conversions) - set(CONVERSIONS))
  if unknown:
    raise errors.ConfigError(f'unknown conversion {", ".join(unknown)}; use '
                             f'{", ".join(CONVERSIONS)}')
  if not checkpoint:
    raise errors.ConfigError('checkpoint is required: pass --checkpoint=<a '
                             'checkpoint prefix, e.g. .../model.ckpt-1000>')
  inputs = inputs_of(dataset, num_targets)
  _check_export_dir(export_dir)
  model, shape = build_model(hparams, model_type=model_type, inputs=inputs,
                             num_targets=num_targets)
  step = checkpoints.load(model, checkpoint)
  serving = Serving(model, shape, inputs)
  export_dir = export_dir.rstrip('/')
  temp = f'{export_dir}.partial-{uuid.uuid4().hex[:8]}'
  written, failures = [], []
  try:
    tf.saved_model.save(serving, temp, signatures={SIGNATURE: serving.serve})
    for conversion in conversions:
      try:
        written.append(_convert(serving, conversion, temp,
                                tflite_batch=tflite_batch))
      except ExportError as error:
        failures.append(error)
    # Replaces an empty folder, never one that holds files.
    tf.io.gfile.rename(temp, export_dir, overwrite=True)
  except (tf.errors.OpError, OSError) as error:
    raise ExportError(f'cannot write export_dir {export_dir}: '
                      f'{files.first_line(error)}') from None
  finally:
    _remove(temp)
  report(f'Wrote {export_dir} (SavedModel of {checkpoint}, step {step})')
  paths = [export_dir] + [os.path.join(export_dir, name) for name in written]
  for path in paths[1:]:
    report(f'Wrote {path} ({tf.io.gfile.stat(path).length / 1e6:.1f} MB)')
  if failures:
    raise ExportError(
        f'{"; ".join(str(failure) for failure in failures)} (the other '
        f'files are written in {export_dir})') from failures[0]
  return paths


def _remove(folder: str) -> None:
  if tf.io.gfile.exists(folder):
    tf.io.gfile.rmtree(folder)
