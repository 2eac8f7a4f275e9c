r"""Framework for training and evaluating capsule and baseline models.

The reference's driver: `--train` trains a model on the train split and writes
TF1 name-based checkpoints `summary_dir/train/model.ckpt-<step>`,
`--train=false` evaluates one checkpoint or follows a training directory, and
`--num_trials=K` evaluates an ensemble of K checkpoints. Only this file's
`main` reads flags; `train`, `evaluate` and `evaluate_ensemble` take plain
values, keyword arguments after the hparams.

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

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position
import collections
import os
import time
from typing import Iterable, List, Mapping, Optional

from absl import flags
import keras
import numpy as np
import tensorflow as tf

from input_data import datasets
from input_data import prepare
from models import capsule_model
from models import checkpoints
from models import conv_model
from models import devices
from models import model as model_lib
from models.hparams import HParams
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

models = {
    'capsule': capsule_model.CapsuleModel,
    'baseline': conv_model.ConvModel,
    'baseline_paper': conv_model.PaperBaselineModel,
}

TRAIN_BATCH_SIZE = 128  # Global batch, split evenly across replicas.
EVAL_BATCH_SIZE = 100
EVAL_POLL_SECONDS = 60  # Between looks for a new checkpoint to evaluate.
EVAL_TIMEOUT_SECONDS = 360 * EVAL_POLL_SECONDS  # Idle time before it stops.
LOG_EVERY_STEPS = 100  # Progress lines; also the most steps per tf.function.

EvalResult = collections.namedtuple(
    'EvalResult', ('checkpoint', 'step', 'correct', 'almost', 'wrong',
                   'wrong_percent'))


class NonFiniteLossError(ValueError):
  """The training loss became NaN or infinite."""


def default_hparams() -> HParams:
  """The reference's default hyperparameters."""
  return HParams(
      # Not in the reference: the network's widths, so that the paper's
      # smaller SVHN network (conv1_channels=64, num_prime_capsules=16,
      # prime_capsule_atoms=6, digit_capsule_atoms=8) is an override.
      conv1_channels=256,
      prime_capsule_atoms=8,
      digit_capsule_atoms=16,
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


def build_model(hparams: HParams, *, model_type: str,
                shape: model_lib.DataShape,
                compute_dtype: str = 'float32') -> model_lib.Model:
  """A `models[model_type]` with its variables, for data of this shape."""
  if model_type not in models:
    raise ValueError(f'unknown model {model_type!r}; use one of '
                     f'{", ".join(models)}')
  model = models[model_type](hparams, compute_dtype)
  model.build(shape.height, shape.depth, shape.num_classes, shape.num_targets)
  return model


def _make_train_steps(model: model_lib.Model,
                      strategy: tf.distribute.Strategy,
                      shape: model_lib.DataShape):
  """Returns `train_steps(iterator, num_steps)`, a tf.function.

  It runs up to num_steps training steps, each writing the model's summaries
  at the global step before its update (the reference's numbering) to the
  default summary writer, and stops early after a step whose loss is not
  finite. It returns the mean loss and accuracy of the steps run, how many
  ran, and whether every loss was finite.
  """
  replicas = strategy.num_replicas_in_sync

  def replica_step(tensors):
    grads, result = model.compute_gradients(
        model_lib.features(tensors, shape), loss_scale=1.0 / replicas)
    model.apply_gradients(grads)
    return result._replace(remakes=result.remakes or []), tensors

  def reduce(op, value):
    return strategy.reduce(op, value, axis=None)

  def first(value):  # Of the first replica's batch, for summaries.
    return strategy.experimental_local_results(value)[0]

  def mean(value):
    return reduce(tf.distribute.ReduceOp.MEAN, value)

  @tf.function
  def train_steps(iterator, num_steps):
    loss_sum = correct_sum = tf.constant(0.0)
    steps_run = tf.constant(0)
    finite = tf.constant(True)
    for _ in tf.range(num_steps):
      step = tf.identity(model.global_step)
      result, tensors = strategy.run(replica_step, args=(next(iterator),))
      result = model_lib.Losses(
          total_loss=mean(result.total_loss),
          correct=reduce(tf.distribute.ReduceOp.SUM, result.correct),
          almost=reduce(tf.distribute.ReduceOp.SUM, result.almost),
          classification_loss=mean(result.classification_loss),
          reconstruction_losses=[mean(loss)
                                 for loss in result.reconstruction_losses],
          logits=first(result.logits),
          remakes=[first(remake) for remake in result.remakes])
      # The reference's tags, outside the loop's `while/` name scope.
      with tf.name_scope(''):
        model.summarize(
            result, model_lib.features(tf.nest.map_structure(first, tensors),
                                       shape),
            step=step, batch_size=TRAIN_BATCH_SIZE)
      loss_sum += result.total_loss
      correct_sum += result.correct
      steps_run += 1
      if not tf.math.is_finite(result.total_loss):
        finite = tf.constant(False)
        break
    steps = tf.cast(steps_run, tf.float32)
    return (loss_sum / steps, correct_sum / (steps * TRAIN_BATCH_SIZE),
            steps_run, finite)

  return train_steps


def _next_stop(step: int, max_steps: int, save_step: int) -> int:
  """The next step at which training saves, logs or ends."""
  def next_multiple(every):
    return (step // every + 1) * every
  return min(max_steps, next_multiple(save_step),
             next_multiple(LOG_EVERY_STEPS))


def train(hparams: HParams, *, summary_dir: str, model_type: str,
          max_steps: int, save_step: int, input_fn: datasets.InputFn,
          num_targets: int = 1,
          strategy: Optional[tf.distribute.Strategy] = None,
          compute_dtype: str = 'float32', seed: Optional[int] = None) -> int:
  """Trains a model with a global batch of 128 up to global step max_steps.

  Resumes from the newest loadable checkpoint in `summary_dir/train/` and
  never deletes anything there. Saves `model.ckpt-<step>` every save_step
  steps and at max_steps; writes summaries for every step. Under
  multi-worker training only the chief writes files. Each input pipeline
  builds its own dataset and reads its share of the records.

  Args:
    hparams: model hyperparameters (`default_hparams()`, overridden).
    summary_dir: experiment directory; training uses `summary_dir/train/`.
    model_type: key of `models`.
    max_steps: global step to train to.
    save_step: checkpoint period in steps.
    input_fn: `input_fn(split, batch_size, input_context=None)`.
    num_targets: objects per image (2 for MultiMNIST).
    strategy: distribution strategy; None: the default (one device).
    compute_dtype: 'float32', or 'bfloat16' or 'float16' for mixed
      precision (see `model.Model`).
    seed: seeds Python, NumPy, TensorFlow and Keras
      (`keras.utils.set_random_seed`) and makes the training input's order
      deterministic, so the same seed gives the same initial weights and
      batches; a resumed seeded run passes over the batches of the steps
      already done, so it sees the batches an uninterrupted run would.
      Bitwise-equal runs on GPUs, or with random distortions (cifar10,
      norb), also need `tf.config.experimental.enable_op_determinism()` (as
      `--seed` does).
      None: unseeded, the input in any order (faster).

  Returns:
    The global step reached.

  Raises:
    ValueError: unknown model, missing summary_dir, or replicas that do not
      divide the global batch.
    NonFiniteLossError: the loss became NaN or infinite (nothing is saved
      after the last good checkpoint).
    checkpoints.CheckpointError: the checkpoints in train/ belong to another
      architecture, or none of them loads.
    OSError: a checkpoint could not be written (e.g. the disk is full).
  """
  if not summary_dir:
    raise ValueError('summary_dir is required for training: pass '
                     '--summary_dir=<experiment directory>')
  if save_step < 1:
    raise ValueError(f'save_step must be positive, got {save_step}')
  strategy = strategy or tf.distribute.get_strategy()
  devices.check_replicas(strategy.num_replicas_in_sync, TRAIN_BATCH_SIZE)
  if seed is not None:
    keras.utils.set_random_seed(seed)
  # Order-deterministic input for a seeded run only: `records.read_files`
  # interleaves its files in the order this option asks for.
  options = tf.data.Options()
  options.deterministic = seed is not None
  train_dir = os.path.join(summary_dir, 'train')
  is_chief = strategy.extended.should_checkpoint
  if is_chief:
    tf.io.gfile.makedirs(train_dir)
  replica_batch = TRAIN_BATCH_SIZE // strategy.num_replicas_in_sync
  # A pipeline made only for its shapes, before the model, in every run
  # alike: the training pipeline below then draws the same op seeds whether
  # the run starts or resumes.
  shape = model_lib.data_shape(input_fn('train', replica_batch).element_spec,
                               num_targets)
  with strategy.scope():
    model = build_model(hparams, model_type=model_type, shape=shape,
                        compute_dtype=compute_dtype)
  num_params = sum(int(np.prod(var.shape)) for var in model.trainable_variables)
  print(f'total_params: {num_params}', flush=True)
  step = checkpoints.restore_latest(model, train_dir)
  # A seeded run resumes in its own data order: the batches of the steps
  # done are read and passed over (unseeded, the order is random anyway).
  done = step if seed is not None else 0

  def dataset_fn(input_context):
    replicas_here = (strategy.num_replicas_in_sync //
                     input_context.num_input_pipelines)
    return input_fn('train', replica_batch, input_context).with_options(
        options).skip(done * replicas_here)

  iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
  if step >= max_steps:
    print(f'Nothing to train: the global step {step} has reached max_steps '
          f'{max_steps}', flush=True)
  train_steps = _make_train_steps(model, strategy, shape)
  writer = (tf.summary.create_file_writer(train_dir) if is_chief
            else tf.summary.create_noop_writer())
  with writer.as_default():
    while step < max_steps:
      start_time = time.time()
      loss, accuracy, steps_run, finite = train_steps(
          iterator, tf.constant(_next_stop(step, max_steps, save_step) - step))
      seconds_per_step = (time.time() - start_time) / int(steps_run)
      last_step = step + int(steps_run) - 1
      # Not step + steps_run: float16 skips the steps that overflow.
      step = int(model.global_step.numpy())
      if not finite:
        writer.flush()
        saved = checkpoints.list_steps(train_dir)
        last = f'model.ckpt-{max(saved)}' if saved else 'no checkpoint'
        raise NonFiniteLossError(
            f'the loss became {float(loss):.4g} at step {last_step}; nothing '
            f'was saved after {last}. Lower the learning rate '
            f'(--hparams_override=learning_rate=...) and rerun to resume')
      if is_chief and (step % save_step == 0 or step == max_steps):
        writer.flush()
        checkpoints.save(model, train_dir)
      if step % LOG_EVERY_STEPS == 0 or step == max_steps:
        minutes, seconds = divmod(int((max_steps - step) * seconds_per_step),
                                  60)
        print(f'step {step}: loss {float(loss):.4f}, accuracy '
              f'{float(accuracy):.4f}, '
              f'{TRAIN_BATCH_SIZE / seconds_per_step:.1f} examples/s, '
              f'{minutes // 60}:{minutes % 60:02d}:{seconds:02d} left',
              flush=True)
  writer.close()
  return step


def _test_model(hparams: HParams, *, model_type: str,
                input_fn: datasets.InputFn, num_targets: int,
                compute_dtype: str):
  """The test split in batches of 100, its shape, and a model for it."""
  dataset = input_fn('test', EVAL_BATCH_SIZE)
  shape = model_lib.data_shape(dataset.element_spec, num_targets)
  return dataset, shape, build_model(hparams, model_type=model_type,
                                     shape=shape, compute_dtype=compute_dtype)


def _test_batches(dataset: tf.data.Dataset,
                  eval_size: int) -> Iterable[Mapping[str, tf.Tensor]]:
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


def _print_wrong(wrong: int, percent: float) -> None:
  print(f'Total wrong predictions: {wrong}, wrong percent: {percent}%',
        flush=True)


def evaluate(hparams: HParams, *, summary_dir: str, model_type: str,
             eval_size: int, input_fn: datasets.InputFn,
             num_targets: int = 1, checkpoint: Optional[str] = None,
             poll_seconds: float = EVAL_POLL_SECONDS,
             timeout_seconds: float = EVAL_TIMEOUT_SECONDS,
             compute_dtype: str = 'float32') -> List[EvalResult]:
  """Counts the wrong predictions of a checkpoint on the test split.

  Evaluates `checkpoint`, or else each new checkpoint that training writes to
  `summary_dir/train/` (`tf.train.checkpoints_iterator`) until none came for
  timeout_seconds. Reads eval_size // 100 batches of 100, sums the correct
  and almost-correct predictions, prints
  `Total wrong predictions: N, wrong percent: P%` (P = N / batches, the
  reference's percent) and writes correct_prediction, wrong_prediction and
  almost_wrong_prediction to `summary_dir/test/` at the checkpoint's step.

  Args:
    hparams: model hyperparameters, as in training.
    summary_dir: experiment directory.
    model_type: key of `models`.
    eval_size: test examples to evaluate (whole batches of 100).
    input_fn: `input_fn(split, batch_size, input_context=None)`.
    num_targets: objects per image (2 for MultiMNIST).
    checkpoint: checkpoint prefix to evaluate once; None: follow training.
    poll_seconds: the least time between two evaluations when following.
    timeout_seconds: how long to wait for a new checkpoint when following.
    compute_dtype: as for training.

  Returns:
    One `EvalResult` per evaluated checkpoint.

  Raises:
    ValueError: unknown model, missing summary_dir, or too little test data.
    FileNotFoundError: the checkpoint does not exist.
    checkpoints.CheckpointError: the checkpoint is damaged or belongs to
      another architecture.
  """
  if not summary_dir:
    raise ValueError('summary_dir is required for evaluation: pass '
                     '--summary_dir=<experiment directory>')
  dataset, shape, model = _test_model(
      hparams, model_type=model_type, input_fn=input_fn,
      num_targets=num_targets, compute_dtype=compute_dtype)
  count = tf.function(lambda tensors: model.compute_loss(
      model_lib.features(tensors, shape))[1:])
  paths = ([checkpoint] if checkpoint else tf.train.checkpoints_iterator(
      os.path.join(summary_dir, 'train'), min_interval_secs=poll_seconds,
      timeout=timeout_seconds))
  writer = tf.summary.create_file_writer(os.path.join(summary_dir, 'test'))
  results = []
  for path in paths:
    step = checkpoints.load(model, path)
    print(f'Evaluating {path} (step {step})', flush=True)
    correct = almost = num_batches = 0
    for tensors in _test_batches(dataset, eval_size):
      batch_correct, batch_almost = count(tensors)
      correct += int(batch_correct)
      almost += int(batch_almost)
      num_batches += 1
    num_examples = num_batches * EVAL_BATCH_SIZE
    wrong = num_examples - correct
    results.append(EvalResult(path, step, correct, almost, wrong,
                              wrong / num_batches))
    _print_wrong(wrong, results[-1].wrong_percent)
    with writer.as_default(step=step):
      tf.summary.scalar('correct_prediction', correct)
      tf.summary.scalar('wrong_prediction', wrong)
      tf.summary.scalar('almost_wrong_prediction', num_examples - almost)
    writer.flush()
  writer.close()
  return results


def evaluate_ensemble(hparams: HParams, *, model_type: str, eval_size: int,
                      input_fn: datasets.InputFn, checkpoint: str,
                      num_trials: int, num_targets: int = 1,
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
    input_fn: `input_fn(split, batch_size, input_context=None)`.
    checkpoint: checkpoint pattern holding `{}` for the trial index.
    num_trials: ensemble members.
    num_targets: objects per image (2 for MultiMNIST).
    compute_dtype: as for training.

  Returns:
    The number of wrong predictions.

  Raises:
    ValueError: unknown model, a pattern without `{}`, or too little data.
    FileNotFoundError: a member checkpoint is missing (checked first).
    checkpoints.CheckpointError: a member is damaged or belongs to another
      architecture.
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
  dataset, shape, model = _test_model(
      hparams, model_type=model_type, input_fn=input_fn,
      num_targets=num_targets, compute_dtype=compute_dtype)
  batches = [{key: value.numpy() for key, value in tensors.items()}
             for tensors in _test_batches(dataset, eval_size)]
  logits_of = tf.function(
      lambda tensors: model.inference(
          model_lib.features(tensors, shape)).logits)
  logit_sum = np.zeros(
      [len(batches) * EVAL_BATCH_SIZE, shape.num_classes], np.float32)
  for path in paths:
    checkpoints.load(model, path)
    logit_sum += np.concatenate([logits_of(batch) for batch in batches])
  targets = np.concatenate([batch['recons_label'] for batch in batches])
  wrong = int(np.sum(np.argmax(logit_sum, axis=1) != targets))
  _print_wrong(wrong, wrong / eval_size * 100)
  return wrong


def _define_flags() -> None:
  """The reference's flags (and a few of our own), for the command line.

  Defined only when this file runs as a script, so that tools importing it
  can define flags of the same names.
  """
  flags.DEFINE_string('data_dir', prepare.DEFAULT_DATA_DIR,
                      'The data directory; for MultiMNIST records a sharded '
                      'pattern path/name.tfrecords@N. Missing files are '
                      'prepared there: from the original files in it (MNIST '
                      'idx, CIFAR10 binary batches, smallNORB .mat), else '
                      'from tensorflow-datasets.')
  flags.DEFINE_integer('eval_size', 10000,
                       'Number of test examples evaluated.')
  flags.DEFINE_string('hparams_override', None,
                      'A string of form key=value,key=value to override the '
                      'hparams of this experiment.')
  flags.DEFINE_integer('max_steps', 1000,
                       'Number of global steps to train; a resumed run counts '
                       'from the restored step.')
  flags.DEFINE_string('model', 'capsule',
                      'The model to use for the experiment: capsule, '
                      'baseline (the reference code\'s CNN) or '
                      'baseline_paper (the paper\'s 35.4M MNIST baseline).')
  flags.DEFINE_enum('dataset', 'mnist', list(datasets.DATASETS),
                    'The dataset to use for the experiment. mnist with '
                    '--num_targets=2 and a data_dir folder: MultiMNIST '
                    'generated on the fly; expanded_mnist: digits placed at '
                    'random on 40x40; affnist, affine_mnist: test sets only '
                    '(of a model trained on expanded_mnist).')
  flags.DEFINE_enum('multi_mnist_shift', 'reference', ['reference', 'paper'],
                    'Not in the reference. Generated MultiMNIST: digits '
                    'shifted by up to 6 pixels (the reference README) or 4 '
                    '(the paper) on a 36x36 canvas.')
  flags.DEFINE_integer('num_pairs', 1000,
                       'Not in the reference. Generated MultiMNIST: pairs per '
                       'digit in a training epoch.')
  flags.DEFINE_integer('num_gpus', 1,
                       'Number of GPUs (replicas per worker) to use; the '
                       'global batch is split evenly across all replicas.')
  flags.DEFINE_integer('num_targets', 1,
                       'Number of targets to detect (1, or 2 for MultiMNIST).')
  flags.DEFINE_integer('num_trials', 1,
                       'Number of trials for ensemble evaluation.')
  flags.DEFINE_integer('save_step', 1500, 'How often to save checkpoints.')
  flags.DEFINE_integer('seed', None,
                       'Not in the reference. Seed of the initial weights, '
                       'the training input order and its random '
                       'distortions, with deterministic ops: the same seed '
                       'gives the same result on the same machine (slower '
                       'on GPUs). Unset: unseeded.')
  flags.DEFINE_string('summary_dir', None,
                      'Main directory for the experiments: training writes '
                      'summary_dir/train/, evaluation summary_dir/test/.')
  flags.DEFINE_string('checkpoint', None,
                      'The model checkpoint to evaluate; with num_trials > 1 '
                      'a pattern holding {} for the trial index.')
  flags.DEFINE_enum('compute_dtype', 'float32',
                    list(devices.COMPUTE_DTYPE_NAMES),
                    'Not in the reference. bfloat16, float16: mixed '
                    'precision, the convolutions and matrix products in that '
                    'dtype on float32 weights, squash, routing and losses in '
                    'float32; float16 with a dynamic loss scale. mixed: the '
                    'one this machine runs fast (bfloat16 on GPUs from '
                    'Ampere on and CPUs with bfloat16 instructions, float16 '
                    'on older GPUs, else float32).')
  flags.DEFINE_bool('train', True, 'Either train the model or test the model.')
  flags.DEFINE_bool('validate', False,
                    'Use the train/validation split files for training and '
                    'evaluation.')
  flags.DEFINE_bool('evaluate_after_training', True,
                    'Not in the reference. After training, evaluate the '
                    'final checkpoint on the test split (the validation '
                    'split with --validate).')


def main(argv: List[str]) -> None:
  del argv  # Unused.
  devices.allow_gpu_memory_growth()
  hparams = default_hparams().parse(FLAGS.hparams_override or '')
  print(f'Data: {FLAGS.data_dir}', flush=True)
  input_fn = datasets.input_fn(
      FLAGS.dataset, data_dir=FLAGS.data_dir, num_targets=FLAGS.num_targets,
      validate=FLAGS.validate, multi_mnist_shift=FLAGS.multi_mnist_shift,
      num_pairs=FLAGS.num_pairs, eval_size=FLAGS.eval_size,
      # Generated data sets need one seed on every worker, also unseeded.
      seed=0 if FLAGS.seed is None else FLAGS.seed)
  common = dict(model_type=FLAGS.model, input_fn=input_fn,
                num_targets=FLAGS.num_targets,
                compute_dtype=devices.compute_dtype(FLAGS.compute_dtype))
  if FLAGS.train:
    if FLAGS.seed is not None:
      tf.config.experimental.enable_op_determinism()
    strategy = devices.make_strategy(FLAGS.num_gpus,
                                     global_batch_size=TRAIN_BATCH_SIZE)
    step = train(hparams, summary_dir=FLAGS.summary_dir,
                 max_steps=FLAGS.max_steps, save_step=FLAGS.save_step,
                 strategy=strategy, seed=FLAGS.seed, **common)
    if FLAGS.evaluate_after_training and strategy.extended.should_checkpoint:
      final = os.path.join(FLAGS.summary_dir, 'train',
                           f'{checkpoints.PREFIX}-{step}')
      evaluate(hparams, summary_dir=FLAGS.summary_dir,
               eval_size=FLAGS.eval_size, checkpoint=final, **common)
  elif FLAGS.num_trials == 1:
    evaluate(hparams, summary_dir=FLAGS.summary_dir,
             eval_size=FLAGS.eval_size, checkpoint=FLAGS.checkpoint, **common)
  else:
    evaluate_ensemble(hparams, eval_size=FLAGS.eval_size,
                      checkpoint=FLAGS.checkpoint, num_trials=FLAGS.num_trials,
                      **common)


if __name__ == '__main__':
  cli.run(main, program='experiment.py', define_flags=_define_flags)
