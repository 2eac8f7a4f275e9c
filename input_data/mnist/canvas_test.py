"""Tests for canvas: placement, MultiMNIST pairs and expanded MNIST plans."""

import numpy as np
import tensorflow as tf

import errors
from input_data.mnist import canvas


def _digits(num_images, num_classes, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.integers(1, 256, (num_images, 28, 28), np.uint8)
  return images, np.arange(num_images) % num_classes


class PlaceTest(tf.test.TestCase):

  def testPlace(self):
    """Pads, then shifts (row down, column left); cut where shift > pad."""
    digits = np.arange(2 * 9, dtype=np.uint8).reshape(2, 3, 3) + 1
    shifts = np.array([[1, -2], [-2, 2]], np.int32)
    placed = canvas.place(digits, shifts, pad=1, shift=2).numpy()
    self.assertEqual((2, 5, 5), placed.shape)
    expected = np.zeros((2, 5, 5), np.uint8)
    expected[0, 2:5, 0:2] = digits[0, :, 1:]  # moved to rows 2-4, cols -1-1
    expected[1, 0:2, 3:5] = digits[1, 1:, 0:2]  # rows -1-1, cols 3-5
    self.assertAllEqual(expected, placed)

  def testPlaceInTfData(self):
    digits = np.random.default_rng(0).integers(0, 256, (4, 28, 28), np.uint8)
    shifts = np.array([[0, 0], [4, 4], [-4, 3], [2, -1]], np.int32)
    eager = canvas.place(digits, shifts, pad=4, shift=4)
    traced = next(iter(tf.data.Dataset.from_tensors((digits, shifts)).map(
        lambda d, s: canvas.place(d, s, pad=4, shift=4))))
    self.assertAllEqual(eager, traced)
    # pad >= shift: nothing is cut off.
    self.assertAllEqual(digits.sum(axis=(1, 2)),
                        tf.reduce_sum(tf.cast(eager, tf.int32), [1, 2]))


class MultiMnistTest(tf.test.TestCase):

  def testEpochPartnersAreDistinctDigitsOfOtherClasses(self):
    images, labels = _digits(30, 3)
    generator = canvas.MultiMnist(images, labels, shift=2, pad=1,
                                  num_pairs=12, seed=3)
    partners = np.zeros((30, 12), int)
    for turn in range(12):
      plan = generator.plan(turn)
      base = plan.base.numpy()
      self.assertAllEqual(np.arange(30), np.sort(base))  # each digit once
      partners[base, turn] = plan.partner.numpy()
    self.assertFalse((labels[partners] == labels[:, None]).any())
    self.assertTrue(all(len(set(row)) == 12 for row in partners))
    # Partner sets differ from digit to digit and from epoch to epoch.
    self.assertGreater(len({tuple(sorted(row)) for row in partners}), 20)
    next_epoch = generator.plan(12)
    self.assertNotAllEqual(
        partners[next_epoch.base.numpy(), 0], next_epoch.partner)

  def testFewCandidates(self):
    """With 2 images of the other digit, each digit meets exactly those."""
    images, _ = _digits(4, 2)
    labels = np.array([0, 0, 1, 1])
    generator = canvas.MultiMnist(images, labels, shift=0, pad=0,
                                  num_pairs=2, seed=0)
    met = {i: set() for i in range(4)}
    for turn in range(2):
      plan = generator.plan(turn)
      for base, partner in zip(plan.base.numpy(), plan.partner.numpy()):
        met[base].add(partner)
    self.assertEqual({0: {2, 3}, 1: {2, 3}, 2: {0, 1}, 3: {0, 1}}, met)
    with self.assertRaisesRegex(errors.ConfigError, 'num_pairs=3'):
      canvas.MultiMnist(images, labels, shift=0, pad=0, num_pairs=3, seed=0)
    with self.assertRaisesRegex(errors.ConfigError, 'need seed, shift and pad'):
      canvas.MultiMnist(images, labels, shift=0, pad=0, num_pairs=1, seed=-1)

  def testShiftsCoverTheRange(self):
    images, labels = _digits(500, 10)
    plan = canvas.MultiMnist(images, labels, shift=6, pad=4, num_pairs=1,
                             seed=0).plan(0)
    for shifts in (plan.base_shift, plan.partner_shift):
      self.assertAllEqual(list(range(-6, 7)), np.unique(shifts))

  def testComposeClipsAt255(self):
    images = np.full((2, 28, 28), 200, np.uint8)
    generator = canvas.MultiMnist(images, np.array([1, 7]), shift=0, pad=4,
                                  num_pairs=1, seed=0)
    pairs = generator.compose(generator.plan(0))
    self.assertCountEqual(
        [(1, 7), (7, 1)],
        zip(pairs.label_1.numpy().tolist(), pairs.label_2.numpy().tolist()))
    merged = pairs.merged.numpy()
    self.assertAllEqual(np.full((2, 28, 28), 255), merged[:, 4:-4, 4:-4])
    self.assertEqual(0, merged.sum() - merged[:, 4:-4, 4:-4].sum())
    self.assertAllEqual(np.full((2, 28, 28), 200),
                        pairs.image_1.numpy()[:, 4:-4, 4:-4])

  def testSeed(self):
    images, labels = _digits(40, 5)
    def plan(seed):
      return canvas.MultiMnist(images, labels, shift=4, pad=4, num_pairs=3,
                               seed=seed).plan(1)
    for same, other in zip(plan(5), plan(5)):
      self.assertAllEqual(same, other)
    self.assertNotAllEqual(plan(5).base, plan(6).base)
    self.assertNotAllEqual(plan(5).base_shift, plan(6).base_shift)


class ExpandedMnistTest(tf.test.TestCase):

  def testPlans(self):
    images, labels = _digits(50, 10)
    generator = canvas.ExpandedMnist(images, labels, seed=1)
    self.assertEqual(40, generator.image_size)
    test = generator.plan(0, shuffle=False)
    self.assertAllEqual(np.arange(50), test.index)
    self.assertAllEqual(test.shift, generator.plan(0, shuffle=False).shift)
    epochs = [generator.plan(epoch, shuffle=True) for epoch in (0, 1)]
    for plan in epochs:
      self.assertAllEqual(np.arange(50), np.sort(plan.index))
      self.assertAllInRange(plan.shift, -6, 6)
    self.assertNotAllEqual(epochs[0].index, epochs[1].index)
    labels_out, placed = generator.compose(test)
    self.assertAllEqual(labels, labels_out)
    # pad = shift: every digit lies whole on the canvas.
    self.assertAllEqual(images.sum(axis=(1, 2)),
                        tf.reduce_sum(tf.cast(placed, tf.int32), [1, 2]))


if __name__ == '__main__':
  tf.test.main()
