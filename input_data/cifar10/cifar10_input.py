"""Input pipeline for CIFAR-10, from the binary batches or tensorflow-datasets.

The binary version (https://www.cs.toronto.edu/~kriz/cifar.html) holds
`data_batch_1.bin` ... `data_batch_5.bin` (training) and `test_batch.bin`,
records of one label byte and 3072 image bytes, channels first (3x32x32).

Training crops a random 24x24 window, flips it left-right at random, and
changes its brightness (by up to 63 on the [0, 255] scale) and contrast (a
factor in [0.2, 1.8]); testing crops the central 24x24 window. Both then
standardize each image to mean 0 and variance 1.

Each batch is a dictionary of tensors:
  images: float32 `[batch, 3, 24, 24]`, channels first.
  labels: float32 `[batch, 10]`, one-hot.
  recons_image: the images again.
  recons_label: int32 `[batch]`, the class.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

import errors
from input_data import image_ops
from input_data import records

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
  if split == 'train':
    return [os.path.join(data_dir, f'data_batch_{i}.bin')
            for i in range(1, NUM_TRAIN_FILES + 1)]
  return [os.path.join(data_dir, 'test_batch.bin')]


def _download_command(data_dir: str) -> str:
  return (f'wget {CIFAR_URL} && tar -xzf cifar-10-binary.tar.gz -C '
          f'{os.path.dirname(os.path.normpath(data_dir))}   (extracts '
          'cifar-10-batches-bin/), or use source=\'tfds\'')


def _check_binary_files(paths: Sequence[str], how_to_create: str) -> None:
  """Raises unless every file holds a whole, non-zero number of records.

  The records carry no checksum, so a truncated file is the damage that can
  be detected; FixedLengthRecordDataset would silently drop its tail.

  Args:
    paths: the binary batches.
    how_to_create: the command that downloads them, for error messages.

  Raises:
    errors.MissingDataError: if a file is missing.
    errors.DataError: if a file's size is not a multiple of RECORD_BYTES
      (or is zero).
  """
  records.require_files(paths, how_to_create)
  for path in paths:
    size = tf.io.gfile.stat(path).length
    if size == 0 or size % RECORD_BYTES:
      raise errors.DataError(
          f'{path} is truncated or not a CIFAR-10 binary batch: {size} bytes '
          f'is not a whole number of {RECORD_BYTES}-byte records. Recreate '
          f'it with:\n  {how_to_create}')


def _decode(records_batch: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """Splits binary records into images and labels.

  Args:
    records_batch: string `[batch]`, RECORD_BYTES each.

  Returns:
    uint8 images `[batch, 32, 32, 3]` (channels last) and int32 labels
    `[batch]`.
  """
  data = tf.io.decode_raw(records_batch, tf.uint8)
  labels = tf.cast(data[:, 0], tf.int32)
  images = tf.reshape(data[:, LABEL_BYTES:],
                      [-1, DEPTH, IMAGE_SIZE, IMAGE_SIZE])
  # Keeps the static batch size of training batches, which reshape loses.
  images.set_shape(records_batch.shape.concatenate(
      [DEPTH, IMAGE_SIZE, IMAGE_SIZE]))
  return tf.transpose(images, [0, 2, 3, 1]), labels


def _sample_distortions(batch_size: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Draws the random training distortion of each image.

  Args:
    batch_size: number of images.

  Returns:
    offsets int32 `[batch, 2]` in [0, 8], flips bool `[batch]`, brightness
    float32 `[batch]` in [-63, 63), contrast float32 `[batch]` in
    [0.2, 1.8).
  """
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
  """Crop, flip, brightness and contrast, in the reference's order.

  Args:
    images: float32 `[batch, 32, 32, 3]`, values in [0, 255].
    distortions: see `_sample_distortions`.

  Returns:
    float32 `[batch, 24, 24, 3]`.
  """
  images = image_ops.crop(images, distortions['offsets'], CROPPED_SIZE)
  images = image_ops.flip_left_right(images, distortions['flips'])
  images = image_ops.adjust_brightness(images, distortions['brightness'])
  return image_ops.adjust_contrast(images, distortions['contrast'])


def _preprocess(images: tf.Tensor, labels: tf.Tensor,
                train: bool) -> Dict[str, tf.Tensor]:
  """Distorts or centre-crops, standardizes, and builds the features.

  Args:
    images: uint8 `[batch, 32, 32, 3]`.
    labels: int32 `[batch]`.
    train: random distortion, or the central crop.

  Returns:
    The feature dictionary (see the module doc).
  """
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
  """Reads CIFAR-10 batches for training or testing.

  Training batches are shuffled, endless and all of batch_size examples;
  test batches hold every example once, in file order, the last one
  possibly smaller.

  Args:
    split: 'train' or 'test'.
    data_dir: directory of the binary batches (`.../cifar-10-batches-bin`);
      unused with source='tfds'.
    batch_size: examples per batch.
    source: 'bin' for the binary batches, 'tfds' for tensorflow-datasets'
      cifar10 (same preprocessing).
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).
    batch_capacity: examples in the training shuffle buffer.
    input_context: this input pipeline's place among several (multi-worker
      training): it reads only its share of the records, before parsing.
      None: all of them.

  Returns:
    A dataset of feature dictionaries (see the module doc); every dimension
    but the batch is static.

  Raises:
    errors.ConfigError: on a bad split or source.
    errors.MissingDataError: if a file is missing (or tensorflow-datasets
      cannot provide cifar10); the message says how to get it.
    errors.DataError: if a binary file is truncated.
  """
  if split not in ('train', 'test'):
    raise errors.ConfigError(f'split must be train or test, got {split!r}')
  train = split == 'train'
  if source == 'bin':
    paths = _filenames(data_dir, split)
    _check_binary_files(paths, _download_command(data_dir))
    dataset = records.read_files(
        paths, train=train,
        reader=lambda path: tf.data.FixedLengthRecordDataset(path,
                                                             RECORD_BYTES),
        input_context=input_context)
    decode = _decode
  elif source == 'tfds':
    dataset = records.shard(
        records.load_tfds('cifar10', split, tfds_data_dir=tfds_data_dir),
        input_context).map(lambda example: (example['image'],
                                            example['label']))
    decode = lambda images, labels: (images, tf.cast(labels, tf.int32))
  else:
    raise errors.ConfigError(f'source must be bin or tfds, got {source!r}')
  dataset = records.batch_dataset(dataset, batch_size=batch_size, train=train,
                                  shuffle_buffer=batch_capacity)
  dataset = dataset.map(
      lambda *batch: _preprocess(*decode(*batch), train),
      num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)
