"""The data sets by name: `--dataset` to an input function.

`input_fn(dataset, data_dir=...)` returns `input_fn(split, batch_size,
input_context=None)`, which gives a `tf.data.Dataset` of feature dictionaries
(`images` `[batch, depth, height, width]`, `labels`, `recons_image`,
`recons_label`, and for two targets `spare_image`, `spare_label`): the train
split shuffled, endless and in full batches, the test split read once in
order. Under a `tf.distribute` strategy each input pipeline passes its
`tf.distribute.InputContext` and reads only its share of the records. Before
reading, the input function makes the split's files when they are missing
(see `prepare`: from the original files in data_dir, else
tensorflow-datasets).
"""

import os
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from input_data import prepare
from input_data import records
from input_data.affnist import affine_mnist
from input_data.affnist import affnist_input
from input_data.cifar10 import cifar10_input
from input_data.mnist import canvas
from input_data.mnist import generated_input
from input_data.mnist import mnist_input_record
from input_data.norb import norb_input_record
from input_data.svhn import svhn_input

DATASETS = ('mnist', 'norb', 'cifar10', 'expanded_mnist', 'affnist',
            'affine_mnist', 'svhn')
# Evaluation only: models trained on expanded_mnist are tested on them.
TEST_ONLY_DATASETS = ('affnist', 'affine_mnist')

# `input_fn(split, batch_size, input_context=None)`.
InputFn = Callable[..., tf.data.Dataset]


def input_fn(dataset: str, *, data_dir: Optional[str], num_targets: int = 1,
             validate: bool = False,
             multi_mnist_shift: str = canvas.DEFAULT_MULTI_MNIST_SHIFT,
             num_pairs: int = generated_input.DEFAULT_NUM_PAIRS,
             seed: int = 0,
             eval_size: int = generated_input.DEFAULT_EVAL_SIZE) -> InputFn:
  """Returns `input_fn(split, batch_size, input_context=None)` of a data set.

  Args:
    dataset: one of DATASETS.
    data_dir: the data directory, where missing records are written (for
      cifar10 the one that may hold cifar-10-batches-bin/; for MultiMNIST
      records a `path/name.tfrecords@N` pattern, read as it is).
    num_targets: digits per image, 1 or 2 (MultiMNIST). For mnist with 2
      and a data_dir that is a directory (no `@N`), the pairs are generated
      on the fly from the digits (`generated_input.multi_mnist_inputs`).
    validate: read the train/validation splits (mnist, expanded_mnist).
    multi_mnist_shift: generated MultiMNIST's shift, a name in
      `canvas.MULTI_MNIST_SHIFTS`.
    num_pairs: generated MultiMNIST's pairs per digit and epoch.
    seed: seed of the generated data sets (MultiMNIST, expanded_mnist,
      affine_mnist); `mnist_shift --multi_targets --seed` writes the same
      MultiMNIST pairs.
    eval_size: examples of the generated test sets (MultiMNIST pairs,
      expanded_mnist and affine_mnist digits).

  Returns:
    The input function.

  Raises:
    ValueError: for an unknown data set, a missing data_dir, or validate with
      a data set that has no validation files; the input function raises
      for the train split of a test-only data set.
  """
  _check_arguments(dataset, data_dir=data_dir, validate=validate)
  if dataset == 'mnist':
    def mnist_input_fn(split, batch_size, input_context=None):
      if num_targets == 2 and '@' not in data_dir:
        images, labels = _mnist_digits(data_dir, split, validate)
        return generated_input.multi_mnist_inputs(
            images, labels, split=split, batch_size=batch_size,
            shift=multi_mnist_shift, num_pairs=num_pairs, seed=seed,
            eval_size=eval_size, input_context=input_context)
      if num_targets == 1:
        prepare.prepare_mnist(data_dir, split, validate=validate)
      return mnist_input_record.inputs(
          data_dir=data_dir, batch_size=batch_size, split=split,
          num_targets=num_targets, height=None, validate=validate,
          input_context=input_context)
    return mnist_input_fn
  if dataset == 'expanded_mnist':
    def expanded_mnist_input_fn(split, batch_size, input_context=None):
      images, labels = _mnist_digits(data_dir, split, validate)
      return generated_input.expanded_mnist_inputs(
          images, labels, split=split, batch_size=batch_size, seed=seed,
          eval_size=eval_size, input_context=input_context)
    return expanded_mnist_input_fn
  if dataset in TEST_ONLY_DATASETS:
    def test_only_input_fn(split, batch_size, input_context=None):
      _check_test_only(dataset, split)
      if dataset == 'affnist':
        return affnist_input.inputs(data_dir, batch_size=batch_size,
                                    input_context=input_context)
      images, labels = _mnist_digits(data_dir, 'test', validate=False)
      return affine_mnist.inputs(
          images, labels, batch_size=batch_size, seed=seed,
          eval_size=eval_size, input_context=input_context)
    return test_only_input_fn
  if dataset == 'svhn':
    return lambda split, batch_size, input_context=None: svhn_input.inputs(
        split, batch_size=batch_size, input_context=input_context)
  if dataset == 'norb':
    def norb_input_fn(split, batch_size, input_context=None):
      prepare.prepare_norb(data_dir, split)
      return norb_input_record.inputs(
          data_dir=data_dir, batch_size=batch_size, split=split,
          input_context=input_context)
    return norb_input_fn
  def cifar10_input_fn(split, batch_size, input_context=None):
    return cifar10_input.inputs(
        split=split, source=prepare.prepare_cifar10(data_dir),
        data_dir=os.path.join(data_dir, prepare.CIFAR10_BIN_DIR),
        batch_size=batch_size, input_context=input_context)
  return cifar10_input_fn


def prepare_split(dataset: str, split: str, *, data_dir: Optional[str],
                  num_targets: int = 1, validate: bool = False) -> None:
  """Makes, or only checks, the files that a split of a data set reads.

  What the input function of `input_fn` does before it reads, without
  reading: a tool calls it for every split it will read before it starts
  work that takes hours (`paper.reproduce` does, so a missing affNIST file
  stops it before training).

  Args:
    dataset: one of DATASETS.
    split: 'train' or 'test'.
    data_dir: as for `input_fn`.
    num_targets: as for `input_fn`.
    validate: as for `input_fn`.

  Raises:
    ValueError: as for `input_fn`, or the train split of a test-only set.
    FileNotFoundError: a file is missing and cannot be made; the message
      names what to place where.
  """
  _check_arguments(dataset, data_dir=data_dir, validate=validate)
  if dataset in TEST_ONLY_DATASETS:
    _check_test_only(dataset, split)
  file_split = f'valid_{split}' if validate else split
  if dataset == 'mnist' and num_targets == 1:
    prepare.prepare_mnist(data_dir, split, validate=validate)
  elif dataset == 'mnist' and '@' in data_dir:
    mnist_input_record.require_multi_records(data_dir)
  elif dataset in ('mnist', 'expanded_mnist'):
    prepare.prepare_mnist_digits(data_dir, file_split)
  elif dataset == 'affine_mnist':
    prepare.prepare_mnist_digits(data_dir, 'test')
  elif dataset == 'affnist':
    affnist_input.test_files(data_dir)
  elif dataset == 'norb':
    prepare.prepare_norb(data_dir, split)
  elif dataset == 'cifar10':
    prepare.prepare_cifar10(data_dir)
  else:
    records.prepare_tfds(svhn_input.TFDS_NAME)


def _check_arguments(dataset: str, *, data_dir: Optional[str],
                     validate: bool) -> None:
  if dataset not in DATASETS:
    raise ValueError(
        f'unknown dataset {dataset!r}; use one of {", ".join(DATASETS)}')
  if not data_dir:
    raise ValueError('data_dir is required: pass --data_dir=<directory of '
                     'the data>')
  if validate and dataset not in ('mnist', 'expanded_mnist'):
    raise ValueError('validate is only available for mnist and '
                     f'expanded_mnist, not {dataset}')


def _check_test_only(dataset: str, split: str) -> None:
  if split != 'test':
    raise ValueError(
        f'{dataset} is a test set only; train on expanded_mnist and '
        f'evaluate on {dataset} (got split {split!r})')


def _mnist_digits(data_dir: str, split: str,
                  validate: bool) -> Tuple[np.ndarray, np.ndarray]:
  """The uint8 digits and labels of a split (its validation part if asked)."""
  return prepare.mnist_digits(data_dir, 'valid_' + split if validate else split)
