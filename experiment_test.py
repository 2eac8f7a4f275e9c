"""Tests for experiment.py, the command line.

Training, resuming, evaluation, mixed precision, multi-worker training,
`kill -9`, and the command line's one-line errors, as a user runs them.
Tiny models (`num_prime_capsules=2`) on MNIST-layout records of random 28x28
digits. The library under it has its own tests (models/training_test.py,
models/evaluation_test.py).
"""

import contextlib
import io
import json
import os
import re
import signal
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
from models import checkpoints
from models import devices
from models import model as model_lib
from models import registry
import test_utils

_HERE = os.path.dirname(os.path.abspath(__file__))
_SHAPE = model_lib.DataShape(height=test_utils.MNIST_SIZE, depth=1)
_NUM_TRAIN = 256
_NUM_TEST = 200
_SUBPROCESS_TIMEOUT_S = 240
_ERROR_PREFIX = 'experiment.py: error: '
# A progress line, less its timing.
_PROGRESS = re.compile(r'step (\d+): loss ([\d.]+), accuracy ([\d.]+),')


@pytest.fixture(scope='module')
def mnist_dir(tmp_path_factory):
  """Train and test records of random digits; returns (dir, test arrays)."""
  data_dir = str(tmp_path_factory.mktemp('mnist_data'))
  test_utils.write_mnist_records(os.path.join(data_dir, 'train_2shifted_mnist.tfrecords'),
                       *test_utils.random_digits(_NUM_TRAIN, seed=1))
  test_images, test_labels = test_utils.random_digits(_NUM_TEST, seed=2)
  test_utils.write_mnist_records(os.path.join(data_dir, 'test_0shifted_mnist.tfrecords'),
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
            f'--hparams_override={test_utils.TINY}', f'--eval_size={_NUM_TEST}']
  first = _run_experiment(*common, '--max_steps=3')
  with open(os.path.join(train_dir, 'model.ckpt-3.index'), 'rb') as index:
    first_index = index.read()
  second = _run_experiment(*common, '--max_steps=5', '--save_step=2')
  return dict(summary_dir=summary_dir, train_dir=train_dir, first=first,
              second=second, first_index=first_index)


def _mnist_logits(checkpoint, images):
  """Logits of a tiny capsule model on uint8 digits, computed directly.

  With the run configuration the command line uses on this machine.
  """
  model = registry.build_model(test_utils.tiny_hparams(),
                               model_type='capsule', shape=_SHAPE,
                               config=devices.resolve_run_config().model)
  checkpoints.load(model, checkpoint)
  pixels = images[:, None].astype(np.float32) / 255.0
  labels = np.zeros(len(images), np.int32)
  tensors = dict(images=pixels, labels=tf.one_hot(labels, 10),
                 recons_image=pixels, recons_label=labels)
  return model.inference(tensors).logits.numpy()


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
  assert 'reconstruction_error' in test_utils.events(trained['train_dir'])


def test_training_ends_with_the_test_error_of_its_last_checkpoint(
    trained, mnist_dir):
  _, images, labels = mnist_dir
  for run, step in (('first', 3), ('second', 5)):
    checkpoint = os.path.join(trained['train_dir'], f'model.ckpt-{step}')
    logits = _mnist_logits(checkpoint, images)
    wrong = int(np.sum(np.argmax(logits, axis=1) != labels))
    last_line = trained[run].splitlines()[-1]
    assert last_line == test_utils.wrong_line(wrong, wrong / (_NUM_TEST // 100)), run
  summaries = test_utils.events(os.path.join(trained['summary_dir'], 'test'))
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
  assert sorted(test_utils.events(train_dir)['total_loss']) == [0, 1, 2, 3, 4]


def test_evaluate_checkpoint_prints_wrong_count(trained, mnist_dir):
  data_dir, images, labels = mnist_dir
  checkpoint = os.path.join(trained['train_dir'], 'model.ckpt-5')
  stdout = _run_experiment(
      f'--data_dir={data_dir}', f'--summary_dir={trained["summary_dir"]}',
      f'--hparams_override={test_utils.TINY}', '--train=false',
      f'--checkpoint={checkpoint}', f'--eval_size={_NUM_TEST}')
  logits = _mnist_logits(checkpoint, images)
  wrong = int(np.sum(np.argmax(logits, axis=1) != labels))
  assert test_utils.wrong_line(wrong, wrong / (_NUM_TEST // 100)) in stdout.splitlines()
  summaries = test_utils.events(os.path.join(trained['summary_dir'], 'test'))
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
            f'--hparams_override={test_utils.TINY}', f'--compute_dtype={dtype}',
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


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for sock in sockets:
    sock.bind(('localhost', 0))
  ports = [sock.getsockname()[1] for sock in sockets]
  for sock in sockets:
    sock.close()
  return ports


def _workers(args, count=2, own_args=None):
  """`experiment.py args` as `count` loopback workers of one cluster.

  own_args: a list of further arguments for each worker.
  """
  workers = [f'localhost:{port}' for port in _free_ports(count)]
  own_args = own_args or [[]] * count
  processes = []
  for index in range(count):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {'cluster': {'worker': workers},
         'task': {'type': 'worker', 'index': index}}))
    processes.append(subprocess.Popen(
        [sys.executable, os.path.join(_HERE, 'experiment.py'), *args,
         *own_args[index]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_HERE,
        env=env))
  return processes


def _communicate(processes, before=lambda: None):
  """Each process's (stdout, stderr) once all ended; kills any left.

  Args:
    processes: running processes.
    before: called first, while they run.
  """
  try:
    before()
    return [process.communicate(timeout=_SUBPROCESS_TIMEOUT_S)
            for process in processes]
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()


def test_multi_worker_preempted_then_resumed_on_loopback(mnist_dir, tmp_path):
  """Two loopback worker processes of one cluster.

  SIGTERM to one worker (preemption): every worker stops after the same
  step, the chief saves it, and each ends with one line and SIGTERM's exit
  code. The same command then resumes on both: they train the same steps,
  print the same all-reduced loss, and only the chief saves, writes
  summaries and evaluates.
  """
  args = [f'--data_dir={mnist_dir[0]}', f'--summary_dir={tmp_path}',
          f'--hparams_override={test_utils.TINY}', '--save_step=100000',
          f'--eval_size={_NUM_TEST}']
  train_dir = tmp_path / 'train'
  processes = _workers([*args, '--max_steps=100000'])

  def preempt_worker_1():
    deadline = time.time() + _SUBPROCESS_TIMEOUT_S
    while not test_utils.events_written(train_dir, steps=3):
      assert time.time() < deadline
      assert all(process.poll() is None for process in processes)
      time.sleep(0.2)
    processes[1].send_signal(signal.SIGTERM)

  outputs = _communicate(processes, before=preempt_worker_1)
  assert [process.returncode for process in processes] == [143, 143], (
      [stderr[-2000:] for _, stderr in outputs])
  chief_lines, worker_lines = [stderr.strip().splitlines()
                               for _, stderr in outputs]
  assert len(chief_lines) == 1, chief_lines
  assert len(worker_lines) == 1, worker_lines
  match = re.fullmatch(
      r'experiment\.py: interrupted at step (\d+) with the other workers; '
      r'saved (.*model\.ckpt-\1); run the same command to resume',
      chief_lines[0])
  assert match, chief_lines
  step = int(match.group(1))
  assert worker_lines == [
      f'experiment.py: interrupted at step {step}; the chief worker '
      f'saves it; run the same command to resume']
  assert checkpoints.list_steps(str(train_dir)) == {step: match.group(2)}

  processes = _workers([*args, f'--max_steps={step + 2}'])
  outputs = _communicate(processes)
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]
  progress = [_PROGRESS.findall(stdout)[-1] for stdout, _ in outputs]
  # The loss and accuracy are all-reduced: both workers print the same.
  assert progress[0] == progress[1]
  assert progress[0][0] == str(step + 2)
  assert f'Resumed from {match.group(2)} at step {step}' in outputs[0][0]
  assert tf.train.latest_checkpoint(str(train_dir)).endswith(
      f'model.ckpt-{step + 2}')
  events = [name for name in os.listdir(train_dir) if name.startswith('events')]
  assert len(events) == 2  # Only the chief writes summaries, once per run.
  # ... and evaluates the final checkpoint.
  assert 'Total wrong predictions' in outputs[0][0]
  assert 'Total wrong predictions' not in outputs[1][0]


def test_multi_worker_resumes_every_worker_from_the_chiefs_checkpoint(
    mnist_dir, tmp_path):
  """Each worker given its own local --summary_dir; only the chief's holds a
  checkpoint (step 3). Every worker trains on from the chief's step and
  weights: they run the same steps and print the same all-reduced loss."""
  chief_dir, worker_dir = tmp_path / 'chief', tmp_path / 'worker'
  model = registry.build_model(test_utils.tiny_hparams(),
                               model_type='capsule', shape=_SHAPE,
                               config=devices.resolve_run_config().model)
  model.optimizer.set_step(3)
  os.makedirs(chief_dir / 'train')
  checkpoints.save(model, str(chief_dir / 'train'))
  args = [f'--data_dir={mnist_dir[0]}', f'--hparams_override={test_utils.TINY}',
          '--evaluate_after_training=false']
  processes = _workers([*args, '--max_steps=6'], own_args=[
      [f'--summary_dir={chief_dir}'], [f'--summary_dir={worker_dir}']])
  outputs = _communicate(processes)
  for process, (_, stderr) in zip(processes, outputs):
    # TensorFlow may log the chief's departure before the worker's main
    # ends (a loaded machine); after it, cli drops what it writes.
    assert process.returncode == 0 and 'Traceback' not in stderr, (
        stderr[-3000:])
  chief_progress, worker_progress = [_PROGRESS.findall(stdout)
                                     for stdout, _ in outputs]
  assert chief_progress == worker_progress
  assert [step for step, _, _ in chief_progress] == ['6']
  checkpoint = os.path.join(chief_dir, 'train', 'model.ckpt-3')
  assert f'Resumed from {checkpoint} at step 3' in outputs[0][0]
  assert list(checkpoints.list_steps(str(chief_dir / 'train'))) == [3, 6]
  assert not os.path.exists(worker_dir / 'train')


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
  test_utils.copy_checkpoint(test_utils.require(f'{test_utils.CIFAR_CASE}/model.ckpt-2'),
                   str(damaged))
  index = str(damaged) + '.index'
  with open(index, 'r+b') as index_file:  # Too short to be an sstable.
    index_file.truncate(os.path.getsize(index) // 2)
  # A power of two above the GPUs present: it divides the batch of 128.
  gpus = 2 ** len(tf.config.list_physical_devices('GPU')).bit_length()
  values = dict(data=mnist_dir[0], empty=tmp_path / 'empty',
                summary=summary_dir, damaged=damaged, gpus=max(gpus, 2),
                golden=test_utils.require(f'{test_utils.CIFAR_CASE}/model.ckpt-0'))
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


@pytest.mark.parametrize('args, error', [
    (['--model=foo'], "unknown model 'foo'"),
    (['--hparams_override=padding=same'], "hparam padding='same'"),
    (['--train=false', '--checkpoint={run}/model.ckpt-1'],
     'cannot read checkpoint'),
    (['--train=false', '--num_trials=2', '--checkpoint={run}/m{{}}.ckpt-1'],
     'ensemble checkpoints not found'),
])
def test_checks_without_data_come_before_the_data(tmp_path, args, error):
  data_dir = tmp_path / 'data'  # Empty: the MNIST files would be made here.
  data_dir.mkdir()
  with pytest.raises(SystemExit) as exited:
    _run_experiment(f'--data_dir={data_dir}', f'--summary_dir={tmp_path}',
                    *[arg.format(run=tmp_path) for arg in args])
  assert error in str(exited.value.code)
  assert not list(data_dir.iterdir())


def test_killed_at_a_random_moment_resumes(mnist_dir, tmp_path):
  """`kill -9` during training (or saving), then the same command."""
  train_dir = tmp_path / 'train'
  command = [sys.executable, os.path.join(_HERE, 'experiment.py'),
             f'--data_dir={mnist_dir[0]}', f'--summary_dir={tmp_path}',
             f'--hparams_override={test_utils.TINY}', '--max_steps=8', '--save_step=1',
             '--evaluate_after_training=false']
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=_HERE)
  deadline = time.time() + _SUBPROCESS_TIMEOUT_S
  while not checkpoints.list_steps(str(train_dir)):
    assert time.time() < deadline and process.poll() is None
    time.sleep(0.05)
  # Somewhere in the next steps or saves.
  time.sleep(np.random.RandomState(0).uniform(0, 0.3))
  process.kill()
  process.communicate()
  killed_at = max(checkpoints.list_steps(str(train_dir)))
  # The last run in this process: only the kills need real processes.
  stdout = _run_experiment(*command[2:])
  match = re.search(r'^Resumed from .*model\.ckpt-(\d+) at step', stdout, re.M)
  assert int(match.group(1)) >= killed_at - 1
  assert _PROGRESS.search(stdout).group(1) == '8'
  # --evaluate_after_training=false: no test error, no test summaries.
  assert 'Total wrong predictions' not in stdout
  assert not os.path.exists(tmp_path / 'test')
  model = registry.build_model(test_utils.tiny_hparams(),
                               model_type='capsule', shape=_SHAPE)
  for step, path in checkpoints.list_steps(str(train_dir)).items():
    assert checkpoints.load(model, path, include_optimizer=True) == step
  assert tf.train.latest_checkpoint(str(train_dir)).endswith('model.ckpt-8')


def test_signal_during_training_saves_the_step_and_resumes(mnist_dir,
                                                           tmp_path):
  """Ctrl-C or SIGTERM mid-training: a checkpoint of the step reached, one
  line, the shell's exit code, and the same command resumes from it.

  One process per signal, at once (each spends seconds starting).
  """
  def command(summary_dir, max_steps=100000):
    return [f'--data_dir={mnist_dir[0]}', f'--summary_dir={summary_dir}',
            f'--hparams_override={test_utils.TINY}',
            f'--max_steps={max_steps}', '--save_step=100000',
            '--evaluate_after_training=false']

  runs = {signum: (tmp_path / signal.Signals(signum).name,
                   _experiment_process(*command(
                       tmp_path / signal.Signals(signum).name)))
          for signum in (signal.SIGINT, signal.SIGTERM)}
  deadline = time.time() + _SUBPROCESS_TIMEOUT_S
  for signum, (summary_dir, process) in runs.items():
    # Training runs once the summaries of its first steps are written.
    while not test_utils.events_written(summary_dir / 'train', steps=3):
      assert time.time() < deadline and process.poll() is None
      time.sleep(0.2)
    process.send_signal(signum)
  for signum, (summary_dir, process) in runs.items():
    _, stderr = process.communicate(timeout=_SUBPROCESS_TIMEOUT_S)
    assert process.returncode == 128 + signum, stderr[-3000:]
    [line] = stderr.strip().splitlines()
    match = re.fullmatch(
        r'experiment\.py: interrupted at step (\d+); saved '
        r'(.*model\.ckpt-\1); run the same command to resume', line)
    assert match, line
    step = int(match.group(1))
    assert step >= 3
    assert checkpoints.list_steps(str(summary_dir / 'train')) == {
        step: match.group(2)}
    resumed = _run_experiment(*command(summary_dir, max_steps=step + 2))
    assert f'Resumed from {match.group(2)} at step {step}' in resumed
    assert _PROGRESS.search(resumed).group(1) == str(step + 2)
