"""affine_mnist: MNIST test digits under random affine maps, NOT affNIST.

A stand-in for the affNIST test set where its files are not at hand: each
example is an MNIST test digit (digit k % num_digits for example k) mapped
onto a 40x40 canvas by an affine transform drawn, from a seed, within the
ranges that public descriptions of affNIST give: rotation up to 20 degrees
either way, shear up to 0.2, scale 0.8 to 1.2 in each direction
independently, and a translation that keeps the digit's ink inside the
frame. (The copy of the affNIST page this project could read lacks its
list of ranges, so they are not checked against the page itself.) The
draws are ours, so results on affine_mnist are not affNIST results; report
them under this name.

The map of a digit is `A = R(rotation) @ [[1, shear], [0, 1]] @
diag(scale_x, scale_y)` about the digit's centre, then a translation of
that centre from the canvas's centre, in pixel coordinates (x to the right,
y down). Resampling is bilinear, the result rounded to uint8 as affNIST's.
"""

import math
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

import errors
from input_data import image_ops
from input_data.mnist import mnist_input_record
from input_data import records

CANVAS_SIZE = 40
MAX_ROTATION_DEGREES = 20.0
MAX_SHEAR = 0.2
SCALE_RANGE = (0.8, 1.2)
MAX_PIXEL = 255.0
# The test set of affNIST's size would be 32 maps per test digit; one keeps
# an evaluation as cheap as MNIST's.
DEFAULT_EVAL_SIZE = 10000


class AffineDraws(NamedTuple):
  """The transforms of the examples, one row each (float64 but index)."""
  index: np.ndarray  # int32 `[n]`, the digit of each example
  rotation: np.ndarray  # `[n]`, radians
  shear: np.ndarray  # `[n]`
  scale: np.ndarray  # `[n, 2]`, (x, y)
  translation: np.ndarray  # `[n, 2]`, the digit's centre from the canvas's
  matrix: np.ndarray  # `[n, 2, 3]`, digit pixel (x, y, 1) -> canvas (x, y)


def _linear(rotation: np.ndarray, shear: np.ndarray,
            scale: np.ndarray) -> np.ndarray:
  """`[n, 2, 2]`, R(rotation) @ shear @ diag(scale)."""
  cos, sin = np.cos(rotation), np.sin(rotation)
  rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)
  upper = np.zeros_like(rotate)
  upper[:, 0, 0] = scale[:, 0]
  upper[:, 0, 1] = shear * scale[:, 1]
  upper[:, 1, 1] = scale[:, 1]
  return rotate @ upper


def _ink_corners(digits: np.ndarray) -> np.ndarray:
  """`[n, 4, 2]`: each ink box's (x, y) corners, from the digit's centre."""
  # The box holds the non-zero pixels, to their outer edges; a blank digit
  # gets a box of one pixel at its centre.
  size = digits.shape[1]
  centre = (size - 1) / 2
  corners = np.zeros((len(digits), 4, 2))
  for i, digit in enumerate(digits):
    rows, cols = np.nonzero(digit)
    if not len(rows):
      rows = cols = np.array([int(centre)])
    low = np.array([cols.min(), rows.min()]) - 0.5 - centre
    high = np.array([cols.max(), rows.max()]) + 0.5 - centre
    corners[i] = [[low[0], low[1]], [high[0], low[1]], [low[0], high[1]],
                  [high[0], high[1]]]
  return corners


def draw(digits: np.ndarray, *, seed: int, size: int) -> AffineDraws:
  """The transforms of `size` examples of uint8 digits `[num_digits, h, h]`.

  The translation is uniform among those that keep the ink box inside the
  canvas; a box too large for it is centred.
  """
  rng = np.random.default_rng(seed)
  index = (np.arange(size) % len(digits)).astype(np.int32)
  max_rotation = math.radians(MAX_ROTATION_DEGREES)
  rotation = rng.uniform(-max_rotation, max_rotation, size)
  shear = rng.uniform(-MAX_SHEAR, MAX_SHEAR, size)
  scale = rng.uniform(*SCALE_RANGE, (size, 2))
  linear = _linear(rotation, shear, scale)
  # [size, 4, 2], the ink box's corners mapped, about the canvas centre.
  corners = np.einsum('nij,nkj->nki', linear, _ink_corners(digits)[index])
  half = CANVAS_SIZE / 2
  low = -half - corners.min(axis=1)  # [size, 2]
  high = half - corners.max(axis=1)
  fits = low <= high
  uniform = rng.uniform(size=(size, 2))
  translation = np.where(fits, low + uniform * (high - low), (low + high) / 2)
  digit_centre = (digits.shape[1] - 1) / 2
  canvas_centre = (CANVAS_SIZE - 1) / 2
  offset = canvas_centre + translation - np.einsum(
      'nij,j->ni', linear, np.full(2, digit_centre))
  matrix = np.concatenate([linear, offset[..., None]], axis=2)
  return AffineDraws(index, rotation, shear, scale, translation, matrix)


def _inverse_transforms(matrix: np.ndarray) -> np.ndarray:
  """`[n, 8]` float32 rows for `image_ops.project`: canvas -> digit."""
  inverse = np.linalg.inv(matrix[:, :, :2])  # [n, 2, 2]
  offset = -np.einsum('nij,nj->ni', inverse, matrix[:, :, 2])
  rows = np.concatenate([inverse, offset[..., None]], axis=2).reshape(-1, 6)
  return np.concatenate([rows, np.zeros((len(rows), 2))], 1).astype(
      np.float32)


def transform(digits: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
  """uint8 `[n, 40, 40]`: digits `[n, h, h]` through inverse maps `[n, 8]`."""
  images = tf.cast(digits[..., None], tf.float32)
  canvas = image_ops.project(images, transforms, output_size=CANVAS_SIZE,
                             interpolation='BILINEAR')[..., 0]
  return tf.cast(tf.clip_by_value(tf.round(canvas), 0, MAX_PIXEL), tf.uint8)


def inputs(split: str, *, images: np.ndarray, labels: np.ndarray,
           batch_size: int, seed: int = 0, eval_size: int = DEFAULT_EVAL_SIZE,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  """The affine_mnist test set (module doc) of uint8 digits `[n, 28, 28]`."""
  if split != 'test':
    raise errors.ConfigError(
        f'affine_mnist has a test split only, got {split!r}')
  draws = draw(images, seed=seed, size=eval_size)
  digits = tf.constant(images, tf.uint8)
  labels = tf.constant(np.asarray(labels, np.int32))
  dataset = tf.data.Dataset.from_tensor_slices(
      (draws.index, _inverse_transforms(draws.matrix)))
  dataset = records.shard(dataset, input_context).batch(batch_size)

  def features(index, transforms):
    pixels = transform(tf.gather(digits, index), transforms)
    return mnist_input_record.digit_features(
        mnist_input_record.to_images(pixels), tf.gather(labels, index))
  return records.map_batches(dataset, features)
