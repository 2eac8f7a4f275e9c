"""SVHN (cropped digits, 32x32x3) from tensorflow-datasets' `svhn_cropped`.

The paper trains on the 73,257 training images (not the 531,131 'extra'
ones) and reports 4.3% test error with a smaller CapsNet. It names no
preprocessing, so each image is standardized to mean 0 and variance 1 as
CIFAR10's are (`image_ops.standardized_features`), at its full 32x32 and
without augmentation: no flips (digits are not mirror symmetric) and no
crops (the digit fills the frame).

Each batch is a dictionary of tensors:
  images: float32 `[batch, 3, 32, 32]`, channels first.
  labels: float32 `[batch, 10]`, one-hot.
  recons_image: the images again.
  recons_label: int32 `[batch]`, the digit (0-9; tfds maps SVHN's 10 to 0).
"""

from typing import Optional

import tensorflow as tf

import errors
from input_data import image_ops
from input_data import records

NUM_CLASSES = 10
IMAGE_SIZE = 32
DEPTH = 3
SHUFFLE_BUFFER = 10000
TFDS_NAME = 'svhn_cropped'


def inputs(split: str, *, batch_size: int, tfds_data_dir: Optional[str] = None,
           batch_capacity: int = SHUFFLE_BUFFER,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  """Reads SVHN batches for training or testing.

  Training batches are shuffled, endless and all of batch_size examples;
  test batches hold every example once, in stored order, the last one
  possibly smaller.

  Args:
    split: 'train' or 'test'.
    batch_size: examples per batch.
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).
    batch_capacity: examples in the training shuffle buffer.
    input_context: this input pipeline's place among several; it reads
      every N-th example. None: all.

  Returns:
    A dataset of feature dictionaries (see the module doc).

  Raises:
    errors.ConfigError: on a bad split.
    errors.MissingDataError: see `records.load_tfds`.
  """
  if split not in ('train', 'test'):
    raise errors.ConfigError(f'split must be train or test, got {split!r}')
  train = split == 'train'
  dataset = records.load_tfds(TFDS_NAME, split, tfds_data_dir=tfds_data_dir)
  dataset = records.shard(dataset, input_context)
  dataset = dataset.map(lambda example: (example['image'], example['label']))
  dataset = records.batch_dataset(dataset, batch_size=batch_size, train=train,
                                  shuffle_buffer=batch_capacity)
  return dataset.map(
      lambda images, labels: image_ops.standardized_features(
          tf.cast(images, tf.float32), tf.cast(labels, tf.int32), NUM_CLASSES),
      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
