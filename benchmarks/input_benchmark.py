"""Throughput of the input pipelines, in examples per second.

Reads batches from each pipeline, at the training and evaluation batch
sizes, out of random fixtures in each data set's layout (written by the
repository's own writers where there are some): small, so that they are
read from the page cache, as cached real data would be.

  python -m benchmarks.input_benchmark
"""

import os
import tempfile
import time
from typing import Callable, List, Tuple

import numpy as np
import tensorflow as tf

from input_data.cifar10 import cifar10_input
from input_data.mnist import generated_input
from input_data.mnist import mnist_input_record
from input_data.mnist import mnist_record_writer
from input_data.norb import norb_input_record
from input_data.norb import norb_record_writer
from models import devices
from models import run_config

WARMUP_BATCHES = 20
TIMED_BATCHES = 300
# Figures to reach on a 2-core CPU.
TARGETS = {'MNIST train': 20000, 'CIFAR10 train': 5000,
           'MultiMNIST generated': 10000}

_MNIST_IMAGES = 2000  # 25 shifted copies each in the training file
_MNIST_TEST_IMAGES = 10000
_MULTI_IMAGES = 1000
_MULTI_PAIRS = 20
_MULTI_MAX_SHARD = 5000
_CIFAR_RECORDS_PER_FILE = 2000
_NORB_RECORDS = 2000
_NORB_SIZE = 96


def _write_fixtures(root: str, rng: np.random.Generator) -> str:
  """Writes every fixture under root; returns the MultiMNIST pattern."""
  digits = rng.integers(0, 256, (_MNIST_TEST_IMAGES, 28, 28), np.uint8)
  labels = rng.integers(0, 10, _MNIST_TEST_IMAGES).astype(np.uint8)
  for split, shift, count in (('train', 2, _MNIST_IMAGES), ('test', 0, None)):
    mnist_record_writer.shift_write_mnist(
        digits[:count], labels=labels[:count], filename=os.path.join(
            root, mnist_record_writer.shifted_mnist_filename(split,
                                                             shift=shift)),
        shift=shift, pad=0)
  prefix = os.path.join(root, mnist_record_writer.shifted_mnist_filename(
      'train', shift=6, multi_targets=True))
  shards = mnist_record_writer.shift_write_multi_mnist(
      digits[:_MULTI_IMAGES], labels=labels[:_MULTI_IMAGES],
      file_prefix=prefix, shift=6, pad=4, max_shard=_MULTI_MAX_SHARD,
      num_pairs=_MULTI_PAIRS, seed=0)

  cifar_dir = os.path.join(root, 'cifar-10-batches-bin')
  os.makedirs(cifar_dir)
  for i in range(1, cifar10_input.NUM_TRAIN_FILES + 1):
    records = rng.integers(
        0, 256, (_CIFAR_RECORDS_PER_FILE, cifar10_input.RECORD_BYTES),
        np.uint8)
    records[:, 0] %= cifar10_input.NUM_CLASSES
    with open(os.path.join(cifar_dir, f'data_batch_{i}.bin'), 'wb') as f:
      f.write(records.tobytes())

  norb_record_writer.write_records(
      os.path.join(root, 'trainduo.tfrecords'),
      images=rng.integers(0, 256, (_NORB_RECORDS, 2, _NORB_SIZE, _NORB_SIZE),
                          np.uint8),
      labels=rng.integers(0, norb_input_record.NUM_CLASSES, _NORB_RECORDS),
      info=rng.integers(0, 18, (_NORB_RECORDS, 4)))
  return f'{prefix}@{len(shards)}'


def _examples_per_second(dataset: tf.data.Dataset, batches: int) -> float:
  """Reads WARMUP_BATCHES, then times `batches` more (cycling if needed)."""
  iterator = iter(dataset.repeat())
  for _ in range(WARMUP_BATCHES):
    next(iterator)
  examples = 0
  start = time.perf_counter()
  for _ in range(batches):
    examples += int(tf.shape(next(iterator)['images'])[0])
  return examples / (time.perf_counter() - start)


def run(root: str) -> List[Tuple[str, float]]:
  """Builds each pipeline on the fixtures in root and measures it."""
  multi_pattern = _write_fixtures(root, np.random.default_rng(0))
  cifar_dir = os.path.join(root, 'cifar-10-batches-bin')
  train_batch = run_config.TRAIN_BATCH_SIZE
  rng = np.random.default_rng(1)
  # As many digits as MNIST's training set: a round plans 60,000 pairs.
  digits = rng.integers(0, 256, (60000, 28, 28), np.uint8)
  digit_labels = rng.integers(0, 10, 60000)
  eval_batch = run_config.EVAL_BATCH_SIZE
  pipelines: List[Tuple[str, Callable[[], tf.data.Dataset]]] = [
      ('MNIST train', lambda: mnist_input_record.inputs(
          'train', data_dir=root, batch_size=train_batch, num_targets=1)),
      ('MNIST test', lambda: mnist_input_record.inputs(
          'test', data_dir=root, batch_size=eval_batch, num_targets=1)),
      ('MultiMNIST train', lambda: mnist_input_record.inputs(
          'train', data_dir=multi_pattern, batch_size=train_batch,
          num_targets=2)),
      ('MultiMNIST generated', lambda: generated_input.multi_mnist_inputs(
          'train', images=digits, labels=digit_labels,
          batch_size=train_batch)),
      ('CIFAR10 train', lambda: cifar10_input.inputs(
          'train', data_dir=cifar_dir, batch_size=train_batch)),
      ('NORB train', lambda: norb_input_record.inputs(
          'train', data_dir=root, batch_size=train_batch)),
  ]
  return [(name, _examples_per_second(build(), TIMED_BATCHES))
          for name, build in pipelines]


def main() -> None:
  devices.allow_gpu_memory_growth()
  print(f'{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}')
  with tempfile.TemporaryDirectory() as root:
    results = run(root)
  for name, rate in results:
    target = TARGETS.get(name)
    line = f'{name:<20} {rate:>10,.0f} examples/s'
    print(f'{line}  (target >= {target:,})' if target else line)


if __name__ == '__main__':
  main()
