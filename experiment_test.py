"""Tests for experiment.py.

Training, resuming, evaluation, ensembles, multi-replica and multi-worker
training, and the command line's errors. Tiny models (`num_prime_capsules=2`)
on tiny data: MNIST-layout records of random 28x28 digits for the command
line, arrays for the Python API, and the capsule_cifar_tiny golden (12x12x3)
whose TF1 checkpoints and numbers come from the reference.
"""

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

import cli
import experiment
import golden_utils
from input_data import datasets
from input_data import records
from models import capsule_model
from models import checkpoints
from models import model as model_lib

_HERE = os.path.dirname(os.path.abspath(__file__))
_TINY = 'num_prime_capsules=2'
_CIFAR_CASE = 'capsule_cifar_tiny'
_MNIST_SIZE = 28
_NUM_TRAIN = 256
_NUM_TEST = 200
_SUBPROCESS_TIMEOUT_S = 240
_ERROR_PREFIX = 'experiment.py: error: '
# A progress line, less its timing.
_PROGRESS = re.compile(r'step (\d+): loss ([\d.]+), accuracy ([\d.]+),')


def _random_digits(num, seed):
  rng = np.random.RandomState(seed)
  images = rng.randint(0, 256, (num, _MNIST_SIZE, _MNIST_SIZE), np.uint8)
  return images, rng.randint(0, 10, num)


def _write_mnist_records(path, images, labels):
  """The record layout mnist_shift writes: one digit per tf.train.Example."""
  def int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

  with tf.io.TFRecordWriter(path) as writer:
    for image, label in zip(images, labels):
      features = dict(
          height=int64(image.shape[0]), width=int64(image.shape[1]),
          depth=int64(1), label=int64(int(label)),
          image_raw=tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[image.tobytes()])))
      writer.write(tf.train.Example(
          features=tf.train.Features(feature=features)).SerializeToString())


@pytest.fixture(scope='module')
def mnist_dir(tmp_path_factory):
  """Train and test records of random digits; returns (dir, test arrays)."""
  data_dir = str(tmp_path_factory.mktemp('mnist_data'))
  _write_mnist_records(os.path.join(data_dir, 'train_2shifted_mnist.tfrecords'),
                       *_random_digits(_NUM_TRAIN, seed=1))
  test_images, test_labels = _random_digits(_NUM_TEST, seed=2)
  _write_mnist_records(os.path.join(data_dir, 'test_0shifted_mnist.tfrecords'),
                       test_images, test_labels)
  return data_dir, test_images, test_labels


def _run_experiment(*args):
  """`python experiment.py args` in this process; returns what it printed.

  The command line's flags, `main` and its one-line errors, without the cost
  of a new process. The tests that run real processes (multi-worker, kill -9,
  start-up notices) use `_experiment_process`.

  Raises:
    SystemExit: with the one-line error as code, as the command would exit.
  """
  if 'train' not in flags.FLAGS:
    experiment._define_flags()  # pylint: disable=protected-access
  flags.FLAGS.unparse_flags()
  stdout = io.StringIO()
  with contextlib.redirect_stdout(stdout):
    argv = cli.parse_flags(['experiment.py', *args], program='experiment.py')
    cli.call_main(experiment.main, argv, program='experiment.py')
  return stdout.getvalue()


def _experiment_process(*args, **kwargs):
  return subprocess.Popen(
      [sys.executable, os.path.join(_HERE, 'experiment.py'), *args],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_HERE,
      **kwargs)


def _checked(result):
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.fixture(scope='module')
def trained(mnist_dir, tmp_path_factory):
  """Trains 3 steps, then resumes to step 5 saving every 2 steps (CLI)."""
  data_dir = mnist_dir[0]
  summary_dir = str(tmp_path_factory.mktemp('run'))
  train_dir = os.path.join(summary_dir, 'train')
  os.makedirs(train_dir)
  # The reference wiped train/ when it held no checkpoint.
  with open(os.path.join(train_dir, 'notes.txt'), 'w') as notes:
    notes.write('keep me')
  common = [f'--data_dir={data_dir}', f'--summary_dir={summary_dir}',
            f'--hparams_override={_TINY}', f'--eval_size={_NUM_TEST}']
  first = _run_experiment(*common, '--max_steps=3')
  with open(os.path.join(train_dir, 'model.ckpt-3.index'), 'rb') as index:
    first_index = index.read()
  second = _run_experiment(*common, '--max_steps=5', '--save_step=2')
  return dict(summary_dir=summary_dir, train_dir=train_dir, first=first,
              second=second, first_index=first_index)


def _tiny_hparams(override=_TINY):
  return experiment.default_hparams().parse(override)


def _array_input_fn(arrays):
  """`input_fn` over in-memory examples: train repeats, test reads once."""
  def input_fn(split, batch_size, input_context=None):
    del input_context  # One input pipeline in these tests.
    dataset = tf.data.Dataset.from_tensor_slices(arrays)
    if split == 'train':
      return dataset.repeat().batch(batch_size, drop_remainder=True)
    return dataset.batch(batch_size)
  return input_fn


def _golden_arrays(case, num_examples):
  """The golden input batch repeated to num_examples examples."""
  golden = golden_utils.load_npz(os.path.join(case, 'golden.npz'))
  batch = {key[len('input/'):]: value for key, value in golden.items()
           if key.startswith('input/')}
  copies = -(-num_examples // len(batch['labels']))
  arrays = {key: np.concatenate([value] * copies)[:num_examples]
            for key, value in batch.items()}
  return golden, arrays


def _copy_checkpoint(source, target):
  for suffix in ('.index', '.data-00000-of-00001'):
    shutil.copy(source + suffix, target + suffix)


def _set_latest(train_dir, name):
  with open(os.path.join(train_dir, 'checkpoint'), 'w') as state:
    state.write(f'model_checkpoint_path: "{name}"\n')


def _events(log_dir):
  """{tag: {step: value}} of the summaries in a directory's event files."""
  values = {}
  for name in sorted(tf.io.gfile.listdir(log_dir)):
    if not name.startswith('events.out.tfevents'):
      continue
    for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        values.setdefault(value.tag, {})[event.step] = tf.make_ndarray(
            value.tensor)
  return values


def _wrong_line(wrong, percent):
  return f'Total wrong predictions: {wrong}, wrong percent: {percent}%'


def _mnist_logits(checkpoint, images):
  """Logits of a tiny capsule model on uint8 digits, computed directly."""
  model = capsule_model.CapsuleModel(_tiny_hparams())
  model.build(_MNIST_SIZE, 1)
  checkpoints.load(model, checkpoint)
  pixels = images[:, None].astype(np.float32) / 255.0
  labels = np.zeros(len(images), np.int32)
  tensors = dict(images=pixels, labels=tf.one_hot(labels, 10),
                 recons_image=pixels, recons_label=labels)
  return model.inference(model_lib.features(
      tensors, model_lib.DataShape(_MNIST_SIZE, 1, 10, 1))).logits.numpy()


def test_train_writes_reference_checkpoint(trained):
  names = tf.train.load_checkpoint(
      os.path.join(trained['train_dir'], 'model.ckpt-3')
  ).get_variable_to_shape_map()
  for scope in ('conv1', 'conv_capsule1', 'capsule2', 'recons/recons_1',
                'recons/recons_2', 'recons/recons_3'):
    for suffix in ('weights', 'biases', 'weights/Adam', 'biases/Adam_1'):
      assert f'{scope}/{suffix}' in names
  assert {'global_step', 'beta1_power', 'beta2_power'} <= set(names)
  assert names['conv1/weights'] == [9, 9, 1, 256]
  # max_steps < save_step: the last step is saved all the same.
  assert re.search(r'^total_params: \d+$', trained['first'], re.M)
  assert _PROGRESS.search(trained['first']).group(1) == '3'
  assert 'reconstruction_error' in _events(trained['train_dir'])


def test_training_ends_with_the_test_error_of_its_last_checkpoint(
    trained, mnist_dir):
  _, images, labels = mnist_dir
  for run, step in (('first', 3), ('second', 5)):
    checkpoint = os.path.join(trained['train_dir'], f'model.ckpt-{step}')
    logits = _mnist_logits(checkpoint, images)
    wrong = int(np.sum(np.argmax(logits, axis=1) != labels))
    last_line = trained[run].splitlines()[-1]
    assert last_line == _wrong_line(wrong, wrong / (_NUM_TEST // 100)), run
  summaries = _events(os.path.join(trained['summary_dir'], 'test'))
  assert sorted(summaries['wrong_prediction']) == [3, 5]


def test_rerun_resumes_and_keeps_everything(trained):
  train_dir = trained['train_dir']
  assert 'model.ckpt-3 at step 3' in trained['second']
  reader = tf.train.load_checkpoint(os.path.join(train_dir, 'model.ckpt-5'))
  assert reader.get_tensor('global_step') == 5
  assert tf.train.latest_checkpoint(train_dir).endswith('model.ckpt-5')
  state = tf.train.get_checkpoint_state(train_dir)
  assert [os.path.basename(path) for path in state.all_model_checkpoint_paths
         ] == ['model.ckpt-3', 'model.ckpt-4', 'model.ckpt-5']
  with open(os.path.join(train_dir, 'notes.txt')) as notes:
    assert notes.read() == 'keep me'
  with open(os.path.join(train_dir, 'model.ckpt-3.index'), 'rb') as index:
    assert index.read() == trained['first_index']
  # One summary per global step across both runs, numbered from 0.
  assert sorted(_events(train_dir)['total_loss']) == [0, 1, 2, 3, 4]


def test_evaluate_checkpoint_prints_wrong_count(trained, mnist_dir):
  data_dir, images, labels = mnist_dir
  checkpoint = os.path.join(trained['train_dir'], 'model.ckpt-5')
  stdout = _run_experiment(
      f'--data_dir={data_dir}', f'--summary_dir={trained["summary_dir"]}',
      f'--hparams_override={_TINY}', '--train=false',
      f'--checkpoint={checkpoint}', f'--eval_size={_NUM_TEST}')
  logits = _mnist_logits(checkpoint, images)
  wrong = int(np.sum(np.argmax(logits, axis=1) != labels))
  assert _wrong_line(wrong, wrong / (_NUM_TEST // 100)) in stdout.splitlines()
  summaries = _events(os.path.join(trained['summary_dir'], 'test'))
  assert summaries['wrong_prediction'][5] == wrong
  assert summaries['correct_prediction'][5] == _NUM_TEST - wrong


def _wrong_count(stdout):
  match = re.search(r'^Total wrong predictions: (\d+),', stdout, re.M)
  return int(match.group(1))


@pytest.mark.parametrize('dtype', ['bfloat16', 'float16'])
def test_mixed_precision_keeps_float32_checkpoints_and_counts(
    dtype, trained, mnist_dir, tmp_path):
  """Mixed precision trains on float32 weights, predicts nearly as float32.

  The same float32 checkpoint evaluated both ways: bfloat16 keeps about 3
  significant digits (float16 more), so only test digits whose two longest
  capsules are that close may change their prediction; allowed: 2% of the
  200.
  """
  data_dir, images, labels = mnist_dir
  common = [f'--data_dir={data_dir}', f'--summary_dir={tmp_path}',
            f'--hparams_override={_TINY}', f'--compute_dtype={dtype}',
            f'--eval_size={_NUM_TEST}']
  _run_experiment(*common, '--max_steps=2', '--evaluate_after_training=false')
  reader = tf.train.load_checkpoint(
      os.path.join(tmp_path, 'train', 'model.ckpt-2'))
  dtypes = reader.get_variable_to_dtype_map()
  assert dtypes['conv_capsule1/weights'] == tf.float32
  assert dtypes['conv_capsule1/weights/Adam'] == tf.float32
  checkpoint = os.path.join(trained['train_dir'], 'model.ckpt-5')
  mixed_wrong = _wrong_count(_run_experiment(
      *common, '--train=false', f'--checkpoint={checkpoint}'))
  logits = _mnist_logits(checkpoint, images)
  float32_wrong = int(np.sum(np.argmax(logits, axis=1) != labels))
  assert abs(mixed_wrong - float32_wrong) <= 0.02 * _NUM_TEST


def test_ensemble_sums_member_logits(trained, mnist_dir, tmp_path, capsys):
  data_dir, images, labels = mnist_dir
  members = []
  for trial, step in enumerate((3, 5)):
    source = os.path.join(trained['train_dir'], f'model.ckpt-{step}')
    _copy_checkpoint(source, str(tmp_path / f'model.ckpt-{trial}'))
    members.append(source)
  input_fn = datasets.input_fn('mnist', data_dir=data_dir)
  wrong = experiment.evaluate_ensemble(
      _tiny_hparams(), model_type='capsule', eval_size=_NUM_TEST,
      input_fn=input_fn, checkpoint=str(tmp_path / 'model.ckpt-{}'),
      num_trials=2)
  logit_sum = sum(_mnist_logits(member, images) for member in members)
  expected = int(np.sum(np.argmax(logit_sum, axis=1) != labels))
  assert wrong == expected
  assert (_wrong_line(expected, expected / _NUM_TEST * 100)
          in capsys.readouterr().out.splitlines())


def test_ensemble_missing_member_fails_before_reading_data(tmp_path):
  _copy_checkpoint(golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-0'),
                   str(tmp_path / 'model.ckpt-0'))

  def input_fn(split, batch_size, input_context=None):
    raise AssertionError('read data before checking the checkpoints')

  with pytest.raises(FileNotFoundError, match=r'model\.ckpt-1'):
    experiment.evaluate_ensemble(
        _tiny_hparams(), model_type='capsule', eval_size=100,
        input_fn=input_fn, checkpoint=str(tmp_path / 'model.ckpt-{}'),
        num_trials=2)


@pytest.mark.parametrize('case', [_CIFAR_CASE, 'capsule_tiny'])
def test_evaluate_golden_checkpoints(case, tmp_path, capsys):
  """Evaluates the reference's ckpt-0 and, once it appears, its ckpt-2."""
  checkpoints = [golden_utils.require(f'{case}/model.ckpt-{step}')
                 for step in (0, 2)]
  config = golden_utils.load_config(case)
  golden, arrays = _golden_arrays(case, experiment.EVAL_BATCH_SIZE)
  train_dir = tmp_path / 'train'
  train_dir.mkdir()
  _copy_checkpoint(checkpoints[0], str(train_dir / 'model.ckpt-0'))
  _set_latest(train_dir, 'model.ckpt-0')
  clock = [0.0]
  sleeps = []

  def fake_sleep(seconds):
    # Training writes ckpt-2 while evaluation waits for the first time.
    if not sleeps:
      _copy_checkpoint(checkpoints[1], str(train_dir / 'model.ckpt-2'))
      _set_latest(train_dir, 'model.ckpt-2')
    sleeps.append(seconds)
    clock[0] += seconds

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(time, 'sleep', fake_sleep)
    patch.setattr(time, 'time', lambda: clock[0])
    results = experiment.evaluate(
        experiment.default_hparams().parse(config['hparams_override']),
        summary_dir=str(tmp_path), model_type='capsule',
        eval_size=experiment.EVAL_BATCH_SIZE,
        input_fn=_array_input_fn(arrays), poll_seconds=7, timeout_seconds=20)

  # At least poll_seconds between evaluations, then 20 s without a new one.
  assert sleeps[:2] == [7, 7]
  assert 20 <= sum(sleeps[2:]) <= 21
  assert [result.step for result in results] == [0, 2]
  targets = np.argmax(arrays['labels'], axis=1)
  lines = capsys.readouterr().out.splitlines()
  for result, logits in zip(results, ('logits', 'step2_logits')):
    repeated = np.concatenate([golden[logits]] * 50)[:len(targets)]
    wrong = int(np.sum(np.argmax(repeated, axis=1) != targets))
    assert (result.correct, result.wrong) == (len(targets) - wrong, wrong)
    assert _wrong_line(wrong, float(wrong)) in lines
  summaries = _events(str(tmp_path / 'test'))
  assert sorted(summaries['almost_wrong_prediction']) == [0, 2]


def _train_golden_two_steps(summary_dir, strategy):
  """Two steps from the cifar golden's ckpt-0 on copies of its batch."""
  config = golden_utils.load_config(_CIFAR_CASE)
  _, arrays = _golden_arrays(_CIFAR_CASE, experiment.TRAIN_BATCH_SIZE)
  train_dir = os.path.join(summary_dir, 'train')
  os.makedirs(train_dir)
  _copy_checkpoint(golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-0'),
                   os.path.join(train_dir, 'model.ckpt-0'))
  _set_latest(train_dir, 'model.ckpt-0')
  step = experiment.train(
      experiment.default_hparams().parse(config['hparams_override']),
      summary_dir=summary_dir, model_type='capsule', max_steps=2,
      save_step=1500, input_fn=_array_input_fn(arrays), strategy=strategy)
  assert step == 2
  return (_events(train_dir)['total_loss'],
          tf.train.load_checkpoint(os.path.join(train_dir, 'model.ckpt-2')))


def test_mirrored_training_matches_one_device_and_reference(tmp_path):
  """Two replicas, one device and the reference take the same two steps.

  The batch is 64 copies of the golden's two examples, so its mean loss and
  gradients are those of the reference's two-example batch.
  """
  golden = golden_utils.load_npz(f'{_CIFAR_CASE}/golden.npz')
  reference = tf.train.load_checkpoint(
      golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-2'))
  one_losses, one = _train_golden_two_steps(str(tmp_path / 'one'), None)
  mirrored = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
  two_losses, two = _train_golden_two_steps(str(tmp_path / 'two'), mirrored)

  golden_utils.assert_forward_close(one_losses[0], golden['total_loss'])
  for step in (0, 1):
    golden_utils.assert_forward_close(two_losses[step], one_losses[step])
  for name in reference.get_variable_to_shape_map():
    if name != 'global_step':
      golden_utils.assert_weights_close(one.get_tensor(name),
                                        reference.get_tensor(name), name)
      golden_utils.assert_weights_close(two.get_tensor(name),
                                        one.get_tensor(name), name)


def test_verbose_two_target_summaries(tmp_path):
  rng = np.random.RandomState(3)
  size = 18
  first, second = rng.rand(2, 16, 1, size, size).astype(np.float32)
  first_label, second_label = rng.randint(0, 10, (2, 16)).astype(np.int32)
  arrays = dict(
      images=np.minimum(first + second, 1.0),
      labels=np.eye(10, dtype=np.float32)[first_label] +
      np.eye(10, dtype=np.float32)[second_label],
      recons_image=first, recons_label=first_label, spare_image=second,
      spare_label=second_label)
  experiment.train(_tiny_hparams(_TINY + ',verbose=true'),
                   summary_dir=str(tmp_path), model_type='capsule',
                   max_steps=1, save_step=1,
                   input_fn=_array_input_fn(arrays), num_targets=2)
  summaries = _events(str(tmp_path / 'train'))
  for tag in ('batch_classification_cost', 'total_loss', 'accuracy',
              'correct_prediction_batch', 'almost_correct_batch',
              'reconstruction_error', 'reconstruction_error_1',
              'conv1/weights', 'capsule2/biases', 'logits'):
    assert list(summaries[tag]) == [0], tag
  # Image summaries hold width, height and the encoded images: one input,
  # target and remake column per target.
  width, height = summaries['reconstruction'][0][:2]
  assert (int(width), int(height)) == (2 * size, 3 * size)


def _golden_training_dir(tmp_path, steps, latest):
  """train/ holding the cifar golden's checkpoints of `steps`."""
  train_dir = tmp_path / 'train'
  train_dir.mkdir()
  for step in steps:
    _copy_checkpoint(golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-{step}'),
                     str(train_dir / f'model.ckpt-{step}'))
  _set_latest(train_dir, latest)
  return train_dir


def _train_golden(tmp_path, max_steps, save_step=2, override=''):
  config = golden_utils.load_config(_CIFAR_CASE)
  _, arrays = _golden_arrays(_CIFAR_CASE, experiment.TRAIN_BATCH_SIZE)
  return experiment.train(
      experiment.default_hparams().parse(
          ','.join(filter(None, [config['hparams_override'], override]))),
      summary_dir=str(tmp_path), model_type='capsule', max_steps=max_steps,
      save_step=save_step, input_fn=_array_input_fn(arrays))


def _file_bytes(directory):
  """The bytes of every file in directory but the summaries."""
  return {name: (directory / name).read_bytes()
          for name in os.listdir(directory) if not name.startswith('events')}


def test_resumes_from_complete_checkpoint_the_state_file_missed(
    tmp_path, capsys):
  """Crash case 1: killed after writing ckpt-2 but before the state file."""
  train_dir = _golden_training_dir(tmp_path, (0, 2), latest='model.ckpt-0')
  before = _file_bytes(train_dir)
  assert _train_golden(tmp_path, max_steps=3) == 3
  out = capsys.readouterr().out
  assert f'Resumed from {train_dir / "model.ckpt-2"} at step 2' in out
  state = tf.train.get_checkpoint_state(str(train_dir))
  assert [os.path.basename(path) for path in state.all_model_checkpoint_paths
         ] == ['model.ckpt-0', 'model.ckpt-2', 'model.ckpt-3']
  after = _file_bytes(train_dir)
  for name, content in before.items():
    if name != 'checkpoint':
      assert after[name] == content, name


def _damage(prefix):
  """Truncates a checkpoint's data file to half its size."""
  data = prefix + '.data-00000-of-00001'
  with open(data, 'r+b') as data_file:
    data_file.truncate(os.path.getsize(data) // 2)


def test_damaged_newest_checkpoint_is_kept_and_passed_over(tmp_path, capsys):
  """Crash case 2: resume from the newest checkpoint that loads."""
  train_dir = _golden_training_dir(tmp_path, (0, 2), latest='model.ckpt-2')
  _damage(str(train_dir / 'model.ckpt-2'))
  damaged = _file_bytes(train_dir)
  assert _train_golden(tmp_path, max_steps=2) == 2
  out = capsys.readouterr().out
  assert re.search(r'model\.ckpt-2 is damaged.*left in place', out)
  assert 'model.ckpt-0 at step 0' in out
  # The damaged files are kept, renamed, byte for byte.
  for suffix in ('.index', '.data-00000-of-00001'):
    name = 'model.ckpt-2' + suffix
    assert (train_dir / (name + checkpoints.BROKEN_SUFFIX)).read_bytes() == (
        damaged[name])
  # The retrained step 2 is the reference's.
  ours = tf.train.load_checkpoint(str(train_dir / 'model.ckpt-2'))
  reference = tf.train.load_checkpoint(
      golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-2'))
  for name in ('conv1/weights', 'capsule2/weights'):
    golden_utils.assert_weights_close(ours.get_tensor(name),
                                      reference.get_tensor(name), name)


def test_no_loadable_checkpoint_stops_in_one_error(tmp_path):
  train_dir = _golden_training_dir(tmp_path, (0, 2), latest='model.ckpt-2')
  for step in (0, 2):
    _damage(str(train_dir / f'model.ckpt-{step}'))
  before = _file_bytes(train_dir)
  with pytest.raises(checkpoints.CorruptCheckpointError,
                     match=r'model\.ckpt-2, model\.ckpt-0 are damaged'):
    _train_golden(tmp_path, max_steps=4)
  assert _file_bytes(train_dir) == before


def test_seeded_run_resumes_in_its_data_order(mnist_dir, tmp_path):
  """Stopped at step 2 and resumed, a seeded run ends where one run ends.

  The records are shuffled in an order fixed by the seed; without passing
  over the batches of the steps done, the resumed run would train steps 3
  and 4 on the batches of steps 1 and 2 again.
  """
  input_fn = datasets.input_fn('mnist', data_dir=mnist_dir[0])

  def train(summary_dir, max_steps):
    experiment.train(_tiny_hparams(), summary_dir=str(summary_dir),
                     model_type='capsule', max_steps=max_steps, save_step=2,
                     input_fn=input_fn, seed=3)
    return tf.train.load_checkpoint(
        str(summary_dir / 'train' / f'model.ckpt-{max_steps}'))

  straight = train(tmp_path / 'straight', 4)
  train(tmp_path / 'resumed', 2)
  resumed = train(tmp_path / 'resumed', 4)
  for name in ('conv1/weights', 'capsule2/weights', 'recons/recons_3/biases'):
    np.testing.assert_allclose(resumed.get_tensor(name),
                               straight.get_tensor(name), rtol=1e-5,
                               atol=1e-6, err_msg=name)


def test_non_finite_loss_stops_without_saving_it(tmp_path):
  """Crash case 4: a huge learning rate; no checkpoint holds NaN or inf."""
  train_dir = _golden_training_dir(tmp_path, (0,), latest='model.ckpt-0')
  with pytest.raises(experiment.NonFiniteLossError,
                     match=r'at step 1; nothing was saved after model\.ckpt-1'):
    _train_golden(tmp_path, max_steps=4, save_step=1,
                  override='learning_rate=1e30')
  assert sorted(checkpoints.list_steps(str(train_dir))) == [0, 1]
  reader = tf.train.load_checkpoint(str(train_dir / 'model.ckpt-1'))
  for name in reader.get_variable_to_shape_map():
    assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_full_disk_during_save_keeps_earlier_checkpoints(tmp_path):
  """Crash case 5: the disk fills up while ckpt-2 is written."""
  train_dir = _golden_training_dir(tmp_path, (0,), latest='model.ckpt-0')
  save = tf.raw_ops.SaveV2

  def save_until_full(prefix, tensor_names, shape_and_slices, tensors):
    save(prefix=prefix, tensor_names=tensor_names,
         shape_and_slices=shape_and_slices, tensors=tensors)
    _damage(prefix.numpy().decode() if hasattr(prefix, 'numpy') else prefix)
    raise tf.errors.ResourceExhaustedError(None, None,
                                           'No space left on device')

  before = _file_bytes(train_dir)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tf.raw_ops, 'SaveV2', save_until_full)
    with pytest.raises(OSError, match=r'could not write the checkpoint .*'
                       r'model\.ckpt-2 \(No space left on device\)'):
      _train_golden(tmp_path, max_steps=2)
  assert _file_bytes(train_dir) == before
  assert tf.train.latest_checkpoint(str(train_dir)).endswith('model.ckpt-0')


def _offline(name, *args, **kwargs):
  raise FileNotFoundError(f'tensorflow-datasets cannot download {name}')


def test_validate_reads_the_validation_files(tmp_path):
  images, labels = _random_digits(100, seed=4)
  _write_mnist_records(
      str(tmp_path / 'valid_test_0shifted_mnist.tfrecords'), images, labels)
  validation = datasets.input_fn('mnist', data_dir=str(tmp_path),
                                 validate=True)
  batch = next(iter(validation('test', 100)))
  np.testing.assert_array_equal(batch['recons_label'], labels)
  # Without validate the test split needs the test digits (offline here).
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(records, 'prepare_tfds', _offline)
    with pytest.raises(FileNotFoundError, match='lacks t10k-images'):
      datasets.input_fn('mnist', data_dir=str(tmp_path))('test', 100)


def test_mnist_input_takes_the_records_image_size(tmp_path):
  # mnist_shift --pad=2 writes 32x32 digits; the model is built for them.
  images, labels = _random_digits(3, seed=5)
  padded = np.pad(images, [(0, 0), (2, 2), (2, 2)])
  _write_mnist_records(str(tmp_path / 'test_0shifted_mnist.tfrecords'),
                       padded, labels)
  batch = next(iter(datasets.input_fn('mnist', data_dir=str(tmp_path))(
      'test', 3)))
  assert batch['images'].shape == (3, 1, 32, 32)
  np.testing.assert_allclose(batch['images'][:, 0], padded / 255)


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for sock in sockets:
    sock.bind(('localhost', 0))
  ports = [sock.getsockname()[1] for sock in sockets]
  for sock in sockets:
    sock.close()
  return ports


def test_multi_worker_training_on_loopback(mnist_dir, tmp_path):
  """Two worker processes train the same two steps; the chief saves them."""
  workers = [f'localhost:{port}' for port in _free_ports(2)]
  args = [os.path.join(_HERE, 'experiment.py'), f'--data_dir={mnist_dir[0]}',
          f'--summary_dir={tmp_path}', f'--hparams_override={_TINY}',
          '--max_steps=2', f'--eval_size={_NUM_TEST}']
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {'cluster': {'worker': workers},
         'task': {'type': 'worker', 'index': index}}))
    processes.append(subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=_HERE, env=env))
  try:
    outputs = [process.communicate(timeout=_SUBPROCESS_TIMEOUT_S)
               for process in processes]
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]
  progress = [_PROGRESS.search(stdout).groups() for stdout, _ in outputs]
  # The loss and accuracy are all-reduced: both workers print the same.
  assert progress[0] == progress[1]
  assert progress[0][0] == '2'
  train_dir = tmp_path / 'train'
  assert tf.train.latest_checkpoint(str(train_dir)).endswith('model.ckpt-2')
  events = [name for name in os.listdir(train_dir) if name.startswith('events')]
  assert len(events) == 1  # Only the chief writes summaries.
  # ... and evaluates the final checkpoint.
  assert 'Total wrong predictions' in outputs[0][0]
  assert 'Total wrong predictions' not in outputs[1][0]


# Each case: arguments, a part of the one-line error. The cases marked True
# also run as real processes, to show that neither absl, tfds nor TensorFlow's
# C++ start-up and checkpoint reader print anything else.
_BAD_INPUTS = {
    'empty data_dir': (['--data_dir='], 'data_dir is required', False),
    'missing files, offline': (['--data_dir={empty}'],
                               'lacks train-images-idx3-ubyte[.gz]', True),
    'unknown dataset': (['--data_dir={data}', '--dataset=imagenet'],
                        '--dataset=imagenet: value should be one of', False),
    'misspelt flag': (['--data_dir={data}', '--max_step=10'],
                      "Unknown command line flag 'max_step'", True),
    'unknown model': (['--data_dir={data}', '--model=resnet'],
                      "unknown model 'resnet'", False),
    'unknown hparam': (['--data_dir={data}',
                        '--hparams_override=num_prime_capsule=2'],
                       "unknown hparam 'num_prime_capsule'; valid keys: "
                       'conv1_channels, decay_rate, decay_steps', False),
    'bad hparam value': (['--data_dir={data}', '--hparams_override=leaky=2x'],
                         "hparam 'leaky' expects a bool", False),
    'missing checkpoint': (['--data_dir={data}', '--train=false',
                            '--checkpoint={summary}/none/model.ckpt-1'],
                           'cannot read checkpoint', False),
    'other architecture': (['--data_dir={data}', '--train=false',
                            '--checkpoint={golden}'],
                           'does not fit this CapsuleModel', False),
    'missing ensemble member': (['--data_dir={data}', '--train=false',
                                 '--num_trials=2',
                                 '--checkpoint={summary}/m{{}}/model.ckpt-1'],
                                'ensemble checkpoints not found', False),
    'num_gpus not dividing 128': (['--data_dir={data}', '--num_gpus=3'],
                                  'cannot split the global batch of 128',
                                  False),
    'more GPUs than present': (['--data_dir={data}', '--num_gpus={gpus}'],
                               'num_gpus={gpus} but this machine has ', False),
    'damaged checkpoint': (['--data_dir={data}', '--train=false',
                            '--checkpoint={damaged}'],
                           'model.ckpt-2 is damaged', True),
    'stray argument': (['--data_dir={data}', 'extra'],
                       'unexpected arguments: extra', False),
}


def _one_line_error(case, code, stderr, values):
  """What is wrong with an error exit, or None."""
  errors = stderr.strip().splitlines()
  expected = _BAD_INPUTS[case][1].format(**values)
  if (code in (0, None) or len(errors) != 1
      or not errors[0].startswith(_ERROR_PREFIX) or expected not in errors[0]):
    return f'{case}: exit {code}, {errors or stderr}'
  return None


def test_bad_inputs_fail_in_one_line_and_remove_nothing(mnist_dir, tmp_path,
                                                         capsys):
  summary_dir = tmp_path / 'run'
  (summary_dir / 'train').mkdir(parents=True)
  (summary_dir / 'train' / 'notes.txt').write_text('keep me')
  (tmp_path / 'empty').mkdir()
  damaged = tmp_path / 'damaged' / 'model.ckpt-2'
  damaged.parent.mkdir()
  _copy_checkpoint(golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-2'),
                   str(damaged))
  index = str(damaged) + '.index'
  with open(index, 'r+b') as index_file:  # Too short to be an sstable.
    index_file.truncate(os.path.getsize(index) // 2)
  # A power of two above the GPUs present: it divides the batch of 128.
  gpus = 2 ** len(tf.config.list_physical_devices('GPU')).bit_length()
  values = dict(data=mnist_dir[0], empty=tmp_path / 'empty',
                summary=summary_dir, damaged=damaged, gpus=max(gpus, 2),
                golden=golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-0'))
  before = {str(path) for path in tmp_path.rglob('*')}
  processes = {
      case: _experiment_process(f'--summary_dir={summary_dir}',
                                *[a.format(**values) for a in args])
      for case, (args, _, in_process) in _BAD_INPUTS.items() if in_process}
  failures = []
  capsys.readouterr()
  for case, (args, _, _) in _BAD_INPUTS.items():
    with pytest.raises(SystemExit) as exited:
      _run_experiment(f'--summary_dir={summary_dir}',
                      *[a.format(**values) for a in args])
    # The command line prints the exit code's text on stderr.
    stderr = capsys.readouterr().err + f'{exited.value.code}\n'
    failures.append(_one_line_error(case, exited.value.code, stderr, values))
  for case, process in processes.items():
    _, stderr = process.communicate(timeout=_SUBPROCESS_TIMEOUT_S)
    failures.append(_one_line_error(case, process.returncode, stderr, values))
  assert not any(failures), '\n'.join(filter(None, failures))
  assert before <= {str(path) for path in tmp_path.rglob('*')}


def test_killed_at_random_moments_resumes_every_time(mnist_dir, tmp_path):
  """`kill -9` during training (and saving), then the same command."""
  train_dir = tmp_path / 'train'
  command = [sys.executable, os.path.join(_HERE, 'experiment.py'),
             f'--data_dir={mnist_dir[0]}', f'--summary_dir={tmp_path}',
             f'--hparams_override={_TINY}', '--max_steps=8', '--save_step=1',
             '--evaluate_after_training=false']
  rng = np.random.RandomState(0)
  resumed_steps = []
  for _ in range(2):
    process = subprocess.Popen(command, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=_HERE)
    start = time.time()
    seen = len(checkpoints.list_steps(str(train_dir)))
    while (len(checkpoints.list_steps(str(train_dir))) <= seen and
           time.time() - start < _SUBPROCESS_TIMEOUT_S):
      time.sleep(0.05)
    time.sleep(rng.uniform(0, 0.3))  # Somewhere in the next steps or saves.
    process.kill()
    stdout, _ = process.communicate()
    resumed_steps.append(max(checkpoints.list_steps(str(train_dir)), default=0))
  assert resumed_steps[0] >= 1
  stdout = _checked(subprocess.run(command, capture_output=True, text=True,
                                   cwd=_HERE, timeout=_SUBPROCESS_TIMEOUT_S))
  match = re.search(r'^Resumed from .*model\.ckpt-(\d+) at step', stdout, re.M)
  assert int(match.group(1)) >= resumed_steps[-1] - 1
  assert _PROGRESS.search(stdout).group(1) == '8'
  # --evaluate_after_training=false: no test error, no test summaries.
  assert 'Total wrong predictions' not in stdout
  assert not os.path.exists(tmp_path / 'test')
  model = capsule_model.CapsuleModel(_tiny_hparams())
  model.build(_MNIST_SIZE, 1)
  for step, path in checkpoints.list_steps(str(train_dir)).items():
    assert checkpoints.load(model, path, include_optimizer=True) == step
  assert tf.train.latest_checkpoint(str(train_dir)).endswith('model.ckpt-8')
