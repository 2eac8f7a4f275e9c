"""Tests for models/adam.py against the reference's own optimizer.

`tf.compat.v1.train.AdamOptimizer` still runs in TF2 (eagerly); it is the
reference's optimizer, so it is the oracle here. The setting is a hard one on
purpose: softmax loss, five routings, a learning rate that decays every step
and a batch of two, where stock Keras Adam's last-bit roundings tip ReLUs
over their kinks within a few steps.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import adam
from models import capsule_model
from models import hparams as hparams_lib
from models import model as model_lib
import test_utils

_SHAPE = model_lib.DataShape(height=28, depth=1, num_classes=10,
                             num_targets=1)
_KINKY = ('loss_type=softmax,remake=false,routing=5,decay_steps=1,'
          'num_prime_capsules=2')
_STEPS = 5
_TOLERANCE = 1e-6


def _model(seed=1):
  keras.utils.set_random_seed(seed)
  model = capsule_model.CapsuleModel(hparams_lib.default_hparams().parse(_KINKY))
  model.build(_SHAPE)
  return model


def _features(seed=1):
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(2, 1, 28, 28)).astype(np.float32)
  labels = rng.integers(0, 10, 2).astype(np.int32)
  return dict(images=images, labels=np.eye(10, dtype=np.float32)[labels],
              recons_image=images, recons_label=labels)


def _reference_weights(features):
  """The weights after each step of the reference's optimizer."""
  model = _model()
  hparams = model.hparams
  step = tf.Variable(0, dtype=tf.int64)

  def learning_rate():  # The reference's schedule, by its own functions.
    return tf.maximum(tf.compat.v1.train.exponential_decay(
        hparams.learning_rate, step, hparams.decay_steps,
        hparams.decay_rate)(), model_lib.MIN_LEARNING_RATE)

  optimizer = tf.compat.v1.train.AdamOptimizer(learning_rate)
  variables = [var.value for var in model.trainable_variables]
  weights = []
  for _ in range(_STEPS):
    grads, _ = model.compute_gradients(features)
    optimizer.apply_gradients(zip(grads, variables))
    step.assign_add(1)
    weights.append([var.numpy() for var in variables])
  return weights


def _max_errors(model, step, reference):
  """Weight errors after each call of step against the reference's."""
  errors = []
  for expected in reference:
    step()
    errors.append(max(np.max(np.abs(var.numpy() - want)) for var, want in
                      zip(model.trainable_variables, expected)))
  return errors


def test_steps_equal_the_reference_optimizer():
  """The training step training runs, against the reference's optimizer."""
  features = _features()
  model = _model()
  errors = _max_errors(model, test_utils.trainer_on(model, features),
                       _reference_weights(features))
  assert max(errors) <= _TOLERANCE, errors


def test_selected_steps_equal_the_reference_optimizer():
  """float16's path, the update selected by a finite flag (here True),
  takes the reference optimizer's steps too."""
  features = _features()
  model = _model()

  def selected_step():
    grads, _ = model.compute_gradients(features)
    model.optimizer.apply_summed(grads, model.trainable_variables,
                                 where=tf.constant(True))

  errors = _max_errors(model, selected_step, _reference_weights(features))
  assert max(errors) <= _TOLERANCE, errors
  assert int(model.global_step.numpy()) == _STEPS


def test_stock_keras_adam_drifts_at_this_setting():
  """The setting above separates the two: stock Keras Adam fails it."""
  features = _features()
  model = _model()
  stock = keras.optimizers.Adam(
      model_lib.LearningRateSchedule(
          model.hparams.learning_rate, model.hparams.decay_steps,
          model.hparams.decay_rate),
      beta_1=adam.BETA1, beta_2=adam.BETA2, epsilon=adam.EPSILON)
  stock.build(model.trainable_variables)

  def stock_step():
    grads, _ = model.compute_gradients(features)
    stock.apply_gradients(zip(grads, model.trainable_variables))

  errors = _max_errors(model, stock_step, _reference_weights(features))
  assert errors[0] < _TOLERANCE  # One step: the same formula.
  assert max(errors) > 10 * _TOLERANCE, errors


@pytest.mark.parametrize('beta,step', [(adam.BETA1, 0), (adam.BETA1, 7),
                                       (adam.BETA2, 2000),
                                       # 0.9 ** 900 is subnormal: zero.
                                       (adam.BETA1, 900)])
def test_beta_power_is_the_reference_running_product(beta, step):
  factor = tf.constant(beta)
  power = tf.Variable(beta)
  for _ in range(step):
    power.assign(power * factor)
  assert adam.beta_power(beta, step) == power.numpy()


def test_set_step_sets_counter_and_beta_powers():
  model = _model()
  model.optimizer.set_step(12)
  beta1_power, beta2_power = model.slot_map()['beta1_power'], (
      model.slot_map()['beta2_power'])
  assert int(model.global_step.numpy()) == 12
  assert beta1_power.numpy() == adam.beta_power(adam.BETA1, 12)
  assert beta2_power.numpy() == adam.beta_power(adam.BETA2, 12)
