"""Input pipeline for smallNORB stereo pairs stored as tfrecords.

Reads `data_dir/{split}duo.tfrecords` (`norb_record_writer`: the two
stereo views as depth, one of 5 object categories as label).

The images are resized to `height` x `height` (48 by default); training then
changes brightness (by up to 63 on the [0, 255] scale) and contrast (a factor
in [0.2, 1.8]) and crops a random window (32x32 from 48), testing crops the
central window; every image is then standardized to mean 0 and variance 1.
"""

import os
from typing import Dict, Optional, Tuple

import tensorflow as tf

import errors
from input_data import image_ops
from input_data.norb import norb_record_writer
from input_data import records

NUM_CLASSES = 5
DEPTH = 2
# Size of the distortion crop for each resized image size.
DISTORTED_SIZE = {48: 32, 32: 22}
MAX_BRIGHTNESS_DELTA = 63.0
CONTRAST_RANGE = (0.2, 1.8)
SHUFFLE_BUFFER = 5000

_INT = tf.io.FixedLenFeature([], tf.int64)
_FEATURES = dict(image_raw=tf.io.FixedLenFeature([], tf.string), label=_INT,
                 height=_INT, width=_INT, depth=_INT,
                 meta=tf.io.FixedLenFeature([4], tf.int64))


def _decode(serialized: tf.Tensor, record_size: int,
            size: int) -> Tuple[tf.Tensor, tf.Tensor]:
  """Float images `[batch, size, size, 2]` in about [0, 255], int32 labels."""
  parsed = tf.io.parse_example(serialized, _FEATURES)
  images = records.decode_pixels(parsed['image_raw'],
                                 [DEPTH, record_size, record_size])
  images = tf.cast(tf.transpose(images, [0, 2, 3, 1]), tf.float32)
  if size != record_size:
    # TF1's resize_images, as the reference: without half-pixel centres, so
    # halving the size samples every other pixel rather than averaging.
    images = tf.raw_ops.ResizeBilinear(
        images=images, size=[size, size], align_corners=False,
        half_pixel_centers=False)
  return images, tf.cast(parsed['label'], tf.int32)


def _distort(images: tf.Tensor, distorted_size: int) -> tf.Tensor:
  """Random brightness, contrast and crop, in the reference's order."""
  batch_size = tf.shape(images)[0]
  images = image_ops.adjust_brightness(
      images, tf.random.uniform([batch_size], -MAX_BRIGHTNESS_DELTA,
                                MAX_BRIGHTNESS_DELTA))
  images = image_ops.adjust_contrast(
      images, tf.random.uniform([batch_size], *CONTRAST_RANGE))
  offsets = image_ops.random_offsets(batch_size, images.shape[1],
                                     distorted_size)
  return image_ops.crop(images, offsets, distorted_size)


def _preprocess(serialized: tf.Tensor, record_size: int, size: int,
                distorted_size: int, distort: bool,
                train: bool) -> Dict[str, tf.Tensor]:
  """Decodes, distorts or crops, standardizes and builds the features."""
  images, labels = _decode(serialized, record_size, size)
  if distort and train:
    images = _distort(images, distorted_size)
  elif distort:
    images = tf.image.resize_with_crop_or_pad(images, distorted_size,
                                              distorted_size)
  return image_ops.standardized_features(images, labels, NUM_CLASSES)


def inputs(split: str, *,
           data_dir: str,
           batch_size: int,
           height: int = 48,
           distort: bool = True,
           batch_capacity: int = SHUFFLE_BUFFER,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  """Reads smallNORB batches, as every reader (`interface`).

  The file is read through once here. distort crops to DISTORTED_SIZE[height]
  (module doc); batch_capacity is the training shuffle buffer.
  """
  train = records.train_split(split)
  if distort and height not in DISTORTED_SIZE:
    raise errors.ConfigError(f'height must be one of {sorted(DISTORTED_SIZE)} '
                             f'to distort, got {height}')
  path = os.path.join(data_dir, norb_record_writer.records_filename(split))
  command = ('python -m input_data.norb.norb_convert --data_dir=SMALLNORB_DIR '
             f'--output_dir={data_dir} --split={split}   (SMALLNORB_DIR holds '
             'the smallnorb-*.mat[.gz] files)')
  record_size, width, depth = records.check_records([path], command)
  if (width, depth) != (record_size, DEPTH):
    raise errors.DataError(f'{path} holds {record_size}x{width}x{depth} '
                           f'images, expected square ones of depth {DEPTH}')
  if height > record_size:
    raise errors.ConfigError(
        f'height must be at most the stored size {record_size}, got {height}')

  return records.batch_dataset(
      records.read_files([path], train=train, input_context=input_context),
      lambda batch: _preprocess(batch, record_size, height,
                                DISTORTED_SIZE.get(height), distort, train),
      batch_size=batch_size, train=train, shuffle_buffer=batch_capacity)
