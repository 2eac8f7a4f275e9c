"""The XLA step replicated as on several GPUs, on two logical CPUs.

TensorFlow compiles each replica's call of a `jit_compile` function on its
own device only when every device of the `MirroredStrategy` is a GPU
(`mirrored_run.call_for_each_replica`); on other devices it compiles all
replicas' calls into one function. The test forces the GPU's branch on the
two logical CPUs of conftest.py, so `Trainer(xla_step=True)` trains as on a
machine of two GPUs, and compares it with the same steps on one device.
"""

from typing import Dict, List, Optional

import keras
import numpy as np
import pytest
import tensorflow as tf
# pylint: disable-next=g-direct-tensorflow-import
from tensorflow.python.distribute import mirrored_run

from models import model as model_lib
from models import registry
from models import run_config
from models import training
import test_utils

# |two replicas - one device| / |one device| (Frobenius norms) of each
# weight and Adam moment, after the first step and after three. The first
# step's moments are the summed gradients: a replica's gradients counted
# twice, halved or left out would be off by a third or more. Measured on
# this project's CPU: float32 1e-6; float16 6e-4 and 7e-4; bfloat16 5e-3,
# then 2e-2 as Adam carries on the rounding of the replicas' batches of 2
# (one batch of 4 rounds otherwise).
TOLERANCES = {'float32': (1e-5, 1e-5), 'float16': (4e-3, 4e-3),
              'bfloat16': (2e-2, 1e-1)}


def _trainer(strategy: Optional[tf.distribute.Strategy],
             compute_dtype: str) -> training.Trainer:
  """A tiny capsule model with the XLA step; global batch 4.

  One routing iteration: XLA compiling three takes twice as long.
  """
  strategy = strategy or tf.distribute.get_strategy()
  keras.utils.set_random_seed(11)
  with strategy.scope():
    model = registry.build_model(
        test_utils.tiny_hparams(test_utils.TINY + ',routing=1'),
        model_type='capsule',
        shape=model_lib.DataShape(20, 1),
        config=model_lib.ModelConfig(compute_dtype=compute_dtype))
  return training.Trainer(model, strategy=strategy, config=run_config.RunConfig(
      train_batch_size=4, xla_step=True))


def _batch(seed: int) -> Dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(2, 1, 20, 20)).astype(np.float32)
  labels = rng.integers(0, 10, 2).astype(np.int32)
  return dict(images=images, labels=np.eye(10, dtype=np.float32)[labels],
              recons_image=images, recons_label=labels)


def _state(trainer: training.Trainer) -> Dict[str, List[np.ndarray]]:
  """Each replica's copy of every weight, Adam moment and step counter."""
  model = trainer.model
  return {name: [local.numpy() for local in
                 trainer.strategy.experimental_local_results(
                     getattr(var, 'value', var))]
          for name, var in dict(model.tf1_variable_map(),
                                **model.slot_map()).items()}


@pytest.mark.parametrize('compute_dtype', sorted(TOLERANCES))
def test_xla_step_compiled_per_replica_matches_one_device(
    compute_dtype, two_cpu_strategy, monkeypatch):
  """Replica 0 trains on one batch of 2, replica 1 on another; one device
  on both in one batch of 4."""
  monkeypatch.setattr(mirrored_run, '_is_gpu_device', lambda device: True)
  first, second = _batch(1), _batch(2)
  one = _trainer(None, compute_dtype)
  one_batches = one.repeat({key: np.concatenate([first[key], second[key]])
                            for key in first})
  two = _trainer(two_cpu_strategy, compute_dtype)
  # Consecutive batches go to consecutive replicas.
  two_batches = two.distribute(lambda _: tf.data.Dataset.from_tensors(
      first).concatenate(tf.data.Dataset.from_tensors(second)).repeat())
  traced = []
  compute_gradients = two.model.compute_gradients

  def counted(*args, **kwargs):
    traced.append(None)
    return compute_gradients(*args, **kwargs)

  monkeypatch.setattr(two.model, 'compute_gradients', counted)
  steps_done = 0
  for num_steps, tolerance in zip((1, 2), TOLERANCES[compute_dtype]):
    one.run(one_batches, num_steps)
    two.run(two_batches, num_steps)
    steps_done += num_steps
    expected, got = _state(one), _state(two)
    assert int(got['global_step'][0]) == steps_done
    assert int(expected['global_step'][0]) == steps_done
    for name, (want,) in expected.items():
      replica0, replica1 = got[name]
      np.testing.assert_array_equal(replica1, replica0, err_msg=name)
      error = np.linalg.norm(replica0 - want) / np.linalg.norm(want)
      assert error <= tolerance, f'{name} after {steps_done}: {error:.3g}'
  # One trace of the compiled replica function per replica, each tracing
  # one replica's gradients, kept for every call (TensorFlow's other branch
  # traces a copy of it once, for both replicas).
  replica_function = two._replica_gradients  # pylint: disable=protected-access
  assert (replica_function.experimental_get_tracing_count(),
          len(traced)) == (2, 2)
