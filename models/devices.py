"""The devices a run uses: GPU memory and the distribution strategy.

`experiment.py` calls these once, before it builds a model: the GPUs take
memory as they need it, and `make_strategy` gives the `tf.distribute`
strategy that places the replicas (one device, several GPUs, or several
workers).
"""

import os
from typing import List

import tensorflow as tf


def check_replicas(num_replicas: int, global_batch_size: int) -> None:
  """Raises ValueError unless the replicas split the global batch evenly."""
  if num_replicas < 1 or global_batch_size % num_replicas:
    raise ValueError(
        f'{num_replicas} replicas cannot split the global batch of '
        f'{global_batch_size} evenly; use a number of GPUs (times workers) '
        f'that divides {global_batch_size}')


def allow_gpu_memory_growth() -> List[str]:
  """Lets TensorFlow take GPU memory as it needs it, not all at start.

  So a training and an evaluation process share one GPU (the reference
  needed a second GPU or a memory cap for that). Must run before TensorFlow
  first touches a GPU; a no-op without GPUs. Returns the GPUs' names.
  """
  gpus = tf.config.list_physical_devices('GPU')
  for gpu in gpus:
    tf.config.experimental.set_memory_growth(gpu, True)
  return [gpu.name for gpu in gpus]


def make_strategy(num_gpus: int, *,
                  global_batch_size: int) -> tf.distribute.Strategy:
  """The distribution strategy for `num_gpus` replicas per worker.

  With `TF_CONFIG` set, a `MultiWorkerMirroredStrategy` over the workers it
  lists, each using its first `num_gpus` GPUs (or its CPU when it has none);
  otherwise a `MirroredStrategy` over `num_gpus` GPUs when `num_gpus > 1`,
  else the default strategy (one device).

  Raises:
    ValueError: if num_gpus does not divide the global batch or exceeds the
      GPUs this machine has.
  """
  check_replicas(num_gpus, global_batch_size)
  gpus = tf.config.list_physical_devices('GPU')
  if num_gpus > 1 and num_gpus > len(gpus):
    raise ValueError(f'num_gpus={num_gpus} but this machine has {len(gpus)} '
                     f'GPUs')
  if 'TF_CONFIG' in os.environ:
    if gpus:
      tf.config.set_visible_devices(gpus[:num_gpus], 'GPU')
    return tf.distribute.MultiWorkerMirroredStrategy()
  if num_gpus > 1:
    return tf.distribute.MirroredStrategy(
        [f'/gpu:{i}' for i in range(num_gpus)])
  return tf.distribute.get_strategy()
