"""Per-image augmentations applied to whole batches, and the final features.

`tf.image.random_crop`, `random_brightness` and `random_contrast` draw one
value per call, so on a batch they would move every image alike. These ops
take one parameter per image instead, which lets the pipelines augment after
batching (several times faster than one image at a time on a small CPU) and
lets tests pass exact parameters. Images are channels last,
`[batch, height, width, channels]`, as tf.image expects.
"""

from typing import Dict

import tensorflow as tf


def random_offsets(batch_size: tf.Tensor, image_size: int,
                   crop_size: int) -> tf.Tensor:
  """int32 `[batch, 2]`: uniform (row, column) crop corners for `crop`."""
  return tf.random.uniform([batch_size, 2], 0, image_size - crop_size + 1,
                           dtype=tf.int32)


def crop(images: tf.Tensor, offsets: tf.Tensor, crop_size: int) -> tf.Tensor:
  """One window per image, its top-left corner at offsets' (row, column)."""
  window = tf.range(crop_size)
  rows = offsets[:, 0:1] + window  # [batch, crop_size]
  cols = offsets[:, 1:2] + window  # [batch, crop_size]
  images = tf.gather(images, rows, axis=1, batch_dims=1)
  return tf.gather(images, cols, axis=2, batch_dims=1)


def flip_left_right(images: tf.Tensor, flips: tf.Tensor) -> tf.Tensor:
  """Mirrors the images whose `flips` (bool `[batch]`) entry is True."""
  return tf.where(flips[:, None, None, None], tf.reverse(images, [2]), images)


def adjust_brightness(images: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
  """Adds `deltas[i]` to every pixel of image i, like tf.image's op."""
  return images + deltas[:, None, None, None]


def adjust_contrast(images: tf.Tensor, factors: tf.Tensor) -> tf.Tensor:
  """`(x - mean) * factors[i] + mean` per channel of image i, unclipped."""
  means = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
  return (images - means) * factors[:, None, None, None] + means


def project(images: tf.Tensor, transforms: tf.Tensor, *, output_size: int,
            interpolation: str) -> tf.Tensor:
  """float32 images, each resampled through its own projective transform.

  transforms: float32 `[batch, 8]`, tf's convention: output pixel (x, y)
  (column, row; pixel centres at integers) samples the input at
  `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)` with
  `k = c0 x + c1 y + 1` for the row `[a0, a1, a2, b0, b1, b2, c0, c1]`.
  The output is zero where the sample falls outside the input.
  """
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=images,
      transforms=transforms,
      output_shape=[output_size, output_size],
      fill_value=0.0,
      interpolation=interpolation,
      fill_mode='CONSTANT')


def rotate(images: tf.Tensor, angles: tf.Tensor) -> tf.Tensor:
  """Rotates each image `[size, size]` (static) by `angles[i]` radians.

  Counterclockwise about its centre, as the reference's
  `tf.contrib.image.rotate`: nearest-neighbour sampling, zero where the
  rotated image leaves the frame.
  """
  size = images.shape[1]
  cos, sin = tf.cos(angles), tf.sin(angles)
  # Each row maps an output pixel (x, y) to the input pixel it samples.
  x_offset = ((size - 1) - (cos * (size - 1) - sin * (size - 1))) / 2
  y_offset = ((size - 1) - (sin * (size - 1) + cos * (size - 1))) / 2
  zeros = tf.zeros_like(angles)
  transforms = tf.stack(
      [cos, -sin, x_offset, sin, cos, y_offset, zeros, zeros], axis=1)
  return project(images, transforms, output_size=size,
                 interpolation='NEAREST')


def standardized_features(images: tf.Tensor, labels: tf.Tensor,
                          num_classes: int) -> Dict[str, tf.Tensor]:
  """The `features` of natural images, each standardized, channels first."""
  images = tf.image.per_image_standardization(images)
  return features(tf.transpose(images, [0, 3, 1, 2]), labels, num_classes)


def features(images: tf.Tensor, labels: tf.Tensor,
             num_classes: int) -> Dict[str, tf.Tensor]:
  """The features (`interface`) of images, each its own recons_image."""
  return {
      'images': images,
      'labels': tf.one_hot(labels, num_classes),
      'recons_image': images,
      'recons_label': labels,
  }
