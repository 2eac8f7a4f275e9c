"""Training: the one training step, and the loop that runs it.

`Trainer.run` is the training step: `train`'s loop runs it, and so do the
benchmarks and the tests, so the step measured is the step trained. It runs
up to `log_every_steps` steps in one compiled call, each on one batch per
replica: every replica's gradients, their sum over replicas, one Adam
update, the summaries; the loss is checked for being finite once per call.
Nothing in the call waits for a device between steps: every condition it
branches on (the summaries' cadence, the stop flag) lives on the host.

The library's commands (`train`, `evaluation.evaluate`,
`evaluation.evaluate_ensemble`, `evaluation.Evaluator`) share these
arguments:
  hparams: model hyperparameters (`hparams.default_hparams()`, overridden).
  model_type: a key of `registry.MODELS`.
  input_fn: `input_fn(split, batch_size, input_context=None)`, the data set
    (`input_data.datasets.input_fn`).
  num_targets: objects per image (2 for MultiMNIST).
  config: the run's `RunConfig` (`devices.setup`).
  summary_dir: the experiment's folder (`train/`, `test/` in it).
They raise `errors.ConfigError` for a value that cannot work (an unknown
model, no summary_dir, replicas that do not divide the batch, too small an
eval_size), `errors.DataError` for too little data, and
`checkpoints.CheckpointError` (or `MissingCheckpointError`) for a checkpoint
that is missing, damaged or of another architecture.
"""

import collections
import os
import signal
import time
from typing import Callable, Iterator, Mapping, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

import errors
import files
from input_data import datasets
from models import checkpoints
from models import devices
from models.hparams import HParams
from models import interrupts
from models import model as model_lib
from models import registry
from models import run_config as run_config_lib

# What `Trainer.run` returns: the mean loss and accuracy of the steps run,
# how many ran, the global step (before its update) of the first step whose
# loss was not finite (-1 if none), and whether a stop was asked for
# (`Trainer.stop_requested`, on any worker) before all steps ran.
StepsResult = collections.namedtuple(
    'StepsResult',
    ('loss', 'accuracy', 'steps_run', 'first_non_finite', 'stopped'))

# What `train` returns: the global step reached, and per compiled call
# `(step, steps_run, seconds)`: the global step after it, the steps it ran
# and its wall time.
Trained = collections.namedtuple('Trained', ('step', 'intervals'))


class NonFiniteLossError(errors.UserError, ArithmeticError):
  """The training loss became NaN or infinite."""


class XlaError(errors.UserError, RuntimeError):
  """XLA could not compile the training step on this machine."""

  # What TensorFlow 2.21's XLA GPU compiler says when it finds no CUDA tools
  # (libdevice, ptxas, nvlink) or they fail; any other error is a bug.
  COMPILE_FAILURES = ('libdevice not found', 'Failed to launch ptxas',
                      "Couldn't find a suitable version of",
                      "Couldn't get ptxas", 'ptxas exited with non-zero',
                      'nvlink exited with non-zero')


class Trainer:
  """The training step of a built model under a distribution strategy."""

  def __init__(self, model: model_lib.Model, *,
               strategy: Optional[tf.distribute.Strategy] = None,
               config: run_config_lib.RunConfig = run_config_lib.RunConfig()):
    """Wraps a model built under `strategy`'s scope (None: one device)."""
    self.model = model
    self.strategy = strategy or tf.distribute.get_strategy()
    self.config = config
    self.several_workers = isinstance(
        self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
    # Also here: the replicas of several workers, or of a caller's strategy.
    devices.check_replicas(self.strategy.num_replicas_in_sync,
                           config.train_batch_size)
    # Set by `interrupts.stop_on_signals`, it ends training after the step
    # under way (several workers: after the call). On the host, so that
    # reading it never waits for a GPU.
    with tf.init_scope(), tf.device('/cpu:0'):
      self.stop_requested = tf.Variable(False, trainable=False,
                                        name='stop_requested')
    self._replica_gradients = (
        tf.function(self._gradients, jit_compile=True) if config.xla_step
        else self._gradients)
    self._run = tf.function(self._steps)
    self._agree = tf.function(lambda values: self.strategy.reduce(
        tf.distribute.ReduceOp.SUM, self.strategy.run(lambda: values),
        axis=None))

  @property
  def replica_batch_size(self) -> int:
    return self.config.train_batch_size // self.strategy.num_replicas_in_sync

  def distribute(self, dataset_fn: Callable[[tf.distribute.InputContext],
                                            tf.data.Dataset]) -> Iterator:
    """Batches of each input pipeline's `dataset_fn(context)`, one per
    replica per step (copied ahead to `config.prefetch_to_device`)."""
    device = self.config.prefetch_to_device
    if device and self.strategy.num_replicas_in_sync == 1:
      prefetched = dataset_fn
      dataset_fn = lambda context: prefetched(context).apply(
          tf.data.experimental.prefetch_to_device(device))
    return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

  def repeat(self, tensors: Mapping[str, tf.Tensor]) -> Iterator:
    """An endless iterator over one batch of replica_batch_size examples."""
    dataset = tf.data.Dataset.from_tensors(dict(tensors)).repeat()
    return self.distribute(lambda _: dataset)

  def run(self, iterator: Iterator, num_steps: int, *,
          position: int = 0) -> StepsResult:
    """Runs num_steps training steps; see the module docstring.

    Summaries go to the default writer at the global step before the update
    (the reference's numbering), every `config.summary_every_steps` steps
    counted on the host from `position`, the global step the call starts
    at (they differ only after float16 skipped a step).
    """
    try:
      return self._run(iterator, tf.constant(num_steps),
                       tf.constant(position, tf.int64))
    except tf.errors.OpError as error:
      if not any(marker in str(error) for marker in XlaError.COMPILE_FAILURES):
        raise
      raise XlaError(
          f'XLA could not compile the training step '
          f'({files.first_line(error)}); rerun with --xla=false (routing op '
          f'by op, slower), or point XLA at CUDA: '
          f'XLA_FLAGS=--xla_gpu_cuda_data_dir={devices.cuda_data_dir()}'
      ) from None

  def _gradients(self, tensors):
    """One replica's gradients (not yet summed) and losses."""
    grads, result = self.model.compute_gradients(
        tensors, replicas=self.strategy.num_replicas_in_sync)
    return grads, result._replace(remakes=result.remakes or [])

  # The step and its summaries have no control flow that depends on tensors:
  # traced as plain Python, they skip AutoGraph's rewriting of the model's
  # code (seconds per process; the ops are the same).
  @tf.autograph.experimental.do_not_convert
  def _step(self, tensors):
    """One step on each replica's batch, in cross-replica context.

    The gradients are all-reduced first, then applied once: the optimizer
    (and float16's overflow check) sees the same sum on every replica.
    """
    strategy = self.strategy
    grads, result = strategy.run(self._replica_gradients, args=(tensors,))
    if strategy.num_replicas_in_sync > 1:
      # Summed onto the variables' devices (the tf.Variables under Keras').
      destinations = [var.value for var in self.model.trainable_variables]
      grads = strategy.extended.batch_reduce_to(
          tf.distribute.ReduceOp.SUM, list(zip(grads, destinations)))
    self.model.apply_gradients(grads)

    # The step's scalars in one reduction: one all-reduce across workers.
    means = [result.total_loss, result.classification_loss,
             *result.reconstruction_losses]
    scalars = tf.unstack(strategy.reduce(
        tf.distribute.ReduceOp.SUM, strategy.run(
            lambda *values: tf.stack([tf.cast(value, tf.float32)
                                      for value in values]),
            args=(*means, result.correct, result.almost)), axis=None))
    replicas = strategy.num_replicas_in_sync
    means = [value / replicas for value in scalars[:len(means)]]

    def first(value):  # Of the first replica's batch, for summaries.
      return strategy.experimental_local_results(value)[0]

    return model_lib.Losses(
        total_loss=means[0], classification_loss=means[1],
        reconstruction_losses=means[2:], correct=scalars[-2],
        almost=scalars[-1], logits=first(result.logits),
        remakes=[first(remake) for remake in result.remakes]), first

  @tf.autograph.experimental.do_not_convert
  def _summarize(self, result: model_lib.Losses,
                 tensors: Mapping[str, tf.Tensor], step: tf.Tensor,
                 position: tf.Tensor) -> None:
    # The reference's tags, outside the loop's `while/` name scope. The
    # cadence from the host's count: the global step may live on a GPU.
    with tf.device('/cpu:0'):
      record = position % self.config.summary_every_steps == 0
    with tf.name_scope(''), tf.summary.record_if(record):
      self.model.summarize(result, tensors, step=step,
                           batch_size=self.config.train_batch_size)

  def agree(self, num_steps: int) -> Tuple[bool, int]:
    """Before a call of `run`: whether a stop was asked for, and the steps
    the call runs (the workers' mean of num_steps), alike on every worker.

    Several workers learn both in one all-reduce between calls, not one on
    every step; one worker's compiled loop reads the stop flag (on the host)
    before each step itself, and this returns `(False, num_steps)`.
    """
    if not self.several_workers:
      return False, num_steps
    stop, total = self._agree(tf.constant(
        [int(self.stop_requested.numpy()), num_steps])).numpy()
    return stop > 0, max(1, total // self.strategy.num_replicas_in_sync)

  def _steps(self, iterator, num_steps, position):
    """Up to num_steps steps, without a wait for the device between them.

    A non-finite loss does not stop the loop (testing it would wait for
    every step): the steps after it run on, and the first non-finite step
    is returned for the caller, who saves nothing after it. A stop request
    does, before the next step (several workers: `agree`, between calls).
    """
    loss_sum = correct_sum = tf.constant(0.0)
    first_bad = tf.constant(-1, tf.int64)
    steps_run = tf.constant(0)
    stopped = tf.constant(False)
    for _ in tf.range(num_steps):
      if not self.several_workers and self.stop_requested.read_value():
        stopped = tf.constant(True)
        break
      step = tf.identity(self.model.global_step)
      tensors = next(iterator)
      with self.strategy.scope():
        result, first = self._step(tensors)
      self._summarize(result, tf.nest.map_structure(first, tensors), step,
                      position)
      loss_sum += result.total_loss
      correct_sum += result.correct
      steps_run += 1
      position += 1
      first_bad = tf.where(
          (first_bad < 0) & ~tf.math.is_finite(result.total_loss),
          tf.cast(step, tf.int64), first_bad)
    steps = tf.maximum(tf.cast(steps_run, tf.float32), 1.0)
    return StepsResult(
        loss_sum / steps,
        correct_sum / (steps * self.config.train_batch_size), steps_run,
        first_bad, stopped)


def train(hparams: HParams, *, summary_dir: str, model_type: str,
          max_steps: int, input_fn: datasets.InputFn, num_targets: int = 1,
          strategy: Optional[tf.distribute.Strategy] = None,
          config: run_config_lib.RunConfig = run_config_lib.RunConfig(),
          seed: Optional[int] = None) -> Trained:
  """Trains a model up to global step max_steps; returns `Trained`.

  Resumes from the newest loadable checkpoint in `summary_dir/train/`, saves
  there every `config.save_step` steps and at max_steps (none after a
  non-finite loss). Under multi-worker training only the chief reads and
  writes files; the others start from its step and weights.

  seed: seeds Python, NumPy, TensorFlow and Keras here (a process may train
  several seeds) and reads the input in a fixed order: the same initial
  weights and batches, and a resumed run passes over the batches of the
  steps done. Bitwise-equal runs on GPUs or with random distortions also
  need deterministic ops (`devices.setup(seed=...)`). None: unseeded, the
  input in any order (faster).
  """
  train_dir = checkpoints.train_folder(summary_dir)
  strategy = strategy or tf.distribute.get_strategy()
  if seed is not None:
    keras.utils.set_random_seed(seed)
  # Order-deterministic input for a seeded run only: `records.read_files`
  # interleaves its files in the order this option asks for.
  options = tf.data.Options()
  options.deterministic = seed is not None
  is_chief = strategy.extended.should_checkpoint
  if is_chief:
    tf.io.gfile.makedirs(train_dir)
  replica_batch = config.train_batch_size // strategy.num_replicas_in_sync
  # A pipeline made only for its shapes, before the model, in every run
  # alike: the training pipeline below then draws the same op seeds whether
  # the run starts or resumes.
  shape = model_lib.data_shape(input_fn('train', replica_batch).element_spec,
                               num_targets)
  with strategy.scope():
    model = registry.build_model(hparams, model_type=model_type, shape=shape,
                                 config=config.model)
  trainer = Trainer(model, strategy=strategy, config=config)
  num_params = sum(int(np.prod(var.shape)) for var in model.trainable_variables)
  print(f'total_params: {num_params}', flush=True)
  step = checkpoints.restore_latest(model, train_dir) if is_chief else 0
  if trainer.several_workers:
    step = _broadcast_from_chief(model, strategy)
  # A seeded run resumes in its own data order: the batches of the steps
  # done are read and passed over (unseeded, the order is random anyway).
  done = step if seed is not None else 0

  def dataset_fn(input_context):
    replicas_here = (strategy.num_replicas_in_sync //
                     input_context.num_input_pipelines)
    return input_fn('train', replica_batch, input_context).with_options(
        options).skip(done * replicas_here)

  iterator = trainer.distribute(dataset_fn)
  if step >= max_steps:
    print(f'Nothing to train: the global step {step} has reached max_steps '
          f'{max_steps}', flush=True)
  writer = (tf.summary.create_file_writer(train_dir) if is_chief
            else tf.summary.create_noop_writer())
  intervals = []
  progress = _Progress(max_steps=max_steps, config=config)
  with writer.as_default(), interrupts.stop_on_signals(
      trainer.stop_requested) as stop:
    while step < max_steps:
      # To the next step at which training saves, logs or ends; the first
      # call one step (it traces and compiles), then none much longer than
      # log_every_seconds at the last call's speed.
      num_steps = min([max_steps - step] + [every - step % every for every in (
          config.save_step, config.log_every_steps)])
      if intervals:
        _, steps_run, seconds = intervals[-1]
        num_steps = min(num_steps, max(1, int(
            config.log_every_seconds * steps_run / max(seconds, 1e-6))))
      stopped, num_steps = trainer.agree(num_steps if intervals else 1)
      if not stopped:
        start_time = time.time()
        result = trainer.run(iterator, num_steps, position=step)
        seconds = time.time() - start_time
        # Not step + steps_run: float16 skips the steps that overflow.
        step = int(model.global_step.numpy())
        intervals.append((step, int(result.steps_run), seconds))
        if result.first_non_finite >= 0:
          writer.flush()
          saved = checkpoints.list_steps(train_dir)
          last = os.path.basename(saved[max(saved)]) if saved else (
              'no checkpoint')
          raise NonFiniteLossError(
              f'the loss became {float(result.loss):.4g} at step '
              f'{int(result.first_non_finite)}; nothing was saved after '
              f'{last}. Lower the learning rate '
              f'(--hparams_override=learning_rate=...) and rerun to resume')
      if stopped or result.stopped:
        writer.flush()
        _stop(model, train_dir, is_chief=is_chief, signum=stop.signum,
              config=config)
      if is_chief and (step % config.save_step == 0 or step == max_steps):
        writer.flush()
        checkpoints.save(model, train_dir, keep=config.keep_checkpoints)
      progress.add(step, result, seconds=seconds)
  writer.close()
  return Trained(step, intervals)


def _broadcast_from_chief(model: model_lib.Model,
                          strategy: tf.distribute.Strategy) -> int:
  """Gives every worker the chief's restored state; the global step.

  Workers may be given different folders (each machine a local path), and
  only the chief's may hold a checkpoint: without this, the others would
  train on from their own step and weights. Everything a checkpoint holds
  is summed over the replicas, the first (the chief's) adding its value and
  the others zeros: exact, as x + 0 is x.
  """
  variables = [var.value for var in dict(model.tf1_variable_map(),
                                         **model.slot_map()).values()]

  def chief_or_zeros(var):
    first = tf.distribute.get_replica_context().replica_id_in_sync_group == 0
    return tf.where(first, var, tf.zeros_like(var))

  @tf.function
  def broadcast():
    values = strategy.run(lambda: [chief_or_zeros(var) for var in variables])
    for value, var in zip(values, variables):  # One dtype per collective.
      var.assign(strategy.extended.reduce_to(tf.distribute.ReduceOp.SUM,
                                             value, var))

  with strategy.scope():
    broadcast()
  return int(model.global_step.numpy())


def _stop(model: model_lib.Model, train_dir: str, *, is_chief: bool,
          signum: Optional[int], config: run_config_lib.RunConfig) -> None:
  """The chief saves the step reached; raises Interrupted."""
  step = int(model.global_step.numpy())
  if not is_chief:
    saved = 'the chief worker saves it'
  elif step in checkpoints.list_steps(train_dir):
    saved = f'{checkpoints.list_steps(train_dir)[step]} was saved before'
  else:
    saved = 'saved ' + checkpoints.save(model, train_dir,
                                        keep=config.keep_checkpoints)
  # signum None: another worker was asked to stop; exit as for SIGTERM.
  cause = '' if signum is not None else ' with the other workers'
  raise errors.Interrupted(
      f'interrupted at step {step}{cause}; {saved}; run the same command to '
      f'resume', signum=signal.SIGTERM if signum is None else signum)


class _Progress:
  """Training's progress lines: after the first call (one step, with the
  tracing and compiling), then at each multiple of log_every_steps, at
  max_steps, and whenever log_every_seconds have passed since the last."""

  def __init__(self, *, max_steps: int, config: run_config_lib.RunConfig):
    self.max_steps, self.config = max_steps, config
    self.first = True
    self._reset()

  def _reset(self) -> None:
    self.steps_run, self.seconds, self.loss, self.correct = 0, 0.0, 0.0, 0.0

  def add(self, step: int, result: StepsResult, *, seconds: float) -> None:
    steps_run = int(result.steps_run)
    self.steps_run += steps_run
    self.seconds += seconds
    self.loss += float(result.loss) * steps_run
    self.correct += float(result.accuracy) * steps_run
    if not (self.first or step % self.config.log_every_steps == 0 or
            step == self.max_steps or
            self.seconds >= self.config.log_every_seconds):
      return
    steps = max(self.steps_run, 1)
    line = (f'step {step}: loss {self.loss / steps:.4f}, accuracy '
            f'{self.correct / steps:.4f}')
    if self.first:
      line += (f' (the first step, with tracing and compiling: '
               f'{self.seconds:.1f} s)')
    else:
      per_step = self.seconds / steps
      minutes, seconds = divmod(int((self.max_steps - step) * per_step), 60)
      line += (f', {self.config.train_batch_size / per_step:.1f} examples/s, '
               f'{minutes // 60}:{minutes % 60:02d}:{seconds:02d} left')
    print(line, flush=True)
    self.first = False
    self._reset()
