"""The round-robin harness, and the variants it times computing the
baseline's numbers by their own ops."""

from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import benchmark
from benchmarks import compare
from layers import layers
from models import model as model_lib

# Leaky routing on SAME padding (the plain routing on VALID padding is the
# goldens' case: layers_test and model_test check both convolutions there).
_CONFIG = benchmark.Config('leaky', 'capsule',
                           'num_prime_capsules=2,leaky=true,padding=SAME', 12,
                           1)


def _two_steps(config, variant):
  """Loss, gradients and weights after two training steps of a seeded tiny
  model, and the convolutions its primary capsules ran."""
  keras.utils.set_random_seed(7)
  trainer = benchmark.trainer(config, compute_dtype='float32',
                              conv_implementation=variant,
                              train_batch_size=3)
  model = trainer.model
  features = model_lib.features(
      benchmark.random_batch(config, batch=3, seed=5), trainer.shape)
  graph = tf.function(lambda: model.losses(features)).get_concrete_function(
      ).graph
  convolutions = {
      'fourier' if 'fourier_conv2d' in op.name else 'native'
      for op in graph.get_operations()
      if 'conv_capsule1' in op.name and (
          'fourier_conv2d' in op.name or op.type == 'Conv2D')}
  batches = trainer.repeat({key: value for key, value in features.items()
                            if key not in model_lib.DataShape._fields})
  loss = trainer.run(batches, 1).loss
  trainer.run(batches, 1)
  grads, _ = model.compute_gradients(features)
  return (loss.numpy(), [g.numpy() for g in grads],
          [v.numpy() for v in model.trainable_variables], convolutions)


def _assert_close(actual, expected):
  for a, e in zip(actual, expected):
    np.testing.assert_allclose(a, e, rtol=1e-4,
                               atol=1e-5 * max(np.abs(e).max(), 1e-3))


@pytest.mark.parametrize('variant', [
    variant for variant in layers.CONV_IMPLEMENTATIONS
    if variant != compare.BASELINE])
def test_variant_matches_the_baseline(variant):
  loss, grads, weights, convolutions = _two_steps(_CONFIG, compare.BASELINE)
  new_loss, new_grads, new_weights, new_convolutions = _two_steps(_CONFIG,
                                                                  variant)
  assert convolutions == {compare.BASELINE}
  assert new_convolutions == {variant}
  np.testing.assert_allclose(new_loss, loss, rtol=1e-5)
  _assert_close(new_grads, grads)
  _assert_close(new_weights, weights)


def test_unknown_variant_is_rejected(capsys):
  with pytest.raises(SystemExit):
    compare.main(['--variants', 'native,winograd'])
  assert 'unknown variants winograd' in capsys.readouterr().err


def test_command_needs_data_and_no_variants():
  for argv in (['--command'],
               ['--command', '--data_dir=d', '--variants=native']):
    with pytest.raises(SystemExit):
      compare.main(argv)


def test_rounds_alternate_and_the_table_compares_medians(capsys):
  calls = []

  def measure(name, seconds):
    def call():
      calls.append(name)
      return {'train': seconds.pop(0)}
    return call

  results = compare.alternate(
      {'new': measure('new', [1.0, 3.0, 2.0]),
       'old': measure('old', [4.0, 4.0, 8.0])}, rounds=3)
  assert calls == ['new', 'old'] * 3
  assert results == {'new': {'train': [1.0, 3.0, 2.0]},
                     'old': {'train': [4.0, 4.0, 8.0]}}
  assert capsys.readouterr().out.splitlines()[0].startswith(
      'round 1: new train 1.000, old train 4.000 (load ')
  # Medians 2 and 4: new takes 0.5 of old's time.
  header, new, old = compare.table(results, reference='old')
  assert header.split() == ['train', 'range', '/', 'old']
  assert new.split() == ['new', '2.000', '[', '1.000,', '3.000]', '0.500']
  assert old.split() == ['old', '4.000', '[', '4.000,', '8.000]', '1.000']


# pylint: disable=protected-access
def test_probe_runs_in_the_tree_with_the_flags_it_parses():
  args = compare._parse_args(['--variants=fourier', '--repeats=2',
                              '--memory'])
  with mock.patch.object(compare, 'json_line',
                         return_value={'train': 1.0}) as run:
    assert compare._probe_in('/tree', args, 'fourier') == {'train': 1.0}
  [command], kwargs = run.call_args
  assert command[1:] == [compare.__file__, '--probe',
                         '--compute_dtype=float32', '--repeats=2',
                         '--variants=fourier', '--memory']
  assert kwargs['cwd'] == kwargs['env']['PYTHONPATH'] == '/tree'
  child = compare._parse_args(command[2:])
  assert (child.probe, child.variants, child.repeats, child.memory) == (
      True, 'fourier', 2, True)
