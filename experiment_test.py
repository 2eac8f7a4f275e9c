"""Tests for experiment.py.

Training, resuming, evaluation, ensembles, multi-replica and multi-worker
training, and the command line's errors. Tiny models (`num_prime_capsules=2`)
on tiny data: MNIST-layout records of random 28x28 digits for the command
line, arrays for the Python API, and the capsule_cifar_tiny golden (12x12x3)
whose TF1 checkpoints and numbers come from the reference.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import experiment
import golden_utils
from models import capsule_model

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
  return subprocess.run(
      [sys.executable, os.path.join(_HERE, 'experiment.py'), *args],
      capture_output=True, text=True, cwd=_HERE,
      timeout=_SUBPROCESS_TIMEOUT_S)


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
            f'--hparams_override={_TINY}']
  first = _checked(_run_experiment(*common, '--max_steps=3'))
  with open(os.path.join(train_dir, 'model.ckpt-3.index'), 'rb') as index:
    first_index = index.read()
  second = _checked(
      _run_experiment(*common, '--max_steps=5', '--save_step=2'))
  return dict(summary_dir=summary_dir, train_dir=train_dir, first=first,
              second=second, first_index=first_index)


def _tiny_hparams(override=_TINY):
  return experiment.default_hparams().parse(override)


def _array_input_fn(arrays):
  """`input_fn` over in-memory examples: train repeats, test reads once."""
  def input_fn(split, batch_size):
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
  model.load_checkpoint(checkpoint)
  pixels = images[:, None].astype(np.float32) / 255.0
  labels = np.zeros(len(images), np.int32)
  return model.inference(dict(
      images=pixels, labels=tf.one_hot(labels, 10), recons_image=pixels,
      recons_label=labels, height=_MNIST_SIZE, depth=1, num_classes=10,
      num_targets=1)).logits.numpy()


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
  stdout = _checked(_run_experiment(
      f'--data_dir={data_dir}', f'--summary_dir={trained["summary_dir"]}',
      f'--hparams_override={_TINY}', '--train=false',
      f'--checkpoint={checkpoint}', f'--eval_size={_NUM_TEST}'))
  logits = _mnist_logits(checkpoint, images)
  wrong = int(np.sum(np.argmax(logits, axis=1) != labels))
  assert _wrong_line(wrong, wrong / (_NUM_TEST // 100)) in stdout.splitlines()
  summaries = _events(os.path.join(trained['summary_dir'], 'test'))
  assert summaries['wrong_prediction'] == {5: wrong}
  assert summaries['correct_prediction'] == {5: _NUM_TEST - wrong}


def test_bfloat16_mode_trains_and_keeps_float32_checkpoints(mnist_dir,
                                                           tmp_path):
  data_dir = mnist_dir[0]
  common = [f'--data_dir={data_dir}', f'--summary_dir={tmp_path}',
            f'--hparams_override={_TINY}', '--compute_dtype=bfloat16']
  _checked(_run_experiment(*common, '--max_steps=2'))
  reader = tf.train.load_checkpoint(
      os.path.join(tmp_path, 'train', 'model.ckpt-2'))
  dtypes = reader.get_variable_to_dtype_map()
  assert dtypes['conv_capsule1/weights'] == tf.float32
  assert dtypes['conv_capsule1/weights/Adam'] == tf.float32
  stdout = _checked(_run_experiment(
      *common, '--train=false', f'--eval_size={_NUM_TEST}',
      f'--checkpoint={os.path.join(tmp_path, "train", "model.ckpt-2")}'))
  assert any(line.startswith('Total wrong predictions: ')
             for line in stdout.splitlines())


def test_ensemble_sums_member_logits(trained, mnist_dir, tmp_path, capsys):
  data_dir, images, labels = mnist_dir
  members = []
  for trial, step in enumerate((3, 5)):
    source = os.path.join(trained['train_dir'], f'model.ckpt-{step}')
    _copy_checkpoint(source, str(tmp_path / f'model.ckpt-{trial}'))
    members.append(source)
  input_fn = experiment.dataset_input_fn('mnist', data_dir, 1, False)
  wrong = experiment.evaluate_ensemble(
      _tiny_hparams(), 'capsule', _NUM_TEST, input_fn,
      str(tmp_path / 'model.ckpt-{}'), num_trials=2)
  logit_sum = sum(_mnist_logits(member, images) for member in members)
  expected = int(np.sum(np.argmax(logit_sum, axis=1) != labels))
  assert wrong == expected
  assert (_wrong_line(expected, expected / _NUM_TEST * 100)
          in capsys.readouterr().out.splitlines())


def test_ensemble_missing_member_fails_before_reading_data(tmp_path):
  _copy_checkpoint(golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-0'),
                   str(tmp_path / 'model.ckpt-0'))

  def input_fn(split, batch_size):
    raise AssertionError('read data before checking the checkpoints')

  with pytest.raises(FileNotFoundError, match=r'model\.ckpt-1'):
    experiment.evaluate_ensemble(
        _tiny_hparams(), 'capsule', 100, input_fn,
        str(tmp_path / 'model.ckpt-{}'), num_trials=2)


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
  sleeps = []

  def fake_sleep(seconds):
    # Training writes ckpt-2 while evaluation waits for the first time.
    if not sleeps:
      _copy_checkpoint(checkpoints[1], str(train_dir / 'model.ckpt-2'))
      _set_latest(train_dir, 'model.ckpt-2')
    sleeps.append(seconds)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(experiment.time, 'sleep', fake_sleep)
    results = experiment.evaluate(
        experiment.default_hparams().parse(config['hparams_override']),
        str(tmp_path), 'capsule', experiment.EVAL_BATCH_SIZE,
        _array_input_fn(arrays), poll_seconds=7, max_idle_polls=2)

  assert [result.step for result in results] == [0, 2]
  assert sleeps == [7, 7, 7]
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
      summary_dir, 'capsule', max_steps=2, save_step=1500,
      input_fn=_array_input_fn(arrays), strategy=strategy)
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
  experiment.train(_tiny_hparams(_TINY + ',verbose=true'), str(tmp_path),
                   'capsule', max_steps=1, save_step=1,
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


def test_training_refuses_to_overwrite_a_checkpoint(tmp_path):
  config = golden_utils.load_config(_CIFAR_CASE)
  train_dir = tmp_path / 'train'
  train_dir.mkdir()
  for step in (0, 2):
    _copy_checkpoint(golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-{step}'),
                     str(train_dir / f'model.ckpt-{step}'))
  _set_latest(train_dir, 'model.ckpt-0')
  before = sorted(os.listdir(train_dir))
  _, arrays = _golden_arrays(_CIFAR_CASE, experiment.TRAIN_BATCH_SIZE)
  with pytest.raises(FileExistsError, match=r'model\.ckpt-2'):
    experiment.train(
        experiment.default_hparams().parse(config['hparams_override']),
        str(tmp_path), 'capsule', max_steps=4, save_step=2,
        input_fn=_array_input_fn(arrays))
  assert sorted(os.listdir(train_dir)) == before


def test_validate_reads_the_validation_files(tmp_path):
  images, labels = _random_digits(100, seed=4)
  _write_mnist_records(
      str(tmp_path / 'valid_test_0shifted_mnist.tfrecords'), images, labels)
  validation = experiment.dataset_input_fn('mnist', str(tmp_path), 1, True)
  batch = next(iter(validation('test', 100)))
  np.testing.assert_array_equal(batch['recons_label'], labels)
  with pytest.raises(FileNotFoundError, match='test_0shifted_mnist'):
    experiment.dataset_input_fn('mnist', str(tmp_path), 1, False)('test', 100)


def test_mnist_input_takes_the_records_image_size(tmp_path):
  # mnist_shift --pad=2 writes 32x32 digits; the model is built for them.
  images, labels = _random_digits(3, seed=5)
  padded = np.pad(images, [(0, 0), (2, 2), (2, 2)])
  _write_mnist_records(str(tmp_path / 'test_0shifted_mnist.tfrecords'),
                       padded, labels)
  batch = next(iter(experiment.dataset_input_fn('mnist', str(tmp_path), 1,
                                                False)('test', 3)))
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
          '--max_steps=2']
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


_BAD_INPUTS = {
    'no data_dir': ([], 'data_dir is required'),
    'missing files': (['--data_dir={empty}'], 'does not exist'),
    'unknown dataset': (['--data_dir={data}', '--dataset=imagenet'],
                        "unknown dataset 'imagenet'"),
    'unknown model': (['--data_dir={data}', '--model=resnet'],
                      "unknown model 'resnet'"),
    'unknown hparam': (['--data_dir={data}',
                        '--hparams_override=num_prime_capsule=2'],
                       "unknown hparam 'num_prime_capsule'; valid keys: "
                       'decay_rate, decay_steps, leaky'),
    'bad hparam value': (['--data_dir={data}', '--hparams_override=leaky=2x'],
                         "hparam 'leaky' expects a bool"),
    'missing checkpoint': (['--data_dir={data}', '--train=false',
                            '--checkpoint={summary}/none/model.ckpt-1'],
                           'cannot read checkpoint'),
    'other architecture': (['--data_dir={data}', '--train=false',
                            '--checkpoint={golden}'],
                           'does not fit this CapsuleModel'),
    'missing ensemble member': (['--data_dir={data}', '--train=false',
                                 '--num_trials=2',
                                 '--checkpoint={summary}/m{{}}/model.ckpt-1'],
                                'ensemble checkpoints not found'),
    'num_gpus not dividing 128': (['--data_dir={data}', '--num_gpus=3'],
                                  'cannot split the global batch of 128'),
    'more GPUs than present': (['--data_dir={data}', '--num_gpus=2'],
                               'num_gpus=2 but this machine has 0 GPUs'),
}


def test_bad_inputs_fail_in_one_line_and_remove_nothing(mnist_dir, tmp_path):
  summary_dir = tmp_path / 'run'
  (summary_dir / 'train').mkdir(parents=True)
  (summary_dir / 'train' / 'notes.txt').write_text('keep me')
  (tmp_path / 'empty').mkdir()
  values = dict(data=mnist_dir[0], empty=tmp_path / 'empty',
                summary=summary_dir,
                golden=golden_utils.require(f'{_CIFAR_CASE}/model.ckpt-0'))
  before = {str(path) for path in tmp_path.rglob('*')}
  processes = {}
  for case, (args, _) in _BAD_INPUTS.items():
    processes[case] = subprocess.Popen(
        [sys.executable, os.path.join(_HERE, 'experiment.py'),
         f'--summary_dir={summary_dir}', *[a.format(**values) for a in args]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_HERE)
  failures = []
  for case, process in processes.items():
    _, stderr = process.communicate(timeout=_SUBPROCESS_TIMEOUT_S)
    errors = [line for line in stderr.splitlines()
              if line.startswith(_ERROR_PREFIX)]
    expected = _BAD_INPUTS[case][1]
    if (process.returncode == 0 or 'Traceback' in stderr or len(errors) != 1
        or expected not in errors[0]):
      failures.append(f'{case}: exit {process.returncode}, {errors or stderr}')
  assert not failures, '\n'.join(failures)
  assert before <= {str(path) for path in tmp_path.rglob('*')}
