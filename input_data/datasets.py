"""The data sets by name: `--dataset` to an input function.

`input_fn(dataset, data_dir=...)` returns `input_fn(split, batch_size,
input_context=None)`, which gives a `tf.data.Dataset` of feature dictionaries
(`images` `[batch, depth, height, width]`, `labels`, `recons_image`,
`recons_label`, and for two targets `spare_image`, `spare_label`): the train
split shuffled, endless and in full batches, the test split read once in
order. Under a `tf.distribute` strategy each input pipeline passes its
`tf.distribute.InputContext` and reads only its share of the records.

DATASETS maps each name to a `DataSet`: the splits it has, `prepare`, which
makes the files a split reads when they are missing (see `prepare`: from the
original files in data_dir, else tensorflow-datasets) or checks that they
are there, and `inputs`, which reads them. The input function prepares a
split, then reads it; `prepare_split` prepares only.
"""

import dataclasses
import os
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

import errors
from input_data.affnist import affine_mnist
from input_data.affnist import affnist_input
from input_data.cifar10 import cifar10_input
from input_data.mnist import canvas
from input_data.mnist import generated_input
from input_data.mnist import mnist_input_record
from input_data.norb import norb_input_record
from input_data import prepare
from input_data import records
from input_data.svhn import svhn_input

# `input_fn(split, batch_size, input_context=None)`.
InputFn = Callable[..., tf.data.Dataset]

_TRAIN_TEST = ('train', 'test')
_TEST = ('test',)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
  """What a data set is read with: the arguments of `input_fn`.

  Attributes:
    data_dir: the data directory (for MultiMNIST records a `path@N`
      pattern).
    num_targets: digits per image, 1 or 2 (MultiMNIST).
    validate: read the validation splits.
    multi_mnist_shift: generated MultiMNIST's shift, a name in
      `canvas.MULTI_MNIST_SHIFTS`.
    num_pairs: generated MultiMNIST's pairs per digit and epoch.
    seed: seed of the generated data sets.
    eval_size: examples of the generated test sets.
  """
  data_dir: str
  num_targets: int = 1
  validate: bool = False
  multi_mnist_shift: str = canvas.DEFAULT_MULTI_MNIST_SHIFT
  num_pairs: int = generated_input.DEFAULT_NUM_PAIRS
  seed: int = 0
  eval_size: int = generated_input.DEFAULT_EVAL_SIZE

  def file_split(self, split: str) -> str:
    """The split of the files: `valid_{split}` when validating."""
    return f'valid_{split}' if self.validate else split


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSet:
  """A data set of `--dataset`: its splits, and how to make and read them.

  Attributes:
    name: the name, a key of DATASETS.
    splits: the splits it has: train and test, or test only (evaluation
      only: models trained on `train_on` are tested on it).
    prepare: `prepare(split, options)` makes the files the split reads
      when they are missing, or checks that they are there, reading none.
    inputs: `inputs(split, options, *, batch_size, input_context)` reads
      the prepared split: the dataset of feature dictionaries.
    validate: whether `Options.validate` can read validation splits.
    train_on: for a test set only, the data set its models train on.
  """
  name: str
  splits: Tuple[str, ...]
  prepare: Callable[[str, Options], None]
  inputs: Callable[..., tf.data.Dataset]
  validate: bool = False
  train_on: Optional[str] = None


def _mnist_digits(split: str,
                  options: Options) -> Tuple[np.ndarray, np.ndarray]:
  """The uint8 digits and labels of a split (its validation part if asked)."""
  return prepare.mnist_digits(options.file_split(split),
                              data_dir=options.data_dir)


def _generates_multi_mnist(options: Options) -> bool:
  """Whether mnist is MultiMNIST made on the fly, not read from records."""
  return options.num_targets == 2 and '@' not in options.data_dir


def _prepare_mnist(split: str, options: Options) -> None:
  """The single-digit records, the MultiMNIST shards, or the digits."""
  if options.num_targets not in (1, 2):
    raise errors.ConfigError(
        f'num_targets must be 1 or 2, got {options.num_targets}')
  if options.num_targets == 1:
    prepare.prepare_mnist(split, data_dir=options.data_dir,
                          validate=options.validate)
  elif _generates_multi_mnist(options):
    prepare.prepare_mnist_digits(options.file_split(split),
                                 data_dir=options.data_dir)
  else:
    mnist_input_record.require_multi_records(options.data_dir)


def _mnist_inputs(split: str, options: Options, *, batch_size: int,
                  input_context: Optional[tf.distribute.InputContext]
                 ) -> tf.data.Dataset:
  """Single digits or MultiMNIST records, or MultiMNIST made from digits."""
  if _generates_multi_mnist(options):
    images, labels = _mnist_digits(split, options)
    return generated_input.multi_mnist_inputs(
        split, images=images, labels=labels, batch_size=batch_size,
        shift=options.multi_mnist_shift, num_pairs=options.num_pairs,
        seed=options.seed, eval_size=options.eval_size,
        input_context=input_context)
  return mnist_input_record.inputs(
      split, data_dir=options.data_dir, batch_size=batch_size,
      num_targets=options.num_targets, height=None,
      validate=options.validate, input_context=input_context)


def _prepare_digits(split: str, options: Options) -> None:
  """The digits that generated data sets are made from."""
  prepare.prepare_mnist_digits(options.file_split(split),
                               data_dir=options.data_dir)


def _expanded_mnist_inputs(split: str, options: Options, *, batch_size: int,
                           input_context: Optional[tf.distribute.InputContext]
                          ) -> tf.data.Dataset:
  images, labels = _mnist_digits(split, options)
  return generated_input.expanded_mnist_inputs(
      split, images=images, labels=labels, batch_size=batch_size,
      seed=options.seed, eval_size=options.eval_size,
      input_context=input_context)


def _affine_mnist_inputs(split: str, options: Options, *, batch_size: int,
                         input_context: Optional[tf.distribute.InputContext]
                        ) -> tf.data.Dataset:
  images, labels = _mnist_digits(split, options)
  return affine_mnist.inputs(
      split, images=images, labels=labels, batch_size=batch_size,
      seed=options.seed, eval_size=options.eval_size,
      input_context=input_context)


def _prepare_affnist(split: str, options: Options) -> None:
  del split  # The test split is the only one.
  affnist_input.test_files(options.data_dir)


def _affnist_inputs(split: str, options: Options, *, batch_size: int,
                    input_context: Optional[tf.distribute.InputContext]
                   ) -> tf.data.Dataset:
  return affnist_input.inputs(split, data_dir=options.data_dir,
                              batch_size=batch_size,
                              input_context=input_context)


def _prepare_norb(split: str, options: Options) -> None:
  prepare.prepare_norb(split, data_dir=options.data_dir)


def _norb_inputs(split: str, options: Options, *, batch_size: int,
                 input_context: Optional[tf.distribute.InputContext]
                ) -> tf.data.Dataset:
  return norb_input_record.inputs(split, data_dir=options.data_dir,
                                  batch_size=batch_size,
                                  input_context=input_context)


def _prepare_cifar10(split: str, options: Options) -> None:
  del split  # Both splits come from the same folder or tfds data set.
  prepare.prepare_cifar10(data_dir=options.data_dir)


def _cifar10_inputs(split: str, options: Options, *, batch_size: int,
                    input_context: Optional[tf.distribute.InputContext]
                   ) -> tf.data.Dataset:
  return cifar10_input.inputs(
      split, data_dir=os.path.join(options.data_dir, prepare.CIFAR10_BIN_DIR),
      batch_size=batch_size, source=prepare.cifar10_source(options.data_dir),
      input_context=input_context)


def _prepare_svhn(split: str, options: Options) -> None:
  del split, options  # tensorflow-datasets' svhn_cropped holds both splits.
  records.prepare_tfds(svhn_input.TFDS_NAME)


def _svhn_inputs(split: str, options: Options, *, batch_size: int,
                 input_context: Optional[tf.distribute.InputContext]
                ) -> tf.data.Dataset:
  del options  # Read from tensorflow-datasets' default folder.
  return svhn_input.inputs(split, batch_size=batch_size,
                           input_context=input_context)


# In the order of experiment.py's --dataset flag.
DATASETS: Dict[str, DataSet] = {d.name: d for d in [
    DataSet(name='mnist', splits=_TRAIN_TEST, prepare=_prepare_mnist,
            inputs=_mnist_inputs, validate=True),
    DataSet(name='norb', splits=_TRAIN_TEST, prepare=_prepare_norb,
            inputs=_norb_inputs),
    DataSet(name='cifar10', splits=_TRAIN_TEST, prepare=_prepare_cifar10,
            inputs=_cifar10_inputs),
    DataSet(name='expanded_mnist', splits=_TRAIN_TEST,
            prepare=_prepare_digits, inputs=_expanded_mnist_inputs,
            validate=True),
    DataSet(name='affnist', splits=_TEST, prepare=_prepare_affnist,
            inputs=_affnist_inputs, train_on='expanded_mnist'),
    DataSet(name='affine_mnist', splits=_TEST, prepare=_prepare_digits,
            inputs=_affine_mnist_inputs, train_on='expanded_mnist'),
    DataSet(name='svhn', splits=_TRAIN_TEST, prepare=_prepare_svhn,
            inputs=_svhn_inputs),
]}
# Evaluation only: models trained on expanded_mnist are tested on them.
TEST_ONLY_DATASETS = tuple(name for name, data_set in DATASETS.items()
                           if data_set.train_on)


def input_fn(dataset: str, *, data_dir: Optional[str], num_targets: int = 1,
             validate: bool = False,
             multi_mnist_shift: str = canvas.DEFAULT_MULTI_MNIST_SHIFT,
             num_pairs: int = generated_input.DEFAULT_NUM_PAIRS,
             seed: int = 0,
             eval_size: int = generated_input.DEFAULT_EVAL_SIZE) -> InputFn:
  """Returns `input_fn(split, batch_size, input_context=None)` of a data set.

  The input function prepares the split (`prepare_split`), then reads it.

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
    errors.ConfigError: for an unknown data set, a missing data_dir, or
      validate with a data set that has no validation files; the input
      function raises it for a split the data set lacks (the train split of
      a test-only data set), and raises as `prepare_split` does.
  """
  data_set = _data_set(dataset, data_dir=data_dir, validate=validate)
  options = Options(data_dir=data_dir, num_targets=num_targets,
                    validate=validate, multi_mnist_shift=multi_mnist_shift,
                    num_pairs=num_pairs, seed=seed, eval_size=eval_size)

  def read(split: str, batch_size: int,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
    _check_split(data_set, split)
    data_set.prepare(split, options)
    return data_set.inputs(split, options, batch_size=batch_size,
                           input_context=input_context)
  return read


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
    errors.ConfigError: as for `input_fn`, or a split the data set lacks.
    errors.MissingDataError: a file is missing and cannot be made; the
      message names what to place where.
    errors.DataError: a file is there but damaged.
  """
  data_set = _data_set(dataset, data_dir=data_dir, validate=validate)
  _check_split(data_set, split)
  data_set.prepare(split, Options(data_dir=data_dir, num_targets=num_targets,
                                  validate=validate))


def _data_set(dataset: str, *, data_dir: Optional[str],
              validate: bool) -> DataSet:
  """The registry's entry of a name, once the arguments are checked."""
  if dataset not in DATASETS:
    raise errors.ConfigError(
        f'unknown dataset {dataset!r}; use one of {", ".join(DATASETS)}')
  if not data_dir:
    raise errors.ConfigError('data_dir is required: pass --data_dir=<directory '
                             'of the data>')
  data_set = DATASETS[dataset]
  if validate and not data_set.validate:
    with_validation = [name for name, other in DATASETS.items()
                       if other.validate]
    raise errors.ConfigError(
        f'validate is only available for {" and ".join(with_validation)}, '
        f'not {dataset}')
  return data_set


def _check_split(data_set: DataSet, split: str) -> None:
  if split in data_set.splits:
    return
  if data_set.train_on:
    raise errors.ConfigError(
        f'{data_set.name} is a test set only; train on {data_set.train_on} '
        f'and evaluate on {data_set.name} (got split {split!r})')
  raise errors.ConfigError(
      f'split must be {" or ".join(data_set.splits)}, got {split!r}')
