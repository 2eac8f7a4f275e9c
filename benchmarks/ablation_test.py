"""The ablation variants compute what the fast code computes, by other code."""

import functools
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import ablation
from benchmarks import benchmark
from layers import kernels
from layers import layers

# Plain routing on VALID padding, and leaky routing on SAME.
_CONFIGS = (
    benchmark.Config('plain', 'capsule', 'num_prime_capsules=2', 20, 1),
    benchmark.Config('leaky', 'capsule',
                     'num_prime_capsules=2,leaky=true,padding=SAME', 12, 1),
)
# The function each change puts back, which the model must then run.
_OLD_CODE = {
    'fourier': '_im2col_conv2d',
    'im2col': '_conv2d_op',
    'input_major_votes': '_capsule_call_batch_first',
    'xla_routing': '_routing_op_by_op',
    'channels_last': '_votes_channels_first',
}


def _two_steps(config):
  """Loss, gradients and weights after two steps of a seeded tiny model."""
  keras.utils.set_random_seed(7)
  model = benchmark._make_model(config, compute_dtype='float32')
  features = benchmark._features(config, batch=3, seed=5)
  step = tf.function(model.train_step)
  loss, _, _ = step(features)
  step(features)
  grads, _ = model.compute_gradients(features)
  return (loss.numpy(), [g.numpy() for g in grads],
          [v.numpy() for v in model.trainable_variables])


def _fast_code():
  """The functions the variants replace, as they are outside `undone`."""
  return (kernels.conv2d, kernels._fourier_conv2d, layers._fused_routing,
          layers.ConvSlimCapsule.votes, layers.Capsule.call)


def _assert_close(actual, expected):
  for a, e in zip(actual, expected):
    np.testing.assert_allclose(a, e, rtol=1e-4,
                               atol=1e-5 * max(np.abs(e).max(), 1e-3))


@pytest.mark.parametrize('config', _CONFIGS, ids=lambda c: c.name)
@pytest.mark.parametrize('variant', ablation.CHANGES + ('all',))
def test_variant_matches_fast_code(variant, config):
  fast_code = _fast_code()
  loss, grads, weights = _two_steps(config)
  calls = []
  spies = []
  for change, name in _OLD_CODE.items():
    if variant in (change, 'all'):
      original = getattr(ablation, name)

      @functools.wraps(original)  # Keras reads the signature of `call`.
      def spy(*args, original=original, name=name, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

      spies.append(mock.patch.object(ablation, name, spy))
  for patch in spies:
    patch.start()
  try:
    with ablation.undone(variant):
      old_loss, old_grads, old_weights = _two_steps(config)
  finally:
    for patch in spies:
      patch.stop()
  # The old code ran, and the fast code is back afterwards.
  # Undoing im2col undoes the Fourier convolution that replaced it too.
  expected = {name for change, name in _OLD_CODE.items()
              if variant in (change, 'all')}
  if variant in ('im2col', 'all'):
    expected -= {'_im2col_conv2d'}
  assert set(calls) == expected
  assert _fast_code() == fast_code
  np.testing.assert_allclose(old_loss, loss, rtol=1e-5)
  _assert_close(old_grads, grads)
  _assert_close(old_weights, weights)


def test_im2col_in_batch_chunks_matches_tensorflow():
  """The old im2col, one example per chunk: tf.nn.conv2d's numbers."""
  images = tf.random.normal((3, 7, 6, 2))
  kernel = tf.random.normal((3, 3, 2, 4))
  example_bytes = 4 * 3 * 3 * 3 * 2 * 4  # SAME's oh * ow * k * k * c * 4 B
  with mock.patch.object(ablation, 'MAX_PATCH_BYTES', 2 * example_bytes):
    assert ablation._batch_chunks(5, example_bytes) == [2, 2, 1]
    assert ablation._batch_chunks(None, example_bytes) == [-1]
  for padding in ('SAME', 'VALID'):
    with mock.patch.object(ablation, 'MAX_PATCH_BYTES', example_bytes), \
        tf.GradientTape(persistent=True) as tape:
      tape.watch([images, kernel])
      expected = tf.nn.conv2d(images, kernel, 2, padding)
      output = ablation._im2col_conv2d(images, kernel, stride=2,
                                       padding=padding)
      weights = tf.random.normal(expected.shape, seed=1)
      loss = tf.reduce_sum(output * weights)
      expected_loss = tf.reduce_sum(expected * weights)
    _assert_close([output], [expected])
    _assert_close(tape.gradient(loss, [images, kernel]),
                  tape.gradient(expected_loss, [images, kernel]))


def test_unknown_variant_is_rejected():
  with pytest.raises(ValueError, match='unknown variant'):
    with ablation.undone('winograd'):
      pass
  with pytest.raises(SystemExit):
    ablation.main(['--variants', 'none,winograd'])
