"""Evaluation: one checkpoint, a training folder, or an ensemble.

`Evaluator.counts` is the evaluation step that `evaluate` runs and the
benchmarks time. Both commands print the reference's line `Total wrong
predictions: N, wrong percent: P%`; their arguments are `models.training`'s
(its module docstring says them once).
"""

import collections
import contextlib
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
import progress

EvalResult = collections.namedtuple(
    'EvalResult', ('checkpoint', 'step', 'correct', 'almost', 'wrong',
                   'wrong_percent'))


class Evaluator:
  """A model built for the test split, and its evaluation step."""

  def __init__(self, hparams: HParams, *, model_type: str,
               input_fn: datasets.InputFn, num_targets: int = 1,
               config: run_config_lib.RunConfig = run_config_lib.RunConfig()):
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
  writes to `summary_dir/train/` until none came for
  `config.eval_timeout_seconds`. Writes the reference's summaries to
  `summary_dir/test/` at the checkpoint's step; an `EvalResult` each.
  """
  train_dir = checkpoints.train_folder(summary_dir)
  evaluator = Evaluator(hparams, model_type=model_type, input_fn=input_fn,
                        num_targets=num_targets, config=config)
  paths = ([checkpoint] if checkpoint else tf.train.checkpoints_iterator(
      train_dir, min_interval_secs=config.eval_poll_seconds,
      timeout=config.eval_timeout_seconds))
  writer = tf.summary.create_file_writer(os.path.join(summary_dir, 'test'))
  results = []
  for path in paths:
    # Training may delete old checkpoints (--keep_checkpoints) meanwhile.
    with contextlib.nullcontext() if checkpoint else checkpoints.reading(path):
      step = checkpoints.load(evaluator.model, path)
    print(f'Evaluating {path} (step {step})', flush=True)
    batches = progress.Progress(
        'Evaluating', total=eval_size // config.eval_batch_size,
        unit='batches').each(evaluator.batches(eval_size))
    counts = [[int(count) for count in evaluator.counts(tensors)]
              for tensors in batches]
    correct, almost = map(int, np.sum(counts, axis=0))
    num_examples = len(counts) * config.eval_batch_size
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


def checkpoint_paths(checkpoint: Optional[str],
                     num_trials: int = 1) -> List[str]:
  """The checkpoints an evaluation reads, checked to exist: `checkpoint`
  (None: none, `evaluate` follows the training folder), or an ensemble's
  `checkpoint.format(i)`, i < num_trials."""
  if num_trials == 1:
    return [] if checkpoint is None else [checkpoints.require(checkpoint)]
  paths = [(checkpoint or '').format(i) for i in range(num_trials)]
  if len(set(paths)) < num_trials:
    raise errors.ConfigError(
        f'checkpoint must be a pattern holding {{}} for the trial index '
        f'0..{num_trials - 1} when num_trials > 1, got {checkpoint!r}')
  missing = [path for path in paths if not tf.io.gfile.exists(path + '.index')]
  if missing:
    raise checkpoints.MissingCheckpointError(
        f'ensemble checkpoints not found: {", ".join(missing)}')
  return paths


def evaluate_ensemble(hparams: HParams, *, model_type: str, eval_size: int,
                      input_fn: datasets.InputFn, checkpoint: str,
                      num_trials: int, num_targets: int = 1,
                      config: run_config_lib.RunConfig = (
                          run_config_lib.RunConfig())) -> int:
  """The wrong predictions of the sum of the members' (`checkpoint_paths`)
  logits: the argmax differs from the first label, as in the reference."""
  paths = checkpoint_paths(checkpoint or '', num_trials)
  evaluator = Evaluator(hparams, model_type=model_type, input_fn=input_fn,
                        num_targets=num_targets, config=config)
  batches = [{key: value.numpy() for key, value in tensors.items()}
             for tensors in evaluator.batches(eval_size)]
  logit_sum = np.zeros([len(batches) * config.eval_batch_size,
                        evaluator.model.shape.num_classes], np.float32)
  members = progress.Progress('Evaluating the ensemble',
                              total=len(paths) * len(batches), unit='batches')
  for path in paths:
    checkpoints.load(evaluator.model, path)
    logit_sum += np.concatenate([evaluator.logits(batch)
                                 for batch in members.each(batches)])
  targets = np.concatenate([batch['recons_label'] for batch in batches])
  wrong = int(np.sum(np.argmax(logit_sum, axis=1) != targets))
  _print_wrong(wrong, wrong / eval_size * 100)
  return wrong
