"""Evaluation: the evaluation step, one checkpoint or a training folder, and
ensembles.

`Evaluator.counts` is the evaluation step that `evaluate` runs and the
benchmarks time: the correct and almost-correct predictions of a batch.
`evaluate` counts the wrong predictions of a checkpoint on the test split
(or of each new checkpoint of a training run); `evaluate_ensemble` sums the
logits of several checkpoints. Both print the reference's line
`Total wrong predictions: N, wrong percent: P%`. Their arguments are
`models.training`'s (its module docstring says them once).
"""

import collections
import os
from typing import Iterable, List, Mapping, Optional

import numpy as np
import tensorflow as tf

import errors
from input_data import datasets
from models import checkpoints
from models.hparams import HParams
from models import model as model_lib
from models import registry
from models import run_config as run_config_lib

EvalResult = collections.namedtuple(
    'EvalResult', ('checkpoint', 'step', 'correct', 'almost', 'wrong',
                   'wrong_percent'))


class Evaluator:
  """A model built for the test split, and its evaluation step."""

  def __init__(self, hparams: HParams, *, model_type: str,
               input_fn: datasets.InputFn, num_targets: int = 1,
               config: run_config_lib.RunConfig = run_config_lib.RunConfig()):
    """Builds the test split's pipeline and a model of its shape."""
    self.config = config
    self.dataset = input_fn('test', config.eval_batch_size)
    self.model = registry.build_model(
        hparams, model_type=model_type, config=config.model,
        shape=model_lib.data_shape(self.dataset.element_spec, num_targets))
    # The evaluation step, `(correct, almost)` predictions of a batch, and
    # a batch's `[batch, num_classes]` logits. No control flow that depends
    # on tensors: no AutoGraph rewriting.
    self.counts = tf.function(
        lambda tensors: self.model.compute_loss(tensors)[1:], autograph=False)
    self.logits = tf.function(
        lambda tensors: self.model.inference(tensors).logits, autograph=False)

  def batches(self, eval_size: int) -> Iterable[Mapping[str, tf.Tensor]]:
    """The first eval_size // batch batches of the test split, all full."""
    batch_size = self.config.eval_batch_size
    num_steps = eval_size // batch_size
    if num_steps < 1:
      raise errors.ConfigError(f'eval_size={eval_size} is less than one '
                               f'batch of {batch_size} examples')
    num_batches = 0
    for tensors in self.dataset.take(num_steps):
      if tensors['labels'].shape[0] != batch_size:
        break
      num_batches += 1
      yield tensors
    if num_batches < num_steps:
      raise errors.DataError(
          f'the test data holds fewer than eval_size={eval_size} examples '
          f'({num_batches} full batches of {batch_size}); lower eval_size')


def _print_wrong(wrong: int, percent: float) -> None:
  print(f'Total wrong predictions: {wrong}, wrong percent: {percent}%',
        flush=True)


def evaluate(hparams: HParams, *, summary_dir: str, model_type: str,
             eval_size: int, input_fn: datasets.InputFn,
             num_targets: int = 1, checkpoint: Optional[str] = None,
             config: run_config_lib.RunConfig = run_config_lib.RunConfig()
            ) -> List[EvalResult]:
  """Counts the wrong predictions of checkpoints on the test split.

  Evaluates `checkpoint`, or when None each new checkpoint that training
  writes to `summary_dir/train/` (`tf.train.checkpoints_iterator`, at most
  one every `config.eval_poll_seconds`) until none came for
  `config.eval_timeout_seconds`, on the eval_size // batch first batches.
  Prints the line with P = 100 N / examples, writes correct_prediction,
  wrong_prediction and almost_wrong_prediction to `summary_dir/test/` at the
  checkpoint's step, and returns an `EvalResult` per checkpoint.
  """
  if not summary_dir:
    raise errors.ConfigError('summary_dir is required for evaluation: pass '
                             '--summary_dir=<experiment directory>')
  evaluator = Evaluator(hparams, model_type=model_type, input_fn=input_fn,
                        num_targets=num_targets, config=config)
  paths = ([checkpoint] if checkpoint else tf.train.checkpoints_iterator(
      checkpoints.train_folder(summary_dir),
      min_interval_secs=config.eval_poll_seconds,
      timeout=config.eval_timeout_seconds))
  writer = tf.summary.create_file_writer(os.path.join(summary_dir, 'test'))
  results = []
  for path in paths:
    if checkpoint:
      step = checkpoints.load(evaluator.model, path)
    else:  # Training may delete old checkpoints (--keep_checkpoints).
      with checkpoints.reading(path):
        step = checkpoints.load(evaluator.model, path)
    print(f'Evaluating {path} (step {step})', flush=True)
    correct = almost = num_batches = 0
    for tensors in evaluator.batches(eval_size):
      batch_correct, batch_almost = evaluator.counts(tensors)
      correct += int(batch_correct)
      almost += int(batch_almost)
      num_batches += 1
    num_examples = num_batches * config.eval_batch_size
    wrong = num_examples - correct
    results.append(EvalResult(path, step, correct, almost, wrong,
                              100 * wrong / num_examples))
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
                      config: run_config_lib.RunConfig = (
                          run_config_lib.RunConfig())) -> int:
  """Counts the wrong predictions of an ensemble on the test split.

  Reads the first eval_size test examples once, runs every member
  `checkpoint.format(i)`, i < num_trials, with one model (reloading its
  weights), keeps the running sum of their logits, and predicts its argmax;
  a prediction is wrong when it differs from the first label
  (`recons_label`). Prints `Total wrong predictions: N, wrong percent: P%`
  with P = N / eval_size * 100, and returns N. checkpoint: a pattern
  holding `{}` for the trial index; every member must exist (checked first).
  """
  paths = [(checkpoint or '').format(i) for i in range(num_trials)]
  if len(set(paths)) < num_trials:
    raise errors.ConfigError(
        f'checkpoint must be a pattern holding {{}} for the trial index '
        f'0..{num_trials - 1} when num_trials > 1, got {checkpoint!r}')
  missing = [path for path in paths if not tf.io.gfile.exists(path + '.index')]
  if missing:
    raise checkpoints.MissingCheckpointError(
        f'ensemble checkpoints not found: {", ".join(missing)}')
  evaluator = Evaluator(hparams, model_type=model_type, input_fn=input_fn,
                        num_targets=num_targets, config=config)
  batches = [{key: value.numpy() for key, value in tensors.items()}
             for tensors in evaluator.batches(eval_size)]
  logit_sum = np.zeros([len(batches) * config.eval_batch_size,
                        evaluator.model.shape.num_classes], np.float32)
  for path in paths:
    checkpoints.load(evaluator.model, path)
    logit_sum += np.concatenate([evaluator.logits(batch)
                                 for batch in batches])
  targets = np.concatenate([batch['recons_label'] for batch in batches])
  wrong = int(np.sum(np.argmax(logit_sum, axis=1) != targets))
  _print_wrong(wrong, wrong / eval_size * 100)
  return wrong
