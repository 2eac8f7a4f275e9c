"""svhn: SVHN's cropped digits (32x32x3), from tensorflow-datasets.

The paper trains on the 73,257 training images (not the 531,131 'extra'
ones) of tensorflow-datasets' `svhn_cropped` and reports 4.3% test error
with a smaller CapsNet. It names no preprocessing, so each image is
standardized to mean 0 and variance 1 as CIFAR10's are
(`image_ops.standardized_features`), at its full 32x32 and without
augmentation: no flips (digits are not mirror symmetric) and no crops (the
digit fills the frame). The batches are the feature dictionaries of
`interface`, 10 classes (0-9; tfds maps SVHN's 10 to 0).
"""

from typing import Optional

import tensorflow as tf

from input_data import image_ops
from input_data import interface
from input_data import records
from input_data import tfds_data

NUM_CLASSES = 10
IMAGE_SIZE = 32
DEPTH = 3
SHUFFLE_BUFFER = 10000
TFDS_NAME = 'svhn_cropped'


def prepare(split: str, options: interface.Options) -> None:
  """Prepares tensorflow-datasets' svhn_cropped, which holds both splits."""
  del split
  tfds_data.prepare_tfds(TFDS_NAME, tfds_data_dir=options.tfds_data_dir)


def inputs(split: str, options: interface.Options, *, batch_size: int,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  """Reads SVHN batches from tensorflow-datasets (not from data_dir)."""
  train = records.train_split(split)
  return records.batch_dataset(
      tfds_data.tfds_images(TFDS_NAME, split,
                              tfds_data_dir=options.tfds_data_dir,
                              input_context=input_context),
      lambda images, labels: image_ops.standardized_features(
          tf.cast(images, tf.float32), tf.cast(labels, tf.int32), NUM_CLASSES),
      batch_size=batch_size, train=train, shuffle_buffer=SHUFFLE_BUFFER)
