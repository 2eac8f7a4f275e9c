"""Tests for the per-image batch augmentations, eagerly and in tf.data."""

import math

import numpy as np
import tensorflow as tf

from input_data import image_ops


def _in_tf_data(op, *args):
  """Runs `op(*args)` as a tf.data map, i.e. traced in a graph."""
  dataset = tf.data.Dataset.from_tensors(tuple(args)).map(op)
  return next(iter(dataset))


class ImageOpsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.images = rng.uniform(0, 255, (3, 6, 6, 2)).astype(np.float32)

  def testRandomOffsetsRange(self):
    offsets = image_ops.random_offsets(4000, 32, 24).numpy()
    self.assertEqual((4000, 2), offsets.shape)
    self.assertEqual(list(range(9)), sorted(set(offsets.ravel().tolist())))

  def testCrop(self):
    offsets = np.array([[0, 0], [2, 1], [1, 3]], np.int32)
    expected = np.stack([self.images[i, r:r + 3, c:c + 3]
                         for i, (r, c) in enumerate(offsets)])
    for run in (lambda *a: image_ops.crop(*a, 3),
                lambda *a: _in_tf_data(lambda x, o: image_ops.crop(x, o, 3),
                                       *a)):
      self.assertAllEqual(expected, run(self.images, offsets))

  def testFlipLeftRight(self):
    flips = np.array([True, False, True])
    expected = np.stack([self.images[0, :, ::-1], self.images[1],
                         self.images[2, :, ::-1]])
    self.assertAllEqual(expected,
                        image_ops.flip_left_right(self.images, flips))
    self.assertAllEqual(
        expected, _in_tf_data(image_ops.flip_left_right, self.images, flips))

  def testAdjustBrightness(self):
    deltas = np.array([-63.0, 0.0, 10.5], np.float32)
    self.assertAllClose(self.images + deltas[:, None, None, None],
                        image_ops.adjust_brightness(self.images, deltas))

  def testAdjustContrastMatchesTfImage(self):
    factors = np.array([0.2, 1.0, 1.8], np.float32)
    expected = np.stack([tf.image.adjust_contrast(image, factor)
                         for image, factor in zip(self.images, factors)])
    self.assertAllClose(expected,
                        image_ops.adjust_contrast(self.images, factors),
                        atol=1e-3)
    self.assertAllClose(
        expected, _in_tf_data(image_ops.adjust_contrast, self.images, factors),
        atol=1e-3)

  def testRotate(self):
    images = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5, 1)
    angles = np.array([0.0, math.pi / 2], np.float32)
    rotated = image_ops.rotate(tf.constant(images), angles)
    self.assertAllEqual(images[0], rotated[0])
    # Counterclockwise as displayed (row 0 at the top), like np.rot90.
    self.assertAllEqual(np.rot90(images[1]), rotated[1])
    self.assertAllEqual(
        rotated, _in_tf_data(image_ops.rotate, images, angles))

  def testProject(self):
    """A translation to a larger frame: out[y, x] = in[y - 1, x - 2]."""
    images = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 1) + 1
    transforms = np.array([[1, 0, -2, 0, 1, -1, 0, 0],
                           [1, 0, 0, 0, 1, 0, 0, 0]], np.float32)
    expected = np.zeros((2, 6, 6, 1), np.float32)
    expected[0, 1:5, 2:6] = images[0]
    expected[1, :4, :4] = images[1]
    for run in (lambda *a: image_ops.project(
                    *a, output_size=6, interpolation='BILINEAR'),
                lambda *a: _in_tf_data(lambda x, t: image_ops.project(
                    x, t, output_size=6, interpolation='BILINEAR'), *a)):
      self.assertAllEqual(expected, run(images, transforms))

  def testRotateFillsWithZeros(self):
    images = np.ones((1, 8, 8, 1), np.float32)
    rotated = image_ops.rotate(tf.constant(images),
                               np.array([math.pi / 4], np.float32))[0, ..., 0]
    self.assertEqual(0.0, rotated[0, 0])  # corners leave the frame
    self.assertEqual(1.0, rotated[4, 4])


if __name__ == '__main__':
  tf.test.main()
