"""Tests for norb_input_record on generated smallNORB records."""

import os
import tempfile

import numpy as np
import tensorflow as tf

import errors
from input_data.norb import norb_input_record
from input_data.norb import norb_record_writer


def _standardize(image):
  """Numpy per_image_standardization."""
  return (image - image.mean()) / max(image.std(), 1 / np.sqrt(image.size))


class NorbInputRecordTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.data_dir = tempfile.mkdtemp(dir=self.get_temp_dir())

  def _write(self, split, count, size=96, depth=2):
    images = self.rng.integers(0, 256, (count, depth, size, size), np.uint8)
    labels = self.rng.integers(0, 5, count)
    info = self.rng.integers(0, 18, (count, 4))
    norb_record_writer.write_records(
        os.path.join(self.data_dir, f'{split}duo.tfrecords'), images=images,
        labels=labels, info=info)
    return images, labels

  def testTestPipelineIsCompleteOrderedAndCentred(self):
    images, labels = self._write('test', 5)
    dataset = norb_input_record.inputs('test', data_dir=self.data_dir,
                                       batch_size=2)
    self.assertEqual([None, 2, 32, 32],
                     dataset.element_spec['images'].shape.as_list())
    batches = list(dataset)
    self.assertEqual([2, 2, 1], [len(b['recons_label']) for b in batches])
    got = np.concatenate([b['images'] for b in batches])
    # Resizing 96 -> 48 without half-pixel centres samples every other
    # pixel; the test crop is the central 32x32 of the 48x48.
    resized = images[:, :, ::2, ::2].astype(np.float64)
    expected = np.stack([_standardize(image[:, 8:40, 8:40])
                         for image in resized])
    self.assertAllClose(expected, got, atol=1e-5)
    self.assertAllEqual(labels, np.concatenate(
        [b['recons_label'] for b in batches]))
    self.assertAllEqual(tf.one_hot(labels, 5), np.concatenate(
        [b['labels'] for b in batches]))
    for first, second in zip(batches, dataset):
      self.assertAllEqual(first['images'], second['images'])

  def testTestWithoutDistortion(self):
    images, _ = self._write('test', 3, size=48)
    batch = next(iter(norb_input_record.inputs('test', data_dir=self.data_dir,
                                               batch_size=3, distort=False)))
    self.assertAllClose(
        np.stack([_standardize(image.astype(np.float64)) for image in images]),
        batch['images'], atol=1e-5)

  def testTrainPipeline(self):
    _, labels = self._write('train', 10)
    dataset = norb_input_record.inputs('train', data_dir=self.data_dir,
                                       batch_size=4)
    spec = dataset.element_spec
    self.assertEqual([4, 2, 32, 32], spec['images'].shape.as_list())
    self.assertEqual([4, 5], spec['labels'].shape.as_list())
    seen = []
    for batch in dataset.take(5):  # 20 examples: 2 epochs of 10
      images = batch['images'].numpy()
      self.assertAllEqual(images, batch['recons_image'])
      self.assertAllClose(np.zeros(4), images.mean(axis=(1, 2, 3)),
                          atol=1e-4)
      self.assertAllClose(np.ones(4), images.std(axis=(1, 2, 3)), atol=1e-3)
      seen.extend(batch['recons_label'].numpy())
    self.assertAllEqual(np.bincount(labels, minlength=5) * 2,
                        np.bincount(seen, minlength=5))

  def testDistortIsBrightnessContrastThenCrop(self):
    images = self.rng.uniform(0, 255, (16, 48, 48, 2)).astype(np.float32)
    distorted = norb_input_record._distort(tf.constant(images), 32).numpy()
    self.assertEqual((16, 32, 32, 2), distorted.shape)
    factors = []
    for image, out in zip(images, distorted):
      # out = (window - channel mean of the whole image) * factor
      #       + channel mean + delta, for one 32x32 window of the image.
      fits = []
      for row in range(17):
        for col in range(17):
          window = image[row:row + 32, col:col + 32] - image.mean((0, 1))
          factor = np.sum(window * (out - out.mean((0, 1)))) / np.sum(
              window * (window - window.mean((0, 1))))
          residual = out - window * factor
          fits.append((np.ptp(residual - image.mean((0, 1))), factor,
                       residual - image.mean((0, 1))))
      error, factor, delta = min(fits, key=lambda fit: fit[0])
      self.assertLess(error, 1e-2)
      self.assertBetween(factor, 0.2, 1.8)
      self.assertBetween(delta.mean(), -63, 63)
      factors.append(factor)
    self.assertGreater(np.ptp(factors), 0.5)  # one factor per image

  def testMissingFile(self):
    with self.assertRaisesRegex(
        errors.MissingDataError,
        'trainduo.tfrecords does not exist.*\n  python -m '
        'input_data.norb.norb_convert --data_dir=SMALLNORB_DIR '
        f'--output_dir={self.data_dir} --split=train'):
      norb_input_record.inputs('train', data_dir=self.data_dir, batch_size=4)

  def testBadInput(self):
    self._write('test', 2, depth=1)
    with self.assertRaisesRegex(errors.DataError, 'depth 2'):
      norb_input_record.inputs('test', data_dir=self.data_dir, batch_size=4)
    self._write('test', 2, size=32)
    with self.assertRaisesRegex(errors.ConfigError,
                                'at most the stored size 32'):
      norb_input_record.inputs('test', data_dir=self.data_dir, batch_size=4)
    with self.assertRaisesRegex(errors.ConfigError, 'height must be one of'):
      norb_input_record.inputs('test', data_dir=self.data_dir, batch_size=4,
                               height=40)
    path = os.path.join(self.data_dir, 'testduo.tfrecords')
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:
      f.write(data[:-10])
    with self.assertRaisesRegex(errors.DataError, path):
      norb_input_record.inputs('test', data_dir=self.data_dir, batch_size=4,
                               height=32)


if __name__ == '__main__':
  tf.test.main()
