"""Tests for affine_mnist: the ranges of the draws and the images they make."""

import math

import numpy as np
import tensorflow as tf

import errors
from input_data.affnist import affine_mnist


def _blobs(count):
  """Smooth digit-like blobs of different sizes and places, uint8 28x28."""
  rng = np.random.default_rng(0)
  rows, cols = np.mgrid[:28, :28]
  digits = []
  for _ in range(count):
    centre = rng.uniform(10, 18, 2)
    widths = rng.uniform(2, 4, 2)
    blob = np.exp(-((rows - centre[0]) / widths[0]) ** 2 -
                  ((cols - centre[1]) / widths[1]) ** 2)
    digits.append(np.where(blob > 0.05, np.round(255 * blob), 0))
  return np.array(digits, np.uint8)


class AffineMnistTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.digits = _blobs(20)
    self.draws = affine_mnist.draw(self.digits, seed=7, size=400)

  def testMatricesDecomposeWithinTheRanges(self):
    """QR of each linear part recovers rotation, shear and scales."""
    linear = self.draws.matrix[:, :, :2]
    rotation, shear, scale = [], [], []
    for matrix in linear:
      q, r = np.linalg.qr(matrix)
      signs = np.sign(np.diag(r))  # make the triangle's diagonal positive
      q, r = q * signs, r * signs[:, None]
      rotation.append(math.atan2(q[1, 0], q[0, 0]))
      scale.append(np.diag(r))
      shear.append(r[0, 1] / r[1, 1])
    rotation, shear, scale = map(np.array, (rotation, shear, scale))
    self.assertAllClose(self.draws.rotation, rotation)
    self.assertAllClose(self.draws.shear, shear)
    self.assertAllClose(self.draws.scale, scale)
    self.assertAllInRange(np.degrees(rotation), -20, 20)
    self.assertAllInRange(shear, -0.2, 0.2)
    self.assertAllInRange(scale, 0.8, 1.2)
    # The draws fill the ranges.
    self.assertGreater(np.degrees(rotation).max(), 19)
    self.assertLess(np.degrees(rotation).min(), -19)
    self.assertGreater(scale.max(), 1.19)
    self.assertLess(scale.min(), 0.81)
    self.assertGreater(np.abs(shear).max(), 0.19)

  def testImagesFollowTheMatricesAndKeepTheInk(self):
    """Ink mass scales by det(A), its centroid moves by the matrix, and
    nothing leaves the 40x40 frame."""
    index = self.draws.index[:40]
    images = affine_mnist.transform(
        tf.constant(self.digits[index]),
        affine_mnist._inverse_transforms(self.draws.matrix[:40])).numpy()
    self.assertEqual((40, 40, 40), images.shape)
    mass_in = self.digits[index].sum(axis=(1, 2)).astype(float)
    det = np.linalg.det(self.draws.matrix[:40, :, :2])
    self.assertAllClose(mass_in * det, images.sum(axis=(1, 2)), rtol=0.03)
    rows, cols = np.mgrid[:28, :28]
    for digit, image, matrix in zip(self.digits[index], images,
                                    self.draws.matrix[:40]):
      centroid = np.array([(cols * digit).sum(), (rows * digit).sum(), 1.0])
      expected = matrix @ (centroid / np.array([digit.sum(), digit.sum(), 1]))
      out_rows, out_cols = np.mgrid[:40, :40]
      found = np.array([(out_cols * image).sum(), (out_rows * image).sum()])
      self.assertAllClose(expected, found / image.sum(), atol=0.1)

  def testSeedAndInputs(self):
    again = affine_mnist.draw(self.digits, seed=7, size=400)
    self.assertAllEqual(self.draws.matrix, again.matrix)
    other = affine_mnist.draw(self.digits, seed=8, size=400)
    self.assertNotAllClose(self.draws.matrix, other.matrix)
    labels = np.arange(20) % 10
    dataset = affine_mnist.inputs('test', images=self.digits, labels=labels,
                                  batch_size=16, seed=7, eval_size=50)
    batches = list(dataset)
    self.assertEqual([16, 16, 16, 2], [len(b['labels']) for b in batches])
    self.assertEqual([None, 1, 40, 40],
                     dataset.element_spec['images'].shape.as_list())
    self.assertAllEqual(np.arange(50) % 20 % 10, np.concatenate(
        [b['recons_label'] for b in batches]))
    images = np.concatenate([b['images'] for b in batches])
    matrix = affine_mnist.draw(self.digits, seed=7, size=50).matrix
    self.assertAllClose(self.digits[np.arange(50) % 20].sum(axis=(1, 2)) *
                        np.linalg.det(matrix[:, :, :2]) / 255,
                        images.sum(axis=(1, 2, 3)), rtol=0.03)
    with self.assertRaisesRegex(errors.ConfigError, 'test split only'):
      affine_mnist.inputs('train', images=self.digits, labels=labels,
                          batch_size=16)


if __name__ == '__main__':
  tf.test.main()
