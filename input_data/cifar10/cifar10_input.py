"""Input pipeline for CIFAR-10, from the binary batches or tensorflow-datasets.

The binary version (https://www.cs.toronto.edu/~kriz/cifar.html) holds
`data_batch_1.bin` ... `data_batch_5.bin` (training) and `test_batch.bin`,
records of one label byte and 3072 image bytes, channels first (3x32x32).

Training crops a random 24x24 window, flips it left-right at random, and
changes its brightness (by up to 63 on the [0, 255] scale) and contrast (a
factor in [0.2, 1.8]); testing crops the central 24x24 window. Both then
standardize each image to mean 0 and variance 1.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

import errors
from input_data import image_ops
from input_data import records
from input_data import tfds_data

NUM_CLASSES = 10
IMAGE_SIZE = 32
DEPTH = 3
CROPPED_SIZE = 24
LABEL_BYTES = 1
RECORD_BYTES = LABEL_BYTES + IMAGE_SIZE * IMAGE_SIZE * DEPTH
NUM_TRAIN_FILES = 5
MAX_BRIGHTNESS_DELTA = 63.0
CONTRAST_RANGE = (0.2, 1.8)
SHUFFLE_BUFFER = 10000
CIFAR_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'


def _filenames(data_dir: str, split: str) -> List[str]:
  """The binary batches of a split."""
  if split == 'train':
    return [os.path.join(data_dir, f'data_batch_{i}.bin')
            for i in range(1, NUM_TRAIN_FILES + 1)]
  return [os.path.join(data_dir, 'test_batch.bin')]


def _check_binary_files(paths: Sequence[str], how_to_create: str) -> None:
  """Raises unless every file holds a whole, non-zero number of records."""
  # The records carry no checksum, so a truncated file is the damage that can
  # be detected; FixedLengthRecordDataset would silently drop its tail.
  records.require_files(paths, how_to_create)
  for path in paths:
    size = tf.io.gfile.stat(path).length
    if size == 0 or size % RECORD_BYTES:
      raise errors.DataError(
          f'{path} is truncated or not a CIFAR-10 binary batch: {size} bytes '
          f'is not a whole number of {RECORD_BYTES}-byte records. Recreate '
          f'it with:\n  {how_to_create}')


def _decode(records_batch: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """uint8 images `[batch, 32, 32, 3]` and int32 labels of binary records."""
  data = records.decode_pixels(records_batch, [RECORD_BYTES])
  images = tf.reshape(data[:, LABEL_BYTES:],
                      [-1, DEPTH, IMAGE_SIZE, IMAGE_SIZE])
  return tf.transpose(images, [0, 2, 3, 1]), tf.cast(data[:, 0], tf.int32)


def _sample_distortions(batch_size: tf.Tensor) -> Dict[str, tf.Tensor]:
  """The random training distortion of each image (offsets, flips, ...)."""
  return {
      'offsets': image_ops.random_offsets(batch_size, IMAGE_SIZE,
                                          CROPPED_SIZE),
      'flips': tf.random.uniform([batch_size]) < 0.5,
      'brightness': tf.random.uniform([batch_size], -MAX_BRIGHTNESS_DELTA,
                                      MAX_BRIGHTNESS_DELTA),
      'contrast': tf.random.uniform([batch_size], *CONTRAST_RANGE),
  }


def _distort(images: tf.Tensor,
             distortions: Dict[str, tf.Tensor]) -> tf.Tensor:
  """Crop, flip, brightness and contrast, in the reference's order."""
  images = image_ops.crop(images, distortions['offsets'], CROPPED_SIZE)
  images = image_ops.flip_left_right(images, distortions['flips'])
  images = image_ops.adjust_brightness(images, distortions['brightness'])
  return image_ops.adjust_contrast(images, distortions['contrast'])


def features(images: tf.Tensor, labels: tf.Tensor,
                train: bool) -> Dict[str, tf.Tensor]:
  """Distorts or centre-crops, standardizes, and builds the features."""
  images = tf.cast(images, tf.float32)
  if train:
    images = _distort(images, _sample_distortions(tf.shape(images)[0]))
  else:
    images = tf.image.resize_with_crop_or_pad(images, CROPPED_SIZE,
                                              CROPPED_SIZE)
  return image_ops.standardized_features(images, labels, NUM_CLASSES)


def inputs(split: str, *,
           data_dir: Optional[str],
           batch_size: int,
           source: str = 'bin',
           tfds_data_dir: Optional[str] = None,
           batch_capacity: int = SHUFFLE_BUFFER,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  """Reads CIFAR-10 batches, as every reader (`interface`).

  source: 'bin' for the binary batches in data_dir, 'tfds' for
  tensorflow-datasets' cifar10. batch_capacity is the training shuffle buffer.
  """
  train = records.train_split(split)
  if source == 'bin':
    paths = _filenames(data_dir, split)
    _check_binary_files(paths, (
        f'wget {CIFAR_URL} && tar -xzf cifar-10-binary.tar.gz -C '
        f'{os.path.dirname(os.path.normpath(data_dir))}   (extracts '
        'cifar-10-batches-bin/), or use source=\'tfds\''))
    dataset = records.read_files(
        paths, train=train,
        reader=lambda path: tf.data.FixedLengthRecordDataset(path,
                                                             RECORD_BYTES),
        input_context=input_context)
    decode = _decode
  elif source == 'tfds':
    dataset = tfds_data.tfds_images('cifar10', split,
                                  tfds_data_dir=tfds_data_dir,
                                  input_context=input_context)
    decode = lambda images, labels: (images, tf.cast(labels, tf.int32))
  else:
    raise errors.ConfigError(f'source must be bin or tfds, got {source!r}')
  return records.batch_dataset(
      dataset, lambda *batch: features(*decode(*batch), train),
      batch_size=batch_size, train=train, shuffle_buffer=batch_capacity)
