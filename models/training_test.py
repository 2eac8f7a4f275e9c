"""Tests for models/training.py: the training step and the training loop.

The capsule_cifar_tiny golden (12x12x3, whose TF1 checkpoints and numbers
come from the reference) trained for a few steps through `training.train`:
on one device and on two replicas, resumed after each crash case, stopped
by a non-finite loss and a full disk; tiny random data elsewhere.
"""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

import golden_utils
from input_data import datasets
from models import checkpoints
from models import hparams as hparams_lib
from models import run_config
from models import training
import test_utils


def _train_golden_two_steps(summary_dir, strategy):
  """Two steps from the cifar golden's ckpt-0 on copies of its batch."""
  config = golden_utils.load_config(test_utils.CIFAR_CASE)
  _, arrays = test_utils.golden_arrays(test_utils.CIFAR_CASE, run_config.TRAIN_BATCH_SIZE)
  train_dir = os.path.join(summary_dir, 'train')
  os.makedirs(train_dir)
  test_utils.copy_checkpoint(golden_utils.require(f'{test_utils.CIFAR_CASE}/model.ckpt-0'),
                   os.path.join(train_dir, 'model.ckpt-0'))
  test_utils.set_latest(train_dir, 'model.ckpt-0')
  step = training.train(
      hparams_lib.default_hparams().parse(config['hparams_override']),
      summary_dir=summary_dir, model_type='capsule', max_steps=2,
      input_fn=test_utils.array_input_fn(arrays), strategy=strategy)
  assert step == 2
  return (test_utils.events(train_dir)['total_loss'],
          tf.train.load_checkpoint(os.path.join(train_dir, 'model.ckpt-2')))


def test_mirrored_training_matches_one_device_and_reference(tmp_path):
  """Two replicas, one device and the reference take the same two steps.

  The batch is 64 copies of the golden's two examples, so its mean loss and
  gradients are those of the reference's two-example batch.
  """
  golden = golden_utils.load_npz(f'{test_utils.CIFAR_CASE}/golden.npz')
  reference = tf.train.load_checkpoint(
      golden_utils.require(f'{test_utils.CIFAR_CASE}/model.ckpt-2'))
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
  training.train(test_utils.tiny_hparams(test_utils.TINY + ',verbose=true'),
                   summary_dir=str(tmp_path), model_type='capsule',
                   max_steps=1, config=run_config.RunConfig(save_step=1),
                   input_fn=test_utils.array_input_fn(arrays), num_targets=2)
  summaries = test_utils.events(str(tmp_path / 'train'))
  for tag in ('batch_classification_cost', 'total_loss', 'accuracy',
              'correct_prediction_batch', 'almost_correct_batch',
              'reconstruction_error', 'reconstruction_error_1',
              'conv1/weights', 'capsule2/biases', 'logits'):
    assert list(summaries[tag]) == [0], tag
  # Image summaries hold width, height and the encoded images: one input,
  # target and remake column per target.
  width, height = summaries['reconstruction'][0][:2]
  assert (int(width), int(height)) == (2 * size, 3 * size)


def _train_golden(tmp_path, max_steps, save_step=2, override=''):
  config = golden_utils.load_config(test_utils.CIFAR_CASE)
  _, arrays = test_utils.golden_arrays(test_utils.CIFAR_CASE, run_config.TRAIN_BATCH_SIZE)
  return training.train(
      hparams_lib.default_hparams().parse(
          ','.join(filter(None, [config['hparams_override'], override]))),
      summary_dir=str(tmp_path), model_type='capsule', max_steps=max_steps,
      input_fn=test_utils.array_input_fn(arrays),
      config=run_config.RunConfig(save_step=save_step))


def test_resumes_from_complete_checkpoint_the_state_file_missed(
    tmp_path, capsys):
  """Crash case 1: killed after writing ckpt-2 but before the state file."""
  train_dir = test_utils.golden_training_dir(tmp_path, (0, 2), latest='model.ckpt-0')
  before = test_utils.file_bytes(train_dir)
  assert _train_golden(tmp_path, max_steps=3) == 3
  out = capsys.readouterr().out
  assert f'Resumed from {train_dir / "model.ckpt-2"} at step 2' in out
  state = tf.train.get_checkpoint_state(str(train_dir))
  assert [os.path.basename(path) for path in state.all_model_checkpoint_paths
         ] == ['model.ckpt-0', 'model.ckpt-2', 'model.ckpt-3']
  after = test_utils.file_bytes(train_dir)
  for name, content in before.items():
    if name != 'checkpoint':
      assert after[name] == content, name


def test_damaged_newest_checkpoint_is_kept_and_passed_over(tmp_path, capsys):
  """Crash case 2: resume from the newest checkpoint that loads."""
  train_dir = test_utils.golden_training_dir(tmp_path, (0, 2), latest='model.ckpt-2')
  test_utils.damage(str(train_dir / 'model.ckpt-2'))
  damaged = test_utils.file_bytes(train_dir)
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
      golden_utils.require(f'{test_utils.CIFAR_CASE}/model.ckpt-2'))
  for name in ('conv1/weights', 'capsule2/weights'):
    golden_utils.assert_weights_close(ours.get_tensor(name),
                                      reference.get_tensor(name), name)


def test_no_loadable_checkpoint_stops_in_one_error(tmp_path):
  train_dir = test_utils.golden_training_dir(tmp_path, (0, 2), latest='model.ckpt-2')
  for step in (0, 2):
    test_utils.damage(str(train_dir / f'model.ckpt-{step}'))
  before = test_utils.file_bytes(train_dir)
  with pytest.raises(checkpoints.CorruptCheckpointError,
                     match=r'model\.ckpt-2, model\.ckpt-0 are damaged'):
    _train_golden(tmp_path, max_steps=4)
  assert test_utils.file_bytes(train_dir) == before


def test_seeded_run_resumes_in_its_data_order(tmp_path):
  """Stopped at step 2 and resumed, a seeded run ends where one run ends.

  The records are shuffled in an order fixed by the seed; without passing
  over the batches of the steps done, the resumed run would train steps 3
  and 4 on the batches of steps 1 and 2 again.
  """
  data_dir = tmp_path / 'data'
  data_dir.mkdir()
  test_utils.write_mnist_records(
      str(data_dir / 'train_2shifted_mnist.tfrecords'),
      *test_utils.random_digits(256, seed=1))
  input_fn = datasets.input_fn('mnist', data_dir=str(data_dir))

  def train(summary_dir, max_steps):
    training.train(test_utils.tiny_hparams(), summary_dir=str(summary_dir),
                     model_type='capsule', max_steps=max_steps,
                     config=run_config.RunConfig(save_step=2),
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
  train_dir = test_utils.golden_training_dir(tmp_path, (0,), latest='model.ckpt-0')
  with pytest.raises(training.NonFiniteLossError,
                     match=r'at step 1; nothing was saved after model\.ckpt-1'):
    _train_golden(tmp_path, max_steps=4, save_step=1,
                  override='learning_rate=1e30')
  assert sorted(checkpoints.list_steps(str(train_dir))) == [0, 1]
  reader = tf.train.load_checkpoint(str(train_dir / 'model.ckpt-1'))
  for name in reader.get_variable_to_shape_map():
    assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_full_disk_during_save_keeps_earlier_checkpoints(tmp_path):
  """Crash case 5: the disk fills up while ckpt-2 is written."""
  train_dir = test_utils.golden_training_dir(tmp_path, (0,), latest='model.ckpt-0')
  save = tf.raw_ops.SaveV2

  def save_until_full(prefix, tensor_names, shape_and_slices, tensors):
    save(prefix=prefix, tensor_names=tensor_names,
         shape_and_slices=shape_and_slices, tensors=tensors)
    test_utils.damage(prefix.numpy().decode() if hasattr(prefix, 'numpy') else prefix)
    raise tf.errors.ResourceExhaustedError(None, None,
                                           'No space left on device')

  before = test_utils.file_bytes(train_dir)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tf.raw_ops, 'SaveV2', save_until_full)
    with pytest.raises(OSError, match=r'could not write the checkpoint .*'
                       r'model\.ckpt-2 \(No space left on device\)'):
      _train_golden(tmp_path, max_steps=2)
  assert test_utils.file_bytes(train_dir) == before
  assert tf.train.latest_checkpoint(str(train_dir)).endswith('model.ckpt-0')
