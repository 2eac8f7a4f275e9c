r"""Framework for training and evaluating capsule and baseline models.

The reference's driver: `--train` trains a model on the train split and writes
TF1 name-based checkpoints `summary_dir/train/model.ckpt-<step>`,
`--train=false` evaluates one checkpoint or follows a training directory, and
`--num_trials=K` evaluates an ensemble of K checkpoints. Only this file reads
flags; `train`, `evaluate` and `evaluate_ensemble` take plain values.

Examples (the reference README's commands):

  python experiment.py --data_dir=D/mnist_data/ --max_steps=300000 \
      --summary_dir=/tmp/attempt0/
  python experiment.py --data_dir=D/mnist_data/ --train=false \
      --summary_dir=/tmp/ --checkpoint=C/mnist_checkpoint/model.ckpt-1
  python experiment.py --data_dir=D --train=false --dataset=cifar10 \
      --hparams_override=num_prime_capsules=64,padding=SAME,leaky=true,remake=false \
      --summary_dir=/tmp/ --checkpoint=C/cifar/cifar{}/model.ckpt-600000 \
      --num_trials=7
"""

import collections
import os
import re
import sys
import time
from typing import Callable, Dict, Iterator, List, Mapping, Optional

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from input_data.cifar10 import cifar10_input
from input_data.mnist import mnist_input_record
from input_data.norb import norb_input_record
from models import capsule_model
from models import conv_model
from models import model as base_model
from models.hparams import HParams

FLAGS = flags.FLAGS

flags.DEFINE_string('data_dir', None,
                    'The data directory; for MultiMNIST a sharded pattern '
                    'path/name.tfrecords@N.')
flags.DEFINE_integer('eval_size', 10000, 'Number of test examples evaluated.')
flags.DEFINE_string('hparams_override', None,
                    'A string of form key=value,key=value to override the '
                    'hparams of this experiment.')
flags.DEFINE_integer('max_steps', 1000,
                     'Number of global steps to train; a resumed run counts '
                     'from the restored step.')
flags.DEFINE_string('model', 'capsule',
                    'The model to use for the experiment: capsule or '
                    'baseline.')
flags.DEFINE_string('dataset', 'mnist',
                    'The dataset to use for the experiment: mnist, norb or '
                    'cifar10.')
flags.DEFINE_integer('num_gpus', 1,
                     'Number of GPUs (replicas per worker) to use; the global '
                     'batch is split evenly across all replicas.')
flags.DEFINE_integer('num_targets', 1,
                     'Number of targets to detect (1, or 2 for MultiMNIST).')
flags.DEFINE_integer('num_trials', 1,
                     'Number of trials for ensemble evaluation.')
flags.DEFINE_integer('save_step', 1500, 'How often to save checkpoints.')
flags.DEFINE_string('summary_dir', None,
                    'Main directory for the experiments: training writes '
                    'summary_dir/train/, evaluation summary_dir/test/.')
flags.DEFINE_string('checkpoint', None,
                    'The model checkpoint to evaluate; with num_trials > 1 a '
                    'pattern holding {} for the trial index.')
flags.DEFINE_enum('compute_dtype', 'float32', ['float32', 'bfloat16'],
                  'Not in the reference. bfloat16: mixed precision, the '
                  'convolutions and matrix products in bfloat16 on float32 '
                  'weights (fast on GPUs and CPUs with AMX); squash, routing '
                  'and losses stay float32.')
flags.DEFINE_bool('train', True, 'Either train the model or test the model.')
flags.DEFINE_bool('validate', False,
                  'Use the train/validation split files for training and '
                  'evaluation.')

models = {
    'capsule': capsule_model.CapsuleModel,
    'baseline': conv_model.ConvModel,
}

TRAIN_BATCH_SIZE = 128  # Global batch, split evenly across replicas.
EVAL_BATCH_SIZE = 100
EVAL_POLL_SECONDS = 60  # Between looks for a new checkpoint to evaluate.
MAX_IDLE_POLLS = 360  # Looks without a new checkpoint before evaluation stops.
LOG_EVERY_STEPS = 100  # Progress lines; also the most steps per tf.function.
MAX_RECONSTRUCTION_IMAGES = 10
CHECKPOINT_PREFIX = 'model.ckpt'

# `input_fn(split, batch_size)`: batches of tensors (no Python ints), train
# split repeated with every batch full, test split read once in order.
InputFn = Callable[[str, int], tf.data.Dataset]

# The Python ints the models read from the feature dict, from the data.
DataShape = collections.namedtuple(
    'DataShape', ('height', 'depth', 'num_classes', 'num_targets'))

EvalResult = collections.namedtuple(
    'EvalResult', ('checkpoint', 'step', 'correct', 'almost', 'wrong',
                   'wrong_percent'))


def default_hparams() -> HParams:
  """The reference's default hyperparameters."""
  return HParams(
      decay_rate=0.96,
      decay_steps=2000,
      leaky=False,
      learning_rate=0.001,
      loss_type='margin',
      num_prime_capsules=32,
      padding='VALID',
      remake=True,
      routing=3,
      verbose=False,
  )


def _build_model(hparams: HParams, model_type: str, shape: DataShape,
                 compute_dtype: str = 'float32') -> base_model.Model:
  """A `models[model_type]` with its variables, for data of this shape."""
  if model_type not in models:
    raise ValueError(f'unknown model {model_type!r}; use one of '
                     f'{", ".join(models)}')
  model = models[model_type](hparams, compute_dtype)
  model.build(shape.height, shape.depth, shape.num_classes, shape.num_targets)
  return model


def dataset_input_fn(dataset: str, data_dir: Optional[str], num_targets: int,
                     validate: bool) -> InputFn:
  """Returns `input_fn(split, batch_size)` reading one of the data sets.

  Args:
    dataset: 'mnist', 'norb' or 'cifar10'.
    data_dir: the data directory (for cifar10 the one holding
      cifar-10-batches-bin/; for MultiMNIST a `path/name.tfrecords@N`
      pattern).
    num_targets: digits per image, 1 or 2 (MultiMNIST).
    validate: read the train/validation split files (mnist only).

  Returns:
    The input function.

  Raises:
    ValueError: for an unknown data set, a missing data_dir, or validate with
      a data set that has no validation files.
  """
  if not data_dir:
    raise ValueError('data_dir is required: pass --data_dir=<directory of '
                     'the prepared data>')
  if dataset == 'mnist':
    return lambda split, batch_size: mnist_input_record.inputs(
        data_dir=data_dir, batch_size=batch_size, split=split,
        num_targets=num_targets, height=None, validate=validate)
  if dataset not in ('norb', 'cifar10'):
    raise ValueError(
        f'unknown dataset {dataset!r}; use one of mnist, norb, cifar10')
  if validate:
    raise ValueError(f'validate is only available for mnist, not {dataset}')
  if dataset == 'norb':
    return lambda split, batch_size: norb_input_record.inputs(
        data_dir=data_dir, batch_size=batch_size, split=split)
  return lambda split, batch_size: cifar10_input.inputs(
      split=split, data_dir=os.path.join(data_dir, 'cifar-10-batches-bin'),
      batch_size=batch_size)


def _data_shape(element_spec: Mapping[str, tf.TensorSpec],
                num_targets: int) -> DataShape:
  """The shape ints of batches of `images` `[b, depth, h, w]` and `labels`."""
  _, depth, height, _ = element_spec['images'].shape
  return DataShape(height, depth, element_spec['labels'].shape[-1],
                   num_targets)


def _features(tensors: Mapping[str, tf.Tensor],
              shape: DataShape) -> Dict[str, object]:
  """The models' feature dict: the batch's tensors plus the shape ints."""
  return dict(tensors, **shape._asdict())


def _per_replica_batch_size(num_replicas: int) -> int:
  if num_replicas < 1 or TRAIN_BATCH_SIZE % num_replicas:
    raise ValueError(
        f'{num_replicas} replicas cannot split the global batch of '
        f'{TRAIN_BATCH_SIZE} evenly; use a number of GPUs (times workers) '
        f'that divides {TRAIN_BATCH_SIZE}')
  return TRAIN_BATCH_SIZE // num_replicas


def make_strategy(num_gpus: int) -> tf.distribute.Strategy:
  """The distribution strategy for `num_gpus` replicas per worker.

  With `TF_CONFIG` set, a `MultiWorkerMirroredStrategy` over the workers it
  lists, each using its first `num_gpus` GPUs (or its CPU when it has none);
  otherwise a `MirroredStrategy` over `num_gpus` GPUs when `num_gpus > 1`,
  else the default strategy (one device).

  Args:
    num_gpus: replicas per worker.

  Returns:
    The strategy.

  Raises:
    ValueError: if num_gpus does not divide the global batch or exceeds the
      GPUs this machine has.
  """
  _per_replica_batch_size(num_gpus)
  gpus = tf.config.list_physical_devices('GPU')
  if num_gpus > 1 and num_gpus > len(gpus):
    raise ValueError(f'num_gpus={num_gpus} but this machine has {len(gpus)} '
                     f'GPUs')
  if 'TF_CONFIG' in os.environ:
    if gpus:
      tf.config.set_visible_devices(gpus[:num_gpus], 'GPU')
    return tf.distribute.MultiWorkerMirroredStrategy()
  if num_gpus > 1:
    return tf.distribute.MirroredStrategy(
        [f'/gpu:{i}' for i in range(num_gpus)])
  return tf.distribute.get_strategy()


def _checkpoint_steps(train_dir: str) -> Dict[int, str]:
  """Step to prefix of every `model.ckpt-<step>` with an index file."""
  pattern = re.compile(re.escape(CHECKPOINT_PREFIX) + r'-(\d+)\.index$')
  steps = {}
  if not tf.io.gfile.isdir(train_dir):
    return steps
  for name in tf.io.gfile.listdir(train_dir):
    match = pattern.match(name)
    if match:
      steps[int(match.group(1))] = os.path.join(train_dir, name[:-6])
  return steps


def _restore_training(model: base_model.Model, train_dir: str) -> int:
  """Resumes from the latest checkpoint in train_dir; returns the step.

  Raises:
    FileExistsError: train_dir holds a checkpoint newer than the one the
      `checkpoint` state file names, which training would overwrite.
  """
  latest = tf.train.latest_checkpoint(train_dir)
  step = model.load_checkpoint(latest, include_optimizer=True) if latest else 0
  newer = sorted(s for s in _checkpoint_steps(train_dir) if s > step)
  if newer:
    raise FileExistsError(
        f'{train_dir} holds {CHECKPOINT_PREFIX}-{newer[-1]}, newer than the '
        f'checkpoint training would resume from (step {step}); fix the '
        f'checkpoint state file or use another summary_dir')
  if latest:
    print(f'Resumed from {latest} at step {step}', flush=True)
  return step


def _save_checkpoint(model: base_model.Model, train_dir: str) -> str:
  """Writes `model.ckpt-<step>` and points the `checkpoint` file at it.

  The state file lists every checkpoint of train_dir by its name relative to
  train_dir, as TF1's Saver did with max_to_keep=1000, so the directory can
  be moved.
  """
  step = int(model.global_step.numpy())
  path = os.path.join(train_dir, f'{CHECKPOINT_PREFIX}-{step}')
  if tf.io.gfile.exists(path + '.index'):
    raise FileExistsError(f'refusing to overwrite the checkpoint {path}')
  model.save_tf1_checkpoint(path)
  names = [os.path.basename(prefix) for _, prefix in
           sorted(_checkpoint_steps(train_dir).items())]
  state = f'model_checkpoint_path: "{os.path.basename(path)}"\n' + ''.join(
      f'all_model_checkpoint_paths: "{name}"\n' for name in names)
  temp_path = os.path.join(train_dir, 'checkpoint.tmp')
  with tf.io.gfile.GFile(temp_path, 'w') as state_file:
    state_file.write(state)
  tf.io.gfile.rename(temp_path, os.path.join(train_dir, 'checkpoint'),
                     overwrite=True)
  return path


def _summarize_remakes(features: Mapping[str, tf.Tensor],
                       remakes: List[tf.Tensor], shape: DataShape,
                       step: tf.Tensor) -> None:
  """Image summary 'reconstruction': input, target and remake, stacked.

  Each target gets a column of three images stacked vertically (input,
  target image, reconstruction); the second target's column sits to the right.

  Args:
    features: `images`, `recons_image` (and `spare_image`),
      `[batch, depth, height, width]`.
    remakes: one `[batch, depth * height * width]` reconstruction per target.
    shape: the data's shape ints.
    step: the summary step.
  """
  def channels_last(image):
    image = tf.reshape(image, [-1, shape.depth, shape.height, shape.height])
    return tf.transpose(image, [0, 2, 3, 1])

  targets = [features['recons_image']]
  if shape.num_targets == 2:
    targets.append(features['spare_image'])
  columns = [
      tf.concat([channels_last(features['images']), channels_last(target),
                 channels_last(remake)], axis=1)
      for target, remake in zip(targets, remakes)
  ]
  tf.summary.image('reconstruction', tf.concat(columns, axis=2), step=step,
                   max_outputs=MAX_RECONSTRUCTION_IMAGES)


def _make_train_steps(model: base_model.Model,
                      strategy: tf.distribute.Strategy, shape: DataShape):
  """Returns `train_steps(iterator, num_steps)`, a tf.function.

  It runs num_steps training steps, each writing its summaries at the global
  step before its update (the reference's numbering) to the default summary
  writer, and returns the mean loss and accuracy of those steps.
  """
  replicas = strategy.num_replicas_in_sync
  verbose = model.hparams.verbose
  image_keys = ['images', 'recons_image'] + (
      ['spare_image'] if shape.num_targets == 2 else [])

  def replica_step(tensors):
    features = _features(tensors, shape)
    grads, result = model.compute_gradients(features,
                                            loss_scale=1.0 / replicas)
    model.apply_gradients(grads)
    outputs = dict(
        total_loss=result.total_loss,
        classification_loss=result.classification_loss,
        reconstruction_losses=result.reconstruction_losses,
        correct=result.correct, almost=result.almost)
    if verbose:
      outputs.update(logits=result.logits, remakes=result.remakes or [],
                     images={key: tensors[key] for key in image_keys})
    return outputs

  def mean(value):
    return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

  def total(value):
    return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

  def write_summaries(outputs, loss, correct, step):
    tf.summary.scalar('batch_classification_cost',
                      mean(outputs['classification_loss']), step=step)
    tf.summary.scalar('total_loss', loss, step=step)
    tf.summary.scalar('accuracy', correct / TRAIN_BATCH_SIZE, step=step)
    tf.summary.scalar('correct_prediction_batch', correct, step=step)
    tf.summary.scalar('almost_correct_batch', total(outputs['almost']),
                      step=step)
    for i, recons_loss in enumerate(outputs['reconstruction_losses']):
      tf.summary.scalar('reconstruction_error' + (f'_{i}' if i else ''),
                        mean(recons_loss), step=step)
    if verbose:
      _write_verbose_summaries(model, strategy, outputs, shape, step)

  @tf.function
  def train_steps(iterator, num_steps):
    loss_sum = tf.constant(0.0)
    correct_sum = tf.constant(0.0)
    for _ in tf.range(num_steps):
      step = tf.identity(model.global_step)
      outputs = strategy.run(replica_step, args=(next(iterator),))
      loss = mean(outputs['total_loss'])
      correct = total(outputs['correct'])
      # The reference's tags, outside the loop's `while/` name scope.
      with tf.name_scope(''):
        write_summaries(outputs, loss, correct, step)
      loss_sum += loss
      correct_sum += correct
    steps = tf.cast(num_steps, tf.float32)
    return loss_sum / steps, correct_sum / (steps * TRAIN_BATCH_SIZE)

  return train_steps


def _write_verbose_summaries(model: base_model.Model,
                             strategy: tf.distribute.Strategy,
                             outputs: Mapping, shape: DataShape,
                             step: tf.Tensor) -> None:
  """Weight and activation histograms, and the first replica's remakes."""
  def first(value):
    return strategy.experimental_local_results(value)[0]

  for name, var in model.tf1_variable_map().items():
    if name != base_model.GLOBAL_STEP:
      tf.summary.histogram(name, tf.convert_to_tensor(var), step=step)
  tf.summary.histogram('logits', first(outputs['logits']), step=step)
  if outputs['remakes']:
    _summarize_remakes({k: first(v) for k, v in outputs['images'].items()},
                       [first(remake) for remake in outputs['remakes']],
                       shape, step)


def _next_stop(step: int, max_steps: int, save_step: int) -> int:
  """The next step at which training saves, logs or ends."""
  def next_multiple(every):
    return (step // every + 1) * every
  return min(max_steps, next_multiple(save_step),
             next_multiple(LOG_EVERY_STEPS))


def train(hparams: HParams, summary_dir: str, model_type: str, max_steps: int,
          save_step: int, input_fn: InputFn, num_targets: int = 1,
          strategy: Optional[tf.distribute.Strategy] = None,
          compute_dtype: str = 'float32') -> int:
  """Trains a model with a global batch of 128 up to global step max_steps.

  Resumes from the latest checkpoint in `summary_dir/train/` and never
  deletes anything there. Saves `model.ckpt-<step>` every save_step steps and
  at max_steps; writes summaries for every step. Under multi-worker training
  only the chief writes files.

  Args:
    hparams: model hyperparameters (`default_hparams()`, overridden).
    summary_dir: experiment directory; training uses `summary_dir/train/`.
    model_type: key of `models`.
    max_steps: global step to train to.
    save_step: checkpoint period in steps.
    input_fn: `input_fn(split, batch_size)` of the data set.
    num_targets: objects per image (2 for MultiMNIST).
    strategy: distribution strategy; None: the default (one device).
    compute_dtype: 'float32', or 'bfloat16' for mixed precision.

  Returns:
    The global step reached.

  Raises:
    ValueError: unknown model, missing summary_dir, or replicas that do not
      divide the global batch.
    FileExistsError: a checkpoint would be overwritten.
    model.CheckpointMismatchError: the latest checkpoint in train/ belongs to
      another architecture.
  """
  if not summary_dir:
    raise ValueError('summary_dir is required for training: pass '
                     '--summary_dir=<experiment directory>')
  if save_step < 1:
    raise ValueError(f'save_step must be positive, got {save_step}')
  strategy = strategy or tf.distribute.get_strategy()
  batch_size = _per_replica_batch_size(strategy.num_replicas_in_sync)
  train_dir = os.path.join(summary_dir, 'train')
  is_chief = strategy.extended.should_checkpoint
  if is_chief:
    tf.io.gfile.makedirs(train_dir)

  dataset = input_fn('train', batch_size)
  shape = _data_shape(dataset.element_spec, num_targets)
  iterator = iter(strategy.distribute_datasets_from_function(
      lambda context: dataset.shard(context.num_input_pipelines,
                                    context.input_pipeline_id)))
  with strategy.scope():
    model = _build_model(hparams, model_type, shape, compute_dtype)
  num_params = sum(int(np.prod(var.shape)) for var in model.trainable_variables)
  print(f'total_params: {num_params}', flush=True)
  step = _restore_training(model, train_dir)
  if step >= max_steps:
    print(f'Nothing to train: the global step {step} has reached max_steps '
          f'{max_steps}', flush=True)
  train_steps = _make_train_steps(model, strategy, shape)
  writer = (tf.summary.create_file_writer(train_dir) if is_chief
            else tf.summary.create_noop_writer())
  with writer.as_default():
    while step < max_steps:
      stop = _next_stop(step, max_steps, save_step)
      start_time = time.time()
      loss, accuracy = train_steps(iterator, tf.constant(stop - step))
      seconds_per_step = (time.time() - start_time) / (stop - step)
      step = stop
      if is_chief and (step % save_step == 0 or step == max_steps):
        writer.flush()
        _save_checkpoint(model, train_dir)
      if step % LOG_EVERY_STEPS == 0 or step == max_steps:
        print(f'step {step}: loss {float(loss):.4f}, accuracy '
              f'{float(accuracy):.4f}, '
              f'{TRAIN_BATCH_SIZE / seconds_per_step:.1f} examples/s, '
              f'{_format_duration((max_steps - step) * seconds_per_step)} '
              f'left', flush=True)
  writer.close()
  return step


def _format_duration(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}:{minutes:02d}:{seconds:02d}'


def _checkpoints_to_evaluate(train_dir: str, poll_seconds: float,
                             max_idle_polls: int) -> Iterator[str]:
  """Yields each new latest checkpoint of train_dir, as the reference did.

  Looks at once and after every evaluation; when nothing new is there it
  sleeps poll_seconds, and it stops after max_idle_polls looks in a row found
  nothing new.
  """
  seen = None
  idle_polls = 0
  while idle_polls < max_idle_polls:
    latest = tf.train.latest_checkpoint(train_dir)
    if latest and latest != seen:
      seen = latest
      idle_polls = 0
      yield latest
    else:
      idle_polls += 1
      time.sleep(poll_seconds)


def _test_batches(dataset: tf.data.Dataset,
                  eval_size: int) -> Iterator[Dict[str, tf.Tensor]]:
  """The first eval_size // 100 batches of the test split, all full.

  Raises:
    ValueError: eval_size is below 100, or the test split is shorter than
      the batches it asks for.
  """
  num_steps = eval_size // EVAL_BATCH_SIZE
  if num_steps < 1:
    raise ValueError(f'eval_size={eval_size} is less than one batch of '
                     f'{EVAL_BATCH_SIZE} examples')
  num_batches = 0
  for tensors in dataset.take(num_steps):
    if tensors['labels'].shape[0] != EVAL_BATCH_SIZE:
      break
    num_batches += 1
    yield tensors
  if num_batches < num_steps:
    raise ValueError(
        f'the test data holds fewer than eval_size={eval_size} examples '
        f'({num_batches} full batches of {EVAL_BATCH_SIZE}); lower eval_size')


def evaluate(hparams: HParams, summary_dir: str, model_type: str,
             eval_size: int, input_fn: InputFn, num_targets: int = 1,
             checkpoint: Optional[str] = None,
             poll_seconds: float = EVAL_POLL_SECONDS,
             max_idle_polls: int = MAX_IDLE_POLLS,
             compute_dtype: str = 'float32') -> List[EvalResult]:
  """Counts the wrong predictions of a checkpoint on the test split.

  Evaluates `checkpoint`, or else each new checkpoint that training writes to
  `summary_dir/train/` until max_idle_polls looks, poll_seconds apart, found
  none. Reads eval_size // 100 batches of 100, sums the correct and
  almost-correct predictions, prints
  `Total wrong predictions: N, wrong percent: P%` (P = N / batches, the
  reference's percent) and writes correct_prediction, wrong_prediction and
  almost_wrong_prediction to `summary_dir/test/` at the checkpoint's step.

  Args:
    hparams: model hyperparameters, as in training.
    summary_dir: experiment directory.
    model_type: key of `models`.
    eval_size: test examples to evaluate (whole batches of 100).
    input_fn: `input_fn(split, batch_size)` of the data set.
    num_targets: objects per image (2 for MultiMNIST).
    checkpoint: checkpoint prefix to evaluate once; None: follow training.
    poll_seconds: seconds between looks for a new checkpoint.
    max_idle_polls: looks without a new checkpoint before stopping.
    compute_dtype: 'float32', or 'bfloat16' for mixed precision.

  Returns:
    One `EvalResult` per evaluated checkpoint.

  Raises:
    ValueError: unknown model, missing summary_dir, or too little test data.
    FileNotFoundError: the checkpoint cannot be read.
    model.CheckpointMismatchError: the checkpoint belongs to another
      architecture.
  """
  if not summary_dir:
    raise ValueError('summary_dir is required for evaluation: pass '
                     '--summary_dir=<experiment directory>')
  dataset = input_fn('test', EVAL_BATCH_SIZE)
  shape = _data_shape(dataset.element_spec, num_targets)
  model = _build_model(hparams, model_type, shape, compute_dtype)
  count = tf.function(
      lambda tensors: model.compute_loss(_features(tensors, shape))[1:])
  checkpoints = ([checkpoint] if checkpoint else _checkpoints_to_evaluate(
      os.path.join(summary_dir, 'train'), poll_seconds, max_idle_polls))
  writer = tf.summary.create_file_writer(os.path.join(summary_dir, 'test'))
  results = []
  for path in checkpoints:
    step = model.load_checkpoint(path)
    print(f'Evaluating {path} (step {step})', flush=True)
    correct = almost = num_batches = 0
    for tensors in _test_batches(dataset, eval_size):
      batch_correct, batch_almost = count(tensors)
      correct += int(batch_correct)
      almost += int(batch_almost)
      num_batches += 1
    num_examples = num_batches * EVAL_BATCH_SIZE
    wrong = num_examples - correct
    result = EvalResult(path, step, correct, almost, wrong,
                        wrong / num_batches)
    print(f'Total wrong predictions: {wrong}, wrong percent: '
          f'{result.wrong_percent}%', flush=True)
    with writer.as_default(step=step):
      tf.summary.scalar('correct_prediction', correct)
      tf.summary.scalar('wrong_prediction', wrong)
      tf.summary.scalar('almost_wrong_prediction', num_examples - almost)
    writer.flush()
    results.append(result)
  writer.close()
  return results


def evaluate_ensemble(hparams: HParams, model_type: str, eval_size: int,
                      input_fn: InputFn, checkpoint: str, num_trials: int,
                      num_targets: int = 1,
                      compute_dtype: str = 'float32') -> int:
  """Counts the wrong predictions of an ensemble on the test split.

  Reads the first eval_size test examples once, runs every member
  `checkpoint.format(i)`, i < num_trials, with one model (reloading its
  weights), keeps the running sum of their logits, and predicts its argmax;
  a prediction is wrong when it differs from the first label
  (`recons_label`). Prints `Total wrong predictions: N, wrong percent: P%`
  with P = N / eval_size * 100.

  Args:
    hparams: model hyperparameters, as in training.
    model_type: key of `models`.
    eval_size: test examples to evaluate (whole batches of 100).
    input_fn: `input_fn(split, batch_size)` of the data set.
    checkpoint: checkpoint pattern holding `{}` for the trial index.
    num_trials: ensemble members.
    num_targets: objects per image (2 for MultiMNIST).
    compute_dtype: 'float32', or 'bfloat16' for mixed precision.

  Returns:
    The number of wrong predictions.

  Raises:
    ValueError: unknown model, a pattern without `{}`, or too little data.
    FileNotFoundError: a member checkpoint is missing (checked first).
    model.CheckpointMismatchError: a member belongs to another architecture.
  """
  paths = [(checkpoint or '').format(i) for i in range(num_trials)]
  if len(set(paths)) < num_trials:
    raise ValueError(
        f'checkpoint must be a pattern holding {{}} for the trial index '
        f'0..{num_trials - 1} when num_trials > 1, got {checkpoint!r}')
  missing = [path for path in paths if not tf.io.gfile.exists(path + '.index')]
  if missing:
    raise FileNotFoundError(
        f'ensemble checkpoints not found: {", ".join(missing)}')
  dataset = input_fn('test', EVAL_BATCH_SIZE)
  shape = _data_shape(dataset.element_spec, num_targets)
  model = _build_model(hparams, model_type, shape, compute_dtype)
  batches = [{key: value.numpy() for key, value in tensors.items()}
             for tensors in _test_batches(dataset, eval_size)]
  logits_of = tf.function(
      lambda tensors: model.inference(_features(tensors, shape)).logits)
  logit_sum = np.zeros(
      [len(batches) * EVAL_BATCH_SIZE, shape.num_classes], np.float32)
  for path in paths:
    model.load_checkpoint(path)
    logit_sum += np.concatenate([logits_of(batch) for batch in batches])
  targets = np.concatenate([batch['recons_label'] for batch in batches])
  wrong = int(np.sum(np.argmax(logit_sum, axis=1) != targets))
  print(f'Total wrong predictions: {wrong}, wrong percent: '
        f'{wrong / eval_size * 100}%', flush=True)
  return wrong


def main(argv: List[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  hparams = default_hparams().parse(FLAGS.hparams_override or '')
  input_fn = dataset_input_fn(FLAGS.dataset, FLAGS.data_dir,
                              FLAGS.num_targets, FLAGS.validate)
  if FLAGS.train:
    train(hparams, FLAGS.summary_dir, FLAGS.model, FLAGS.max_steps,
          FLAGS.save_step, input_fn, FLAGS.num_targets,
          make_strategy(FLAGS.num_gpus), FLAGS.compute_dtype)
  elif FLAGS.num_trials == 1:
    evaluate(hparams, FLAGS.summary_dir, FLAGS.model, FLAGS.eval_size,
             input_fn, FLAGS.num_targets, FLAGS.checkpoint,
             compute_dtype=FLAGS.compute_dtype)
  else:
    evaluate_ensemble(hparams, FLAGS.model, FLAGS.eval_size, input_fn,
                      FLAGS.checkpoint, FLAGS.num_trials, FLAGS.num_targets,
                      FLAGS.compute_dtype)


# Mistakes in the command line, the data or the checkpoints: reported in one
# line, without a traceback.
_USER_ERRORS = (ValueError, OSError, tf.errors.NotFoundError,
                tf.errors.DataLossError)


def _main_with_clear_errors(argv: List[str]) -> None:
  try:
    main(argv)
  except _USER_ERRORS as error:
    sys.exit('experiment.py: error: ' + ' '.join(str(error).split()))


if __name__ == '__main__':
  app.run(_main_with_clear_errors)
