"""What every data-set folder provides, and what every reader promises.

Each folder's `dataset.py` (mnist, norb, cifar10, affnist, svhn) has, per
data set, `prepare(split, options)`, which makes the files the split reads
when they are missing, or checks that they are there, reading none; and
`inputs(split, options, *, batch_size, input_context)`, which reads the
prepared split. `datasets.DATASETS` maps the names to them.

Every reader (the `inputs` of these modules, and the readers they call)
returns a `tf.data.Dataset` of feature dictionaries, channels first, every
dimension but the batch static:
  images: float32 `[batch, depth, height, width]`.
  labels: float32 `[batch, classes]`, one-hot (two-hot for MultiMNIST).
  recons_image, recons_label: the image to rebuild and its int32 class.
  spare_image, spare_label: the second digit (MultiMNIST only).
The train split is shuffled, endless and in full batches of batch_size; the
test split is read once, in order, the last batch possibly smaller.
`input_context` is this input pipeline's place among several (multi-worker
training, `tf.distribute.InputContext`): it reads, or makes, only its share
of the examples, before parsing them; None reads all. Readers raise
errors.ConfigError for a bad split or option, errors.MissingDataError for a
missing file (the message says how to make or get it), errors.DataError for
a damaged one (truncated, corrupt, empty, or of the wrong image size).
"""

import dataclasses
from typing import Callable, Optional, Tuple

import tensorflow as tf

from input_data.mnist import canvas
from input_data.mnist import generated_input


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
  """What a data set is read with: the arguments of `datasets.input_fn`.

  Attributes:
    data_dir: the data directory, where missing records are written (for
      MultiMNIST records a `path/name.tfrecords@N` pattern, read as it is).
    num_targets: digits per image, 1 or 2 (MultiMNIST). For mnist with 2
      and a data_dir that is a directory (no `@N`), the pairs are generated
      on the fly from the digits (`generated_input`).
    validate: read the train/validation splits (mnist, expanded_mnist).
    multi_mnist_shift, num_pairs: generated MultiMNIST's (`generated_input`).
    seed: seed of the generated data sets (MultiMNIST, expanded_mnist,
      affine_mnist); `mnist_shift --multi_targets --seed` writes the same
      MultiMNIST pairs.
    eval_size: examples of the generated test sets.
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).
  """
  data_dir: str
  num_targets: int = 1
  validate: bool = False
  multi_mnist_shift: str = canvas.DEFAULT_MULTI_MNIST_SHIFT
  num_pairs: int = generated_input.DEFAULT_NUM_PAIRS
  seed: int = 0
  eval_size: int = generated_input.DEFAULT_EVAL_SIZE
  tfds_data_dir: Optional[str] = None

  def file_split(self, split: str) -> str:
    return f'valid_{split}' if self.validate else split


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSet:
  """A data set of `--dataset`, a key of `datasets.DATASETS`.

  Its splits are train and test, or test only for a set whose models train on
  `train_on`; prepare and inputs are the functions of the module doc; validate
  says whether `Options.validate` can read validation splits.
  """
  name: str
  splits: Tuple[str, ...]
  prepare: Callable[[str, Options], object]
  inputs: Callable[..., tf.data.Dataset]
  validate: bool = False
  train_on: Optional[str] = None
