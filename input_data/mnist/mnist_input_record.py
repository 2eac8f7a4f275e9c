"""Input pipelines for shifted MNIST and MultiMNIST records.

Reads the records that `mnist_shift` writes (`mnist_record_writer`):
- single digit: `data_dir/train_2shifted_mnist.tfrecords` and
  `data_dir/test_0shifted_mnist.tfrecords`, with validate the files of the
  valid_train and valid_test splits;
- MultiMNIST: the shards of a pattern `path/name.tfrecords@N` passed as
  data_dir. (`generated_input` makes the same pairs on the fly instead.)

The batches are the feature dictionaries of `interface`, pixels in [0, 1].
"""

import math
import os
import re
from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf

import errors
from input_data import image_ops
from input_data.mnist import mnist_record_writer
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

_INT = tf.io.FixedLenFeature([], tf.int64)
_BYTES = tf.io.FixedLenFeature([], tf.string)
_SINGLE_FEATURES = dict(height=_INT, width=_INT, depth=_INT, label=_INT,
                        image_raw=_BYTES)
_MULTI_FEATURES = dict(height=_INT, width=_INT, depth=_INT, label_1=_INT,
                       label_2=_INT, image_raw_1=_BYTES, image_raw_2=_BYTES,
                       merged_raw=_BYTES)


def to_images(pixels: tf.Tensor) -> tf.Tensor:
  """uint8 `[batch, height, width]` to float32 `[batch, 1, height, width]`."""
  return tf.cast(pixels[:, None], tf.float32) / MAX_PIXEL


def _decode_images(raw: tf.Tensor, height: int, width: int) -> tf.Tensor:
  """string `[batch]` of uint8 pixels to `to_images`' images."""
  return to_images(records.decode_pixels(raw, [height, width]))


def _distort(images: tf.Tensor, train: bool) -> tf.Tensor:
  """Random crop and rotation (train) or central crop (test), DISTORT_MARGIN."""
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
  """The features of digits `[batch, 1, h, w]` and int32 labels `[batch]`."""
  return image_ops.features(images, labels, NUM_CLASSES)


def pair_features(merged: tf.Tensor, image_1: tf.Tensor, label_1: tf.Tensor,
                  image_2: tf.Tensor,
                  label_2: tf.Tensor) -> Dict[str, tf.Tensor]:
  """The features of pairs: merged is the input, image_1 recons_image."""
  return {**digit_features(image_1, label_1), 'images': merged,
          'labels': (tf.one_hot(label_1, NUM_CLASSES) +
                     tf.one_hot(label_2, NUM_CLASSES)),
          'spare_image': image_2, 'spare_label': label_2}


def _single_features(serialized: tf.Tensor, height: int, distort: bool,
                     train: bool) -> Dict[str, tf.Tensor]:
  """The `digit_features` of a batch of single-digit records."""
  parsed = tf.io.parse_example(serialized, _SINGLE_FEATURES)
  images = _decode_images(parsed['image_raw'], height, height)
  if distort:
    images = _distort(images, train)
  return digit_features(images, tf.cast(parsed['label'], tf.int32))


def _multi_features(serialized: tf.Tensor, height: int,
                    width: int) -> Dict[str, tf.Tensor]:
  """The `pair_features` of a batch of MultiMNIST records."""
  parsed = tf.io.parse_example(serialized, _MULTI_FEATURES)
  return pair_features(
      _decode_images(parsed['merged_raw'], height, width),
      _decode_images(parsed['image_raw_1'], height, width),
      tf.cast(parsed['label_1'], tf.int32),
      _decode_images(parsed['image_raw_2'], height, width),
      tf.cast(parsed['label_2'], tf.int32))


def _multi_create_command(pattern: str) -> str:
  """The mnist_shift command that writes the shards of a pattern."""
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
  """MissingDataError naming the command that writes a missing shard."""
  records.require_files(records.expand_sharded_pattern(pattern),
                        _multi_create_command(pattern))


def single_file(data_dir: str, split: str, *,
                validate: bool) -> Tuple[str, str, int]:
  """The record file of a split, its file split and its shift."""
  shift = TRAIN_SHIFT if split == 'train' else TEST_SHIFT
  file_split = 'valid_' + split if validate else split
  return os.path.join(data_dir, mnist_record_writer.shifted_mnist_filename(
      file_split, shift=shift)), file_split, shift


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

  As every reader (`interface`), each file checked by a read through first.
  data_dir is a directory, or for MultiMNIST a sharded pattern. Single digit
  only: height is checked against the records' (None takes theirs), distort
  crops (`_distort`), validate reads the validation files. batch_capacity is
  the training shuffle buffer.
  """
  train = records.train_split(split)
  if num_targets == 1:
    path, file_split, shift = single_file(data_dir, split, validate=validate)
    paths: Sequence[str] = [path]
    command = (f'python -m input_data.mnist.mnist_shift --data_dir={data_dir} '
               f'--split={file_split} --shift={shift}   (--data_dir holds the '
               f'MNIST idx files; add --output_dir={data_dir} if they are '
               'elsewhere)')
  elif num_targets == 2:
    if distort or validate:
      raise errors.ConfigError(
          'distort and validate apply to single-digit MNIST only')
    paths = records.expand_sharded_pattern(data_dir)
    command = _multi_create_command(data_dir)
  else:
    raise errors.ConfigError(f'num_targets must be 1 or 2, got {num_targets}')

  record_height, record_width, record_depth = records.check_records(
      paths, command)
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

  return records.batch_dataset(
      records.read_files(paths, train=train, input_context=input_context),
      parse, batch_size=batch_size, train=train, shuffle_buffer=batch_capacity)
