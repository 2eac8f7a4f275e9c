"""Tests for paper/reproduce.py and the seeds it trains with.

A tiny capsule model (`num_prime_capsules=2`) trained for 2 steps on
MNIST-layout records of random digits (256 training, 200 test), through
`training.train` / `evaluation.evaluate` as the tool calls them.
"""

import dataclasses
import json
import os
import random
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import errors
from input_data import datasets
from input_data.mnist import idx_test
from input_data.mnist import mnist_input_record
from input_data.mnist import mnist_record_writer as mnist_records
from input_data import records
from models import evaluation
from models import hparams as hparams_lib
from models import run_config
from models import training
from paper import experiments
from paper import reproduce

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TINY = 'num_prime_capsules=2'
_NUM_TEST = 200
_SUBPROCESS_TIMEOUT_S = 120


def _write_digits(path, num, seed):
  rng = np.random.default_rng(seed)
  with tf.io.TFRecordWriter(path) as writer:
    for _ in range(num):
      writer.write(mnist_records.single_example(
          rng.integers(0, 256, (28, 28), np.uint8),
          label=int(rng.integers(10))))


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """The two record files the mnist data set reads, of random digits."""
  directory = str(tmp_path_factory.mktemp('mnist_data'))
  for split, shift, num, seed in (
      ('train', mnist_input_record.TRAIN_SHIFT, 256, 1),
      ('test', mnist_input_record.TEST_SHIFT, _NUM_TEST, 2)):
    _write_digits(os.path.join(
        directory, mnist_records.shifted_mnist_filename(split, shift=shift)),
                  num, seed)
  return directory


def _reproduce(data_dir, output_dir, **kwargs):
  return reproduce.reproduce(
      ['mnist_r1'], data_dir=data_dir, output_dir=output_dir,
      **dict(dict(seeds=2, max_steps=2, hparams_override=_TINY,
                  eval_size=_NUM_TEST), **kwargs))


@pytest.fixture(scope='module')
def two_seeds(data_dir, tmp_path_factory):
  """Two seeds of tiny mnist_r1: (output_dir, returned, results files)."""
  output_dir = str(tmp_path_factory.mktemp('reproduce'))
  run = _reproduce(data_dir, output_dir)
  with open(os.path.join(output_dir, reproduce.RESULTS_JSON)) as file:
    results = json.load(file)
  with open(os.path.join(output_dir, reproduce.RESULTS_MD)) as file:
    table = file.read()
  return output_dir, run, results, table


def _seed_result(output_dir, seed):
  with open(os.path.join(reproduce.seed_dir(output_dir, 'mnist_r1', seed),
                         reproduce.RESULT_FILE)) as file:
    return json.load(file)


def test_two_seeds_write_result_files_with_numpys_mean_and_std(two_seeds):
  output_dir, run, results, table = two_seeds
  errors = [_seed_result(output_dir, seed)['error'] for seed in (0, 1)]
  # 200 test examples: 2 batches of 100, percent = wrong / 2.
  assert [_seed_result(output_dir, seed)['wrong'] / 2 for seed in (0, 1)] == (
      errors)
  summary = results['experiments']['mnist_r1']
  assert summary == json.loads(json.dumps(run['mnist_r1']))
  assert summary['errors'] == errors
  assert summary['mean'] == np.mean(errors)
  assert summary['std'] == np.std(errors)
  assert summary['steps'] == [2]
  assert (summary['paper_steps'], summary['reduced']) == (300000, True)
  assert summary['paper'] == dict(error=0.34, std=0.032, source='Table 1')
  assert summary['hparams_override'] == _TINY
  [row] = [line for line in table.splitlines()
           if line.startswith('| mnist_r1 |')]
  assert row.startswith(f'| mnist_r1 | 0.34 +- 0.032 | '
                        f'{np.mean(errors):.2f} +- {np.std(errors):.3f} | 2 | '
                        f'2 (300,000) *reduced* | capsule (routing=1,'
                        f'remake=false, override {_TINY});')


def _count_calls(monkeypatch):
  """Counts training.train and evaluation.evaluate calls, which still run."""
  calls = []
  for module, name in ((training, 'train'), (evaluation, 'evaluate')):
    original = getattr(module, name)

    def counted(*args, name=name, original=original, **kwargs):
      calls.append((name, kwargs.get('summary_dir')))
      return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
  return calls


def test_rerun_skips_finished_seeds_and_resumes_unfinished(
    two_seeds, data_dir, monkeypatch):
  output_dir = two_seeds[0]
  calls = _count_calls(monkeypatch)
  seed0 = os.path.join(reproduce.seed_dir(output_dir, 'mnist_r1', 0),
                       reproduce.RESULT_FILE)
  mtime = os.stat(seed0).st_mtime_ns
  _reproduce(data_dir, output_dir)
  assert not calls
  # A seed without its result file (killed before the end) runs again; its
  # checkpoint at step 2 leaves train nothing to do.
  seed1_dir = reproduce.seed_dir(output_dir, 'mnist_r1', 1)
  before = _seed_result(output_dir, 1)
  os.remove(os.path.join(seed1_dir, reproduce.RESULT_FILE))
  _reproduce(data_dir, output_dir)
  assert calls == [('train', seed1_dir), ('evaluate', seed1_dir)]
  after = _seed_result(output_dir, 1)
  assert (after['start_step'], after['step']) == (2, 2)
  assert after['error'] == before['error']
  assert os.stat(seed0).st_mtime_ns == mtime


def test_more_steps_continue_every_seed(data_dir, tmp_path, monkeypatch):
  output_dir = str(tmp_path)
  _reproduce(data_dir, output_dir, seeds=1, max_steps=1)
  calls = _count_calls(monkeypatch)
  _reproduce(data_dir, output_dir, seeds=1, max_steps=2)
  assert [name for name, _ in calls] == ['train', 'evaluate']
  result = _seed_result(output_dir, 0)
  assert (result['start_step'], result['step']) == (1, 2)


def test_ensemble_sums_the_seeds_models(two_seeds, data_dir, monkeypatch):
  output_dir = two_seeds[0]
  monkeypatch.setitem(experiments.EXPERIMENTS, 'mnist_r1', dataclasses.replace(
      experiments.EXPERIMENTS['mnist_r1'], ensemble=True))
  calls = _count_calls(monkeypatch)
  summary = _reproduce(data_dir, output_dir)['mnist_r1']
  assert not calls  # The members are the seeds, trained before.
  members = os.path.join(output_dir, 'mnist_r1', 'seed{}', 'train',
                         'model.ckpt-2')
  wrong = evaluation.evaluate_ensemble(
      hparams_lib.default_hparams().parse(f'routing=1,remake=false,{_TINY}'),
      model_type='capsule', eval_size=_NUM_TEST,
      input_fn=reproduce._input_fns(  # pylint: disable=protected-access
          experiments.EXPERIMENTS['mnist_r1'], data_dir=data_dir,
          eval_size=_NUM_TEST)[1],
      checkpoint=members, num_trials=2)
  assert summary['ensemble_error'] == wrong / _NUM_TEST * 100
  with open(os.path.join(output_dir, 'mnist_r1',
                         reproduce.ENSEMBLE_FILE)) as file:
    assert json.load(file)['wrong'] == wrong
  with open(os.path.join(output_dir, reproduce.RESULTS_MD)) as file:
    assert (f'| {wrong / 2:.2f} (members {summary["mean"]:.2f} +- '
            f'{summary["std"]:.2f}) | 2 |') in file.read()


def _trained_weights(data_dir, summary_dir, seed):
  input_fn = reproduce._input_fns(  # pylint: disable=protected-access
      experiments.EXPERIMENTS['mnist_r1'], data_dir=data_dir,
      eval_size=_NUM_TEST)[0]
  training.train(hparams_lib.default_hparams().parse(_TINY),
                 summary_dir=summary_dir, model_type='capsule', max_steps=2,
                 input_fn=input_fn, config=run_config.RunConfig(save_step=2),
                 seed=seed)
  reader = tf.train.load_checkpoint(os.path.join(summary_dir, 'train'))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def test_same_seed_gives_identical_weights(data_dir, tmp_path):
  first = _trained_weights(data_dir, str(tmp_path / 'a'), seed=1)
  again = _trained_weights(data_dir, str(tmp_path / 'b'), seed=1)
  other = _trained_weights(data_dir, str(tmp_path / 'c'), seed=2)
  assert first['global_step'] == 2
  assert sorted(first) == sorted(again)
  for name in first:
    np.testing.assert_array_equal(first[name], again[name], err_msg=name)
  assert not np.array_equal(first['conv1/weights'], other['conv1/weights'])


def test_seeded_interleave_keeps_its_order(tmp_path):
  """train's deterministic option orders read_files' parallel interleave.

  The files' records arrive after random delays; without the option (as in
  unseeded training) the interleaved order changes from run to run.
  """
  paths = []
  for i in range(4):
    paths.append(str(tmp_path / f'{i}.tfrecords'))
    with tf.io.TFRecordWriter(paths[-1]) as writer:
      for j in range(50):
        writer.write(f'{i}-{j}'.encode())

  def slow(record):
    time.sleep(random.random() * 0.002)
    return record

  def reader(path):
    return tf.data.TFRecordDataset(path).map(
        lambda record: tf.py_function(slow, [record], tf.string))

  def order():
    keras.utils.set_random_seed(3)
    options = tf.data.Options()
    options.deterministic = True
    dataset = records.read_files(paths, train=True,
                                 reader=reader).with_options(options)
    return list(dataset.take(200).as_numpy_iterator())

  assert order() == order()


def test_missing_data_set_fails_before_any_training(
    data_dir, tmp_path, monkeypatch):
  monkeypatch.setitem(experiments.EXPERIMENTS, 'svhn', dataclasses.replace(
      experiments.EXPERIMENTS['svhn'], dataset='svhn_extra'))
  calls = _count_calls(monkeypatch)
  with pytest.raises(ValueError, match="unknown dataset 'svhn_extra'"):
    reproduce.reproduce(['mnist_r1', 'svhn'], data_dir=data_dir,
                        output_dir=str(tmp_path))
  assert not calls


def _start_tool(*args):
  return subprocess.Popen(
      [sys.executable, '-m', 'paper.reproduce', *args], stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, cwd=_ROOT)


def test_command_line_lists_and_fails_in_one_line(tmp_path):
  # Both commands at once: each process spends seconds starting TensorFlow.
  processes = [_start_tool('--list'),
               _start_tool('--experiment=mnist_r3,mnist_r9',
                           f'--output_dir={tmp_path}')]
  (listing, listing_err), (_, failed_err) = [
      process.communicate(timeout=_SUBPROCESS_TIMEOUT_S)
      for process in processes]
  assert processes[0].returncode == 0, listing_err
  lines = listing.splitlines()
  assert [line.split()[0] for line in lines] == list(experiments.EXPERIMENTS)
  assert 'paper 0.25 +- 0.005%' in lines[4]
  assert processes[1].returncode != 0
  assert failed_err.splitlines() == [
      "reproduce: error: unknown experiment 'mnist_r9'; use one of "
      + ', '.join(experiments.EXPERIMENTS)]
  assert not os.listdir(tmp_path)


@pytest.fixture(scope='module')
def idx_dir(tmp_path_factory):
  """MNIST idx files of random digits (300 training, 200 test), nothing else."""
  directory = str(tmp_path_factory.mktemp('idx'))
  rng = np.random.default_rng(4)
  for prefix, num in (('train', 300), ('t10k', _NUM_TEST)):
    idx_test.write_mnist_idx(
        directory, rng.integers(0, 256, (num, 28, 28), np.uint8),
        rng.integers(0, 10, num).astype(np.uint8), prefix=prefix)
  return directory


def test_missing_affnist_files_stop_before_any_training(
    idx_dir, tmp_path, monkeypatch):
  calls = _count_calls(monkeypatch)
  with pytest.raises(FileNotFoundError,
                     match=f'(?s){idx_dir}/test.mat .*does not exist.*wget '
                     r'.*affNIST.*test\.mat\.zip'):
    reproduce.reproduce(['affnist_capsule'], data_dir=idx_dir,
                        output_dir=str(tmp_path), max_steps=1,
                        hparams_override=_TINY)
  assert not calls
  assert not os.listdir(tmp_path)
  # Expanded MNIST is made on the fly: nothing is written beside the digits.
  assert len(os.listdir(idx_dir)) == 4


def test_affnist_models_are_also_tested_on_expanded_mnist(
    idx_dir, tmp_path, monkeypatch):
  """The other test set's error is recorded per seed and tabulated."""
  # affine_mnist stands in for the affNIST files, which are not here.
  monkeypatch.setitem(
      experiments.EXPERIMENTS, 'affnist_capsule', dataclasses.replace(
          experiments.EXPERIMENTS['affnist_capsule'],
          test_dataset='affine_mnist'))
  output_dir = str(tmp_path)
  summary = reproduce.reproduce(
      ['affnist_capsule'], data_dir=idx_dir, output_dir=output_dir,
      max_steps=1, hparams_override=_TINY, eval_size=_NUM_TEST)[
          'affnist_capsule']
  [other] = summary['other_tests']
  assert other['dataset'] == 'expanded_mnist'
  assert other['eval_size'] == _NUM_TEST
  assert other['paper'] == dict(error=0.77, std=None,
                                source='section 5.2 (99.23% accuracy)')
  # The same checkpoint, evaluated on expanded MNIST's test digits.
  [expected] = evaluation.evaluate(
      hparams_lib.default_hparams().parse(_TINY), summary_dir=str(
          tmp_path / 'check'), model_type='capsule', eval_size=_NUM_TEST,
      input_fn=datasets.input_fn('expanded_mnist', data_dir=idx_dir,
                                 eval_size=_NUM_TEST),
      checkpoint=summary['seeds'][0]['checkpoint'])
  assert other['errors'] == [expected.wrong_percent]
  with open(os.path.join(output_dir, reproduce.RESULTS_MD)) as file:
    table = file.read()
  assert (f'| affnist_capsule, expanded_mnist test | 0.77 | '
          f'{expected.wrong_percent:.2f} | 1 | 1 (300,000) *reduced* | '
          f'the same models, 200 expanded_mnist test examples') in table


def test_interrupted_seed_resumes_and_finished_seeds_are_skipped(
    data_dir, tmp_path, monkeypatch):
  """Ctrl-C during seed 1: seed 0 is kept, seed 1 resumes where it was."""
  output_dir = str(tmp_path)
  real_train = training.train

  def interrupted_train(*args, summary_dir, max_steps, **kwargs):
    if summary_dir.endswith('seed1'):  # Stops after a step, saving it.
      real_train(*args, summary_dir=summary_dir, max_steps=1, **kwargs)
      raise errors.Interrupted('interrupted at step 1', signum=2)
    return real_train(*args, summary_dir=summary_dir, max_steps=max_steps,
                      **kwargs)

  with monkeypatch.context() as patch:
    patch.setattr(training, 'train', interrupted_train)
    with pytest.raises(errors.Interrupted):
      _reproduce(data_dir, output_dir)
  assert os.path.exists(os.path.join(
      reproduce.seed_dir(output_dir, 'mnist_r1', 0), reproduce.RESULT_FILE))
  calls = _count_calls(monkeypatch)
  _reproduce(data_dir, output_dir)
  seed1 = reproduce.seed_dir(output_dir, 'mnist_r1', 1)
  assert calls == [('train', seed1), ('evaluate', seed1)]
  result = _seed_result(output_dir, 1)
  assert (result['start_step'], result['step']) == (1, 2)
