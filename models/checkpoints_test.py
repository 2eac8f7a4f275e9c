"""Tests for models/checkpoints.py on a tiny capsule model.

Crash cases through the training loop are in training_test.py; here the
verbs themselves, and the Keras internals the Adam slot names rely on.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from models import capsule_model
from models import checkpoints
from models import hparams as hparams_lib
from models import model as model_lib
import test_utils

_SHAPE = model_lib.DataShape(height=20, depth=1, num_classes=10,
                             num_targets=1)


def _model():
  model = capsule_model.CapsuleModel(
      hparams_lib.default_hparams().parse('num_prime_capsules=2,remake=false'))
  model.build(_SHAPE)
  return model


def _features(seed=0):
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(4, 1, 20, 20)).astype(np.float32)
  labels = rng.integers(0, 10, 4).astype(np.int32)
  return dict(images=images, labels=np.eye(10, dtype=np.float32)[labels],
              recons_image=images, recons_label=labels)


def test_slot_map_names_every_adam_slot_keras_keeps():
  """`slot_map` reads the moments Keras' Adam keeps in private lists.

  If a Keras upgrade moves them, this fails: the slots must be exactly the
  optimizer's variables other than its step and learning rate, and hold the
  first moments, second moments and beta powers after one Adam update.
  """
  model = _model()
  grads, _ = model.compute_gradients(_features())
  model.apply_gradients(grads)
  slots = model.slot_map()
  optimizer_slots = {id(var) for var in model.optimizer.variables
                     if var is not model.optimizer.iterations
                     and 'learning_rate' not in var.path}
  assert {id(var) for var in slots.values()} == optimizer_slots
  assert len(slots) == 2 * len(model.trainable_variables) + 2
  assert slots['beta1_power'].numpy() == np.float32(0.9) * np.float32(0.9)
  assert slots['beta2_power'].numpy() == (
      np.float32(0.999) * np.float32(0.999))
  for (name, _), grad in zip(
      model.tf1_variable_map().items(), grads):
    np.testing.assert_allclose(slots[f'{name}/Adam'], 0.1 * grad.numpy(),
                               rtol=1e-5, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(slots[f'{name}/Adam_1'],
                               0.001 * np.square(grad.numpy()),
                               rtol=1e-4, atol=1e-15, err_msg=name)


def test_write_and_load_round_trip(tmp_path):
  model = _model()
  test_utils.trainer_on(model, _features())()
  path = checkpoints.write(model, str(tmp_path / 'model.ckpt-1'))
  other = _model()
  assert checkpoints.load(other, path, include_optimizer=True) == 1
  for (name, a), b in zip(model.tf1_variable_map().items(),
                          other.tf1_variable_map().values()):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
  # Nothing but the checkpoint's two files.
  assert sorted(os.listdir(tmp_path)) == [
      'model.ckpt-1.data-00000-of-00001', 'model.ckpt-1.index']


def test_write_refuses_non_finite_values(tmp_path):
  model = _model()
  model.trainable_variables[0].assign(
      tf.fill(model.trainable_variables[0].shape, np.nan))
  with pytest.raises(ValueError, match=r'conv1/weights hold NaN'):
    checkpoints.write(model, str(tmp_path / 'model.ckpt-0'))
  assert not os.listdir(tmp_path)


def test_damaged_checkpoint_leaves_the_model_as_it_was(tmp_path):
  model = _model()
  path = checkpoints.write(model, str(tmp_path / 'model.ckpt-0'))
  data = path + '.data-00000-of-00001'
  with open(data, 'r+b') as data_file:
    data_file.truncate(os.path.getsize(data) - 100)
  other = _model()
  before = [var.numpy() for var in other.trainable_variables]
  with pytest.raises(checkpoints.CorruptCheckpointError,
                     match=r'model\.ckpt-0 is damaged'):
    checkpoints.load(other, path)
  for var, value in zip(other.trainable_variables, before):
    np.testing.assert_array_equal(var.numpy(), value)


def test_save_lists_every_checkpoint_in_the_state_file(tmp_path):
  model = _model()
  step = test_utils.trainer_on(model, _features())
  for _ in range(3):
    checkpoints.save(model, str(tmp_path))
    step()
  assert list(checkpoints.list_steps(str(tmp_path))) == [0, 1, 2]
  state = tf.train.get_checkpoint_state(str(tmp_path))
  assert state.model_checkpoint_path.endswith('model.ckpt-2')
  assert len(state.all_model_checkpoint_paths) == 3
  with pytest.raises(FileExistsError, match=r'model\.ckpt-2'):
    model.optimizer.iterations.assign(2)
    checkpoints.save(model, str(tmp_path))


def test_save_keeps_the_newest_and_those_being_read(tmp_path):
  model = _model()
  step = test_utils.trainer_on(model, _features())
  paths = {}
  for i in range(5):
    if i == 3:  # An evaluation reads model.ckpt-1 from now on.
      reading = checkpoints.reading(paths[1])
      reading.__enter__()
    paths[i] = checkpoints.save(model, str(tmp_path), keep=2)
    step()
  assert list(checkpoints.list_steps(str(tmp_path))) == [1, 3, 4]
  reading.__exit__(None, None, None)
  checkpoints.save(model, str(tmp_path), keep=2)
  assert list(checkpoints.list_steps(str(tmp_path))) == [4, 5]
  state = tf.train.get_checkpoint_state(str(tmp_path))
  assert [os.path.basename(path) for path in state.all_model_checkpoint_paths
         ] == ['model.ckpt-4', 'model.ckpt-5']
  # Nothing else is left: no mark, no half checkpoint.
  assert sorted(os.listdir(tmp_path)) == [
      'checkpoint', 'model.ckpt-4.data-00000-of-00001', 'model.ckpt-4.index',
      'model.ckpt-5.data-00000-of-00001', 'model.ckpt-5.index']


def test_save_moves_aside_the_data_file_of_a_save_cut_short(tmp_path):
  """Killed between its two renames, a save leaves a data file alone."""
  model = _model()
  orphan = tmp_path / 'model.ckpt-0.data-00000-of-00001'
  orphan.write_bytes(b'half')
  checkpoints.save(model, str(tmp_path))
  assert list(checkpoints.list_steps(str(tmp_path))) == [0]
  assert (tmp_path / ('model.ckpt-0.data-00000-of-00001' +
                      checkpoints.BROKEN_SUFFIX)).read_bytes() == b'half'
