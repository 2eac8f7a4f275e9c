"""Input pipelines that generate MultiMNIST and expanded MNIST on the fly.

The examples are made round by round by `canvas.MultiMnist` and
`canvas.ExpandedMnist` from a split's uint8 digits. Training gets an endless
stream, each round drawn anew; testing gets a fixed set of eval_size
examples: the first eval_size pairs of the MultiMNIST stream, or for
expanded MNIST digit k % num_digits k-th at a position fixed by the seed.

Each input pipeline of a multi-worker run generates only its own share
(`records.shard`): it makes the plans of all examples, a few integers each,
and the images of its own only.

On 2 CPU cores the MultiMNIST pipeline makes about 40,000 pairs/s from
MNIST's 60,000 training digits (the paper's batch of 128; about 60,000/s on
an otherwise idle machine):
  python -m benchmarks.input_benchmark   # the line 'MultiMNIST generated'
"""

import math
from typing import Callable, NamedTuple, Optional

import numpy as np
import tensorflow as tf

import errors
from input_data.mnist import canvas
from input_data.mnist import mnist_input_record
from input_data import records

# The paper tests on 10M pairs (1,000 per test digit); one pair per test
# digit keeps an evaluation as cheap as MNIST's (binomial standard error
# about 0.2% at a 5% error rate).
DEFAULT_EVAL_SIZE = 10000
# Pairs per training digit and epoch, as in the paper (60M per epoch).
DEFAULT_NUM_PAIRS = 1000


def _plan_batches(plan: Callable[[tf.Tensor], NamedTuple], num_images: int,
                  *, train: bool, eval_size: int, batch_size: int,
                  input_context: Optional[tf.distribute.InputContext]
                 ) -> tf.data.Dataset:
  """This pipeline's batches of the rows of `plan(round)`, num_images each."""
  if train:
    rounds = tf.data.Dataset.counter()
  else:
    rounds = tf.data.Dataset.range(math.ceil(eval_size / num_images))
  rows = rounds.map(plan).unbatch()
  if not train:
    rows = rows.take(eval_size)
  rows = records.shard(rows, input_context)
  return rows.batch(batch_size, drop_remainder=train)


def multi_mnist_inputs(split: str, *, images: np.ndarray,
                       labels: np.ndarray, batch_size: int,
                       shift: str = canvas.DEFAULT_MULTI_MNIST_SHIFT,
                       num_pairs: int = DEFAULT_NUM_PAIRS, seed: int = 0,
                       eval_size: int = DEFAULT_EVAL_SIZE,
                       input_context: Optional[tf.distribute.InputContext]
                       = None) -> tf.data.Dataset:
  """MultiMNIST pairs (36x36) generated from a split's uint8 digits.

  shift is a name in `canvas.MULTI_MNIST_SHIFTS`; num_pairs and seed as
  `canvas.MultiMnist`.
  """
  if shift not in canvas.MULTI_MNIST_SHIFTS:
    raise errors.ConfigError(
        f'unknown MultiMNIST shift {shift!r}; use one of '
        f'{", ".join(canvas.MULTI_MNIST_SHIFTS)}')
  train = records.train_split(split)
  generator = canvas.MultiMnist(
      images, labels, shift=canvas.MULTI_MNIST_SHIFTS[shift],
      pad=canvas.MULTI_MNIST_PAD, num_pairs=num_pairs, seed=seed)
  batches = _plan_batches(
      generator.plan, generator.num_images, train=train, eval_size=eval_size,
      batch_size=batch_size, input_context=input_context)

  def features(plan: canvas.PairPlan):
    pairs = generator.compose(plan)
    return mnist_input_record.pair_features(
        mnist_input_record.to_images(pairs.merged),
        mnist_input_record.to_images(pairs.image_1), pairs.label_1,
        mnist_input_record.to_images(pairs.image_2), pairs.label_2)
  return records.map_batches(batches, features)


def expanded_mnist_inputs(split: str, *, images: np.ndarray,
                          labels: np.ndarray, batch_size: int, seed: int = 0,
                          eval_size: int = DEFAULT_EVAL_SIZE,
                          input_context: Optional[tf.distribute.InputContext]
                          = None) -> tf.data.Dataset:
  """Expanded MNIST (digits at random on a 40x40 canvas), generated."""
  train = records.train_split(split)
  generator = canvas.ExpandedMnist(images, labels, seed=seed)
  batches = _plan_batches(
      lambda round_index: generator.plan(round_index, shuffle=train),
      generator.num_images, train=train, eval_size=eval_size,
      batch_size=batch_size, input_context=input_context)

  def features(plan: canvas.PlacementPlan):
    labels, pixels = generator.compose(plan)
    return mnist_input_record.digit_features(
        mnist_input_record.to_images(pixels), labels)
  return records.map_batches(batches, features)
