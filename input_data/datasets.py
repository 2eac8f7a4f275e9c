"""The data sets by name: `--dataset` to an input function.

DATASETS maps each name to the `prepare` and `inputs` of its folder's
`dataset.py` (`interface`); `input_fn` prepares a split, then reads it.
"""

from typing import Callable, Dict, Optional

import tensorflow as tf

import errors
from input_data.affnist import dataset as affnist
from input_data.cifar10 import dataset as cifar10
from input_data import interface
from input_data.mnist import canvas
from input_data.mnist import dataset as mnist
from input_data.mnist import generated_input
from input_data.norb import dataset as norb
from input_data.svhn import dataset as svhn

# `input_fn(split, batch_size, input_context=None)`.
InputFn = Callable[..., tf.data.Dataset]

_TRAIN_TEST = ('train', 'test')
_TEST = ('test',)
DataSet = interface.DataSet

# In the order of experiment.py's --dataset flag.
DATASETS: Dict[str, DataSet] = {d.name: d for d in [
    DataSet(name='mnist', splits=_TRAIN_TEST, prepare=mnist.prepare,
            inputs=mnist.inputs, validate=True),
    DataSet(name='norb', splits=_TRAIN_TEST, prepare=norb.prepare,
            inputs=norb.inputs),
    DataSet(name='cifar10', splits=_TRAIN_TEST, prepare=cifar10.prepare,
            inputs=cifar10.inputs),
    DataSet(name='expanded_mnist', splits=_TRAIN_TEST,
            prepare=mnist.prepare_digits, inputs=mnist.expanded_inputs,
            validate=True),
    DataSet(name='affnist', splits=_TEST, prepare=affnist.prepare,
            inputs=affnist.inputs, train_on='expanded_mnist'),
    DataSet(name='affine_mnist', splits=_TEST, prepare=mnist.prepare_digits,
            inputs=affnist.affine_inputs, train_on='expanded_mnist'),
    DataSet(name='svhn', splits=_TRAIN_TEST, prepare=svhn.prepare,
            inputs=svhn.inputs),
]}


def input_fn(dataset: str, *, data_dir: Optional[str], num_targets: int = 1,
             validate: bool = False,
             multi_mnist_shift: str = canvas.DEFAULT_MULTI_MNIST_SHIFT,
             num_pairs: int = generated_input.DEFAULT_NUM_PAIRS,
             seed: int = 0,
             eval_size: int = generated_input.DEFAULT_EVAL_SIZE) -> InputFn:
  """Returns `input_fn(split, batch_size, input_context=None)` of a data set.

  dataset is one of DATASETS; the other arguments are `interface.Options`'.
  ConfigError for an unknown data set, a missing data_dir, or validate
  with a data set that has no validation files; the input function raises
  as `prepare_split` does, then as the readers do (`interface`).
  """
  data_set = _data_set(dataset, data_dir=data_dir, validate=validate)
  options = interface.Options(
      data_dir=data_dir, num_targets=num_targets, validate=validate,
      multi_mnist_shift=multi_mnist_shift, num_pairs=num_pairs, seed=seed,
      eval_size=eval_size)

  def read(split: str, batch_size: int,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
    _prepare(data_set, split, options)
    return data_set.inputs(split, options, batch_size=batch_size,
                           input_context=input_context)
  return read


def prepare_split(dataset: str, split: str, *, data_dir: Optional[str],
                  num_targets: int = 1, validate: bool = False) -> None:
  """Makes, or only checks, the files that a split of a data set reads.

  What the input function of `input_fn` does before it reads, without
  reading: a tool calls it for every split it will read before it starts
  work that takes hours (`paper.reproduce` does, so a missing affNIST file
  stops it before training). Arguments and errors as `input_fn`'s, and
  ConfigError for a split the data set lacks.
  """
  _prepare(_data_set(dataset, data_dir=data_dir, validate=validate), split,
           interface.Options(data_dir=data_dir, num_targets=num_targets,
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


def _prepare(data_set: DataSet, split: str,
             options: interface.Options) -> None:
  """Prepares a split of data_set; ConfigError saying what to do if none."""
  if split in data_set.splits:
    data_set.prepare(split, options)
    return
  if data_set.train_on:
    raise errors.ConfigError(
        f'{data_set.name} is a test set only; train on {data_set.train_on} '
        f'and evaluate on {data_set.name} (got split {split!r})')
  raise errors.ConfigError(
      f'split must be {" or ".join(data_set.splits)}, got {split!r}')
