"""Tests for models/evaluation.py: one checkpoint, a training folder, and
ensembles, on the reference's golden checkpoints and numbers."""

import time

import numpy as np
import pytest

from models import evaluation
from models import hparams as hparams_lib
from models import run_config
import progress
import test_utils


def _progress_lines(out, what):
  """The progress lines of `what` in out, less their seconds."""
  return [line.rsplit(',', 1)[0] for line in out.splitlines()
          if line.startswith(what + ':')]


def test_ensemble_sums_member_logits(tmp_path, capsys, monkeypatch):
  """The reference's ckpt-0 and ckpt-2 as an ensemble of two.

  The expected prediction comes from the reference's own logits of both
  checkpoints on the golden batch (100 copies of its two examples). A
  progress line comes after each batch of each member when every batch is
  late.
  """
  monkeypatch.setattr(progress, 'LINE_SECONDS', 0)
  case = test_utils.CIFAR_CASE
  for trial, step in enumerate((0, 2)):
    test_utils.copy_checkpoint(
        test_utils.require(f'{case}/model.ckpt-{step}'),
        str(tmp_path / f'model.ckpt-{trial}'))
  golden, arrays = test_utils.golden_arrays(case, 200)
  wrong = evaluation.evaluate_ensemble(
      hparams_lib.default_hparams().parse(
          test_utils.load_config(case)['hparams_override']),
      model_type='capsule', eval_size=200,
      input_fn=test_utils.array_input_fn(arrays),
      checkpoint=str(tmp_path / 'model.ckpt-{}'), num_trials=2)
  logit_sum = np.concatenate([golden['logits'] + golden['step2_logits']] * 100)
  expected = int(np.sum(np.argmax(logit_sum, axis=1) != arrays['recons_label']))
  assert wrong == expected
  out = capsys.readouterr().out
  assert (test_utils.wrong_line(expected, expected / 200 * 100)
          in out.splitlines())
  assert _progress_lines(out, 'Evaluating the ensemble') == [
      f'Evaluating the ensemble: {done}/4 batches' for done in range(1, 5)]


def test_ensemble_missing_member_fails_before_reading_data(tmp_path):
  test_utils.copy_checkpoint(test_utils.require(f'{test_utils.CIFAR_CASE}/model.ckpt-0'),
                   str(tmp_path / 'model.ckpt-0'))

  def input_fn(split, batch_size, input_context=None):
    raise AssertionError('read data before checking the checkpoints')

  with pytest.raises(FileNotFoundError, match=r'model\.ckpt-1'):
    evaluation.evaluate_ensemble(
        test_utils.tiny_hparams(), model_type='capsule', eval_size=100,
        input_fn=input_fn, checkpoint=str(tmp_path / 'model.ckpt-{}'),
        num_trials=2)


@pytest.mark.parametrize('case', [test_utils.CIFAR_CASE, 'capsule_tiny'])
def test_evaluate_golden_checkpoints(case, tmp_path, capsys, monkeypatch):
  """Evaluates the reference's ckpt-0 and, once it appears, its ckpt-2.

  Each shows its progress, when every batch is late.
  """
  monkeypatch.setattr(progress, 'LINE_SECONDS', 0)
  checkpoints = [test_utils.require(f'{case}/model.ckpt-{step}')
                 for step in (0, 2)]
  config = test_utils.load_config(case)
  golden, arrays = test_utils.golden_arrays(case, run_config.EVAL_BATCH_SIZE)
  train_dir = tmp_path / 'train'
  train_dir.mkdir()
  test_utils.copy_checkpoint(checkpoints[0], str(train_dir / 'model.ckpt-0'))
  test_utils.set_latest(train_dir, 'model.ckpt-0')
  clock = [0.0]
  sleeps = []

  def fake_sleep(seconds):
    # Training writes ckpt-2 while evaluation waits for the first time.
    if not sleeps:
      test_utils.copy_checkpoint(checkpoints[1], str(train_dir / 'model.ckpt-2'))
      test_utils.set_latest(train_dir, 'model.ckpt-2')
    sleeps.append(seconds)
    clock[0] += seconds

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(time, 'sleep', fake_sleep)
    patch.setattr(time, 'time', lambda: clock[0])
    results = evaluation.evaluate(
        hparams_lib.default_hparams().parse(config['hparams_override']),
        summary_dir=str(tmp_path), model_type='capsule',
        eval_size=run_config.EVAL_BATCH_SIZE,
        input_fn=test_utils.array_input_fn(arrays),
        config=run_config.RunConfig(eval_poll_seconds=7,
                                    eval_timeout_seconds=20))

  # At least 7 s between evaluations, then 20 s without a new one.
  assert sleeps[:2] == [7, 7]
  assert 20 <= sum(sleeps[2:]) <= 21
  assert [result.step for result in results] == [0, 2]
  targets = np.argmax(arrays['labels'], axis=1)
  out = capsys.readouterr().out
  assert _progress_lines(out, 'Evaluating') == ['Evaluating: 1/1 batches'] * 2
  lines = out.splitlines()
  for result, logits in zip(results, ('logits', 'step2_logits')):
    repeated = np.concatenate([golden[logits]] * 50)[:len(targets)]
    wrong = int(np.sum(np.argmax(repeated, axis=1) != targets))
    assert (result.correct, result.wrong) == (len(targets) - wrong, wrong)
    assert test_utils.wrong_line(wrong, float(wrong)) in lines
  summaries = test_utils.events(str(tmp_path / 'test'))
  assert sorted(summaries['almost_wrong_prediction']) == [0, 2]
