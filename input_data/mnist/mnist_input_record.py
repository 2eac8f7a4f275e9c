"""Input pipelines for shifted MNIST and MultiMNIST records.

Reads the records that `mnist_shift` writes (`mnist_records`):
- single digit: `data_dir/train_2shifted_mnist.tfrecords` and
  `data_dir/test_0shifted_mnist.tfrecords`; with validate,
  `valid_train_2shifted_mnist.tfrecords` and
  `valid_test_0shifted_mnist.tfrecords` (the names mnist_shift gives the
  valid_train and valid_test splits);
- MultiMNIST: the shards of a pattern `path/name.tfrecords@N` passed as
  data_dir. (`generated_input` makes the same pairs on the fly instead.)

Each batch is a dictionary of tensors, channels first, pixels in [0, 1]:
  images: float32 `[batch, 1, height, width]`.
  labels: float32 `[batch, 10]`, one-hot (two-hot for MultiMNIST).
  recons_image: float32 `[batch, 1, height, width]`, the digit to rebuild.
  recons_label: int32 `[batch]`, its class.
  spare_image, spare_label: the second digit (MultiMNIST only).
"""

import math
import os
import re
from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf

import errors
from input_data import image_ops
from input_data.mnist import mnist_records
from input_data import records

NUM_CLASSES = 10
DEPTH = 1
# Shift of the records read for training and for testing.
TRAIN_SHIFT = 2
TEST_SHIFT = 0
# The distortion crops this many pixels less than the image height (28 -> 24)
# and rotates by up to this angle.
DISTORT_MARGIN = 4
MAX_ROTATION_DEGREES = 15
MAX_PIXEL = 255.0

_SINGLE_FEATURES = {
    'height': tf.io.FixedLenFeature([], tf.int64),
    'width': tf.io.FixedLenFeature([], tf.int64),
    'depth': tf.io.FixedLenFeature([], tf.int64),
    'label': tf.io.FixedLenFeature([], tf.int64),
    'image_raw': tf.io.FixedLenFeature([], tf.string),
}
_MULTI_FEATURES = {
    'height': tf.io.FixedLenFeature([], tf.int64),
    'width': tf.io.FixedLenFeature([], tf.int64),
    'depth': tf.io.FixedLenFeature([], tf.int64),
    'label_1': tf.io.FixedLenFeature([], tf.int64),
    'label_2': tf.io.FixedLenFeature([], tf.int64),
    'image_raw_1': tf.io.FixedLenFeature([], tf.string),
    'image_raw_2': tf.io.FixedLenFeature([], tf.string),
    'merged_raw': tf.io.FixedLenFeature([], tf.string),
}


def to_images(pixels: tf.Tensor) -> tf.Tensor:
  """Turns uint8 digit images into the models' input, floats in [0, 1].

  Args:
    pixels: uint8 `[batch, height, width]`.

  Returns:
    float32 `[batch, 1, height, width]`.
  """
  return tf.cast(pixels[:, None], tf.float32) / MAX_PIXEL


def _decode_images(raw: tf.Tensor, height: int, width: int) -> tf.Tensor:
  """Decodes a batch of uint8 digit images to floats in [0, 1].

  Args:
    raw: string `[batch]`, height * width bytes each.
    height: image height.
    width: image width.

  Returns:
    float32 `[batch, 1, height, width]`.
  """
  pixels = tf.reshape(tf.io.decode_raw(raw, tf.uint8), [-1, height, width])
  # Keeps the static batch size of training batches, which reshape loses.
  pixels.set_shape(raw.shape.concatenate([height, width]))
  return to_images(pixels)


def _distort(images: tf.Tensor, train: bool) -> tf.Tensor:
  """Random crop and rotation (train) or central crop (test).

  Args:
    images: float32 `[batch, 1, size, size]`.
    train: random distortion, or the central crop.

  Returns:
    float32 `[batch, 1, size - DISTORT_MARGIN, size - DISTORT_MARGIN]`.
  """
  size = images.shape[-1]
  cropped_size = size - DISTORT_MARGIN
  images = tf.transpose(images, [0, 2, 3, 1])
  if train:
    batch_size = tf.shape(images)[0]
    images = image_ops.crop(
        images, image_ops.random_offsets(batch_size, size, cropped_size),
        cropped_size)
    max_angle = math.radians(MAX_ROTATION_DEGREES)
    images = image_ops.rotate(
        images, tf.random.uniform([batch_size], -max_angle, max_angle))
  else:
    images = tf.image.resize_with_crop_or_pad(images, cropped_size,
                                              cropped_size)
  return tf.transpose(images, [0, 3, 1, 2])


def digit_features(images: tf.Tensor,
                   labels: tf.Tensor) -> Dict[str, tf.Tensor]:
  """The feature dictionary of single digits (see the module doc).

  Args:
    images: float32 `[batch, 1, height, width]`.
    labels: int32 `[batch]`.

  Returns:
    images, one-hot labels, recons_image (the images) and recons_label.
  """
  return {
      'images': images,
      'labels': tf.one_hot(labels, NUM_CLASSES),
      'recons_image': images,
      'recons_label': labels,
  }


def pair_features(merged: tf.Tensor, image_1: tf.Tensor, label_1: tf.Tensor,
                  image_2: tf.Tensor,
                  label_2: tf.Tensor) -> Dict[str, tf.Tensor]:
  """The feature dictionary of MultiMNIST pairs (see the module doc).

  Args:
    merged: float32 `[batch, 1, height, width]`, the overlaid pair.
    image_1: float32 `[batch, 1, height, width]`, the first digit.
    label_1: int32 `[batch]`, its class.
    image_2: float32 `[batch, 1, height, width]`, the second digit.
    label_2: int32 `[batch]`, its class.

  Returns:
    images (the merged pair), two-hot labels, recons_image and recons_label
    (the first digit), spare_image and spare_label (the second digit).
  """
  return {
      'images': merged,
      'labels': (tf.one_hot(label_1, NUM_CLASSES) +
                 tf.one_hot(label_2, NUM_CLASSES)),
      'recons_image': image_1,
      'recons_label': label_1,
      'spare_image': image_2,
      'spare_label': label_2,
  }


def _single_features(serialized: tf.Tensor, height: int, distort: bool,
                     train: bool) -> Dict[str, tf.Tensor]:
  """Parses a batch of single-digit records into the feature dictionary.

  Args:
    serialized: string `[batch]`, tf.train.Example records.
    height: image height and width.
    distort: apply `_distort`.
    train: training (random) or test distortion.

  Returns:
    The `digit_features`.
  """
  parsed = tf.io.parse_example(serialized, _SINGLE_FEATURES)
  images = _decode_images(parsed['image_raw'], height, height)
  if distort:
    images = _distort(images, train)
  return digit_features(images, tf.cast(parsed['label'], tf.int32))


def _multi_features(serialized: tf.Tensor, height: int,
                    width: int) -> Dict[str, tf.Tensor]:
  """Parses a batch of MultiMNIST records into the feature dictionary.

  Args:
    serialized: string `[batch]`, tf.train.Example records.
    height: image height.
    width: image width.

  Returns:
    The `pair_features`.
  """
  parsed = tf.io.parse_example(serialized, _MULTI_FEATURES)
  return pair_features(
      _decode_images(parsed['merged_raw'], height, width),
      _decode_images(parsed['image_raw_1'], height, width),
      tf.cast(parsed['label_1'], tf.int32),
      _decode_images(parsed['image_raw_2'], height, width),
      tf.cast(parsed['label_2'], tf.int32))


def _create_command(data_dir: str, split: str, shift: int) -> str:
  return (f'python -m input_data.mnist.mnist_shift --data_dir={data_dir} '
          f'--split={split} --shift={shift}   (--data_dir holds the MNIST '
          f'idx files; add --output_dir={data_dir} if they are elsewhere)')


def _multi_create_command(pattern: str) -> str:
  prefix = pattern.rpartition('@')[0]
  match = re.fullmatch(r'multi(.+)_(\d+)shifted_mnist\.tfrecords',
                       os.path.basename(prefix))
  split, shift = match.groups() if match else ('SPLIT', 'SHIFT')
  return ('python -m input_data.mnist.mnist_shift --multi_targets '
          f'--data_dir=MNIST_IDX_DIR --output_dir={os.path.dirname(prefix)} '
          f'--split={split} --shift={shift} --pad=PAD --num_pairs=P '
          '--max_shard=M --seed=S   (it writes ceil(num_images * P / M) '
          'shards; the reference README uses --shift=6 --pad=4, the paper\'s '
          'text --shift=4 --pad=4)')


def require_multi_records(pattern: str) -> None:
  """Raises MissingDataError naming the command that writes a missing shard.

  Args:
    pattern: MultiMNIST records, `path/name.tfrecords@N`.

  Raises:
    errors.ConfigError: if pattern is not `path@N`.
    errors.MissingDataError: if a shard is missing.
  """
  records.require_files(records.expand_sharded_pattern(pattern),
                        _multi_create_command(pattern))


def _single_files(data_dir: str, split: str,
                  validate: bool) -> Tuple[str, str]:
  """The record file of a split and the command that writes it."""
  shift = TRAIN_SHIFT if split == 'train' else TEST_SHIFT
  file_split = 'valid_' + split if validate else split
  path = os.path.join(
      data_dir, mnist_records.shifted_mnist_filename(file_split, shift=shift))
  return path, _create_command(data_dir, file_split, shift)


def _image_size(path: str) -> Tuple[int, int, int]:
  """(height, width, depth) of the first record of a file."""
  example = records.first_example(path)
  return tuple(records.example_int(example, key)
               for key in ('height', 'width', 'depth'))


def inputs(split: str, *,
           data_dir: str,
           batch_size: int,
           num_targets: int = 1,
           height: Optional[int] = 28,
           distort: bool = False,
           validate: bool = False,
           batch_capacity: int = 5000,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  """Reads shifted MNIST (num_targets=1) or MultiMNIST (num_targets=2).

  Training batches are shuffled, endless and all of batch_size examples;
  test batches hold every example once, in file order, the last one
  possibly smaller. Every file is read through once here so that a
  truncated or corrupt file fails now, naming the file.

  Args:
    split: 'train' or 'test'.
    data_dir: directory of the single-digit records, or for MultiMNIST the
      sharded pattern `path/multitest_6shifted_mnist.tfrecords@N`.
    batch_size: examples per batch.
    num_targets: 1 (MNIST) or 2 (MultiMNIST).
    height: height and width of the single-digit records, checked against
      them; None takes the records' own size (for MultiMNIST it always
      comes from the records).
    distort: single digit only: crop DISTORT_MARGIN pixels, at random with a
      random rotation within MAX_ROTATION_DEGREES for train, centrally for
      test.
    validate: single digit only: read the validation files (training images
      10000 on for train, the first 10000 for test).
    batch_capacity: examples in the training shuffle buffer.
    input_context: this input pipeline's place among several (multi-worker
      training): it reads only its share of the records, before parsing.
      None: all of them.

  Returns:
    A dataset of feature dictionaries (see the module doc); every dimension
    but the batch is static.

  Raises:
    errors.ConfigError: on a bad split, num_targets, pattern or option.
    errors.MissingDataError: if a record file is missing; the message gives
      the mnist_shift command that writes it.
    errors.DataError: if a record file is truncated or corrupt, holds no
      records, or holds images that are not height x height.
  """
  if split not in ('train', 'test'):
    raise errors.ConfigError(f'split must be train or test, got {split!r}')
  train = split == 'train'
  if num_targets == 1:
    path, command = _single_files(data_dir, split, validate)
    paths: Sequence[str] = [path]
  elif num_targets == 2:
    if distort or validate:
      raise errors.ConfigError(
          'distort and validate apply to single-digit MNIST only')
    paths = records.expand_sharded_pattern(data_dir)
    command = _multi_create_command(data_dir)
  else:
    raise errors.ConfigError(f'num_targets must be 1 or 2, got {num_targets}')

  if sum(records.count_tfrecords(paths, command)) == 0:
    raise errors.DataError(f'{paths} hold no records; recreate them with:\n'
                           f'  {command}')
  record_height, record_width, record_depth = _image_size(paths[0])
  if record_depth != DEPTH:
    raise errors.DataError(
        f'{paths[0]} holds images of depth {record_depth}')
  if num_targets == 1:
    if record_height != record_width:
      raise errors.DataError(
          f'{paths[0]} holds {record_height}x{record_width} images; the '
          'models need square images')
    height = record_height if height is None else height
    if record_height != height:
      raise errors.DataError(
          f'{paths[0]} holds {record_height}x{record_width} images, expected '
          f'{height}x{height}; pass height={record_height}')
    parse = lambda batch: _single_features(batch, height, distort, train)
  else:
    parse = lambda batch: _multi_features(batch, record_height, record_width)

  dataset = records.read_files(paths, train=train, input_context=input_context)
  dataset = records.batch_dataset(dataset, batch_size=batch_size, train=train,
                                  shuffle_buffer=batch_capacity)
  dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)
