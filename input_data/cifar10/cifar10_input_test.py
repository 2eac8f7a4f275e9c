"""Tests for cifar10_input on generated binary batches and mocked tfds."""

import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import errors
from input_data.cifar10 import cifar10_input

RECORDS_PER_FILE = 6


def _standardize(image):
  """Numpy per_image_standardization."""
  return (image - image.mean()) / max(image.std(), 1 / np.sqrt(image.size))


class Cifar10InputTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.data_dir = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()),
                                 'cifar-10-batches-bin')
    os.makedirs(self.data_dir)
    # Per file: labels [n] and channels-first images [n, 3, 32, 32].
    self.files = {}
    names = [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']
    for name in names:
      labels = self.rng.integers(0, 10, RECORDS_PER_FILE, np.uint8)
      images = self.rng.integers(0, 256, (RECORDS_PER_FILE, 3, 32, 32),
                                 np.uint8)
      with open(os.path.join(self.data_dir, name), 'wb') as f:
        for label, image in zip(labels, images):
          f.write(bytes([label]) + image.tobytes())
      self.files[name] = (labels, images)

  def testDecode(self):
    labels, images = self.files['test_batch.bin']
    with open(os.path.join(self.data_dir, 'test_batch.bin'), 'rb') as f:
      data = f.read()
    records = [data[i:i + cifar10_input.RECORD_BYTES]
               for i in range(0, len(data), cifar10_input.RECORD_BYTES)]
    decoded_images, decoded_labels = cifar10_input._decode(
        tf.constant(records))
    self.assertAllEqual(labels, decoded_labels)
    self.assertAllEqual(images.transpose(0, 2, 3, 1), decoded_images)

  def testTestPipelineIsCompleteOrderedAndCentred(self):
    labels, images = self.files['test_batch.bin']
    dataset = cifar10_input.inputs('test', data_dir=self.data_dir, batch_size=4)
    self.assertEqual([None, 3, 24, 24],
                     dataset.element_spec['images'].shape.as_list())
    batches = list(dataset)
    self.assertEqual([4, 2], [len(b['recons_label']) for b in batches])
    got = np.concatenate([b['images'] for b in batches])
    expected = np.stack([_standardize(image[:, 4:28, 4:28].astype(np.float64))
                         for image in images])
    self.assertAllClose(expected, got, atol=1e-5)
    self.assertAllEqual(labels, np.concatenate(
        [b['recons_label'] for b in batches]))
    self.assertAllEqual(tf.one_hot(labels, 10), np.concatenate(
        [b['labels'] for b in batches]))
    for first, second in zip(batches, dataset):
      self.assertAllEqual(first['images'], second['images'])

  def testTrainPipeline(self):
    dataset = cifar10_input.inputs('train', data_dir=self.data_dir,
                                   batch_size=8)
    spec = dataset.element_spec
    self.assertEqual([8, 3, 24, 24], spec['images'].shape.as_list())
    self.assertEqual([8, 10], spec['labels'].shape.as_list())
    self.assertEqual([8], spec['recons_label'].shape.as_list())
    all_labels = np.concatenate([labels for labels, _ in
                                 (self.files[f'data_batch_{i}.bin']
                                  for i in range(1, 6))])
    seen = []
    for batch in dataset.take(15):  # 120 examples: 4 epochs of 30
      images = batch['images'].numpy()
      self.assertAllEqual(images, batch['recons_image'])
      self.assertAllClose(np.zeros(8), images.mean(axis=(1, 2, 3)),
                          atol=1e-4)
      self.assertAllClose(np.ones(8), images.std(axis=(1, 2, 3)), atol=1e-3)
      seen.extend(batch['recons_label'].numpy())
    self.assertAllEqual(np.bincount(all_labels, minlength=10) * 4,
                        np.bincount(seen, minlength=10))

  def testDistortionRanges(self):
    distortions = {k: v.numpy() for k, v in
                   cifar10_input._sample_distortions(5000).items()}
    self.assertEqual(list(range(9)),
                     sorted(set(distortions['offsets'].ravel().tolist())))
    self.assertBetween(distortions['flips'].mean(), 0.45, 0.55)
    brightness, contrast = distortions['brightness'], distortions['contrast']
    self.assertTrue(np.all((brightness >= -63) & (brightness < 63)))
    self.assertLess(brightness.min(), -60)
    self.assertGreater(brightness.max(), 60)
    self.assertTrue(np.all((contrast >= 0.2) & (contrast < 1.8)))
    self.assertLess(contrast.min(), 0.25)
    self.assertGreater(contrast.max(), 1.75)

  def testDistort(self):
    """Crop, then flip, brightness, contrast, on [0, 255] pixel values."""
    _, images = self.files['data_batch_1.bin']
    images = images[:2].transpose(0, 2, 3, 1).astype(np.float32)
    distortions = {
        'offsets': np.array([[0, 8], [3, 5]], np.int32),
        'flips': np.array([False, True]),
        'brightness': np.array([-63.0, 20.0], np.float32),
        'contrast': np.array([0.2, 1.8], np.float32),
    }
    got = cifar10_input._distort(tf.constant(images), distortions)
    for i, ((row, col), flip, delta, factor) in enumerate(zip(
        *distortions.values())):
      window = images[i, row:row + 24, col:col + 24]
      if flip:
        window = window[:, ::-1]
      window = window + delta
      mean = window.mean(axis=(0, 1))
      self.assertAllClose((window - mean) * factor + mean, got[i], atol=1e-3)

  def testTfdsSource(self):
    with tfds.testing.mock_data(num_examples=10):
      test = list(cifar10_input.inputs('test', data_dir=None, batch_size=4,
                                       source='tfds',
                                       tfds_data_dir=self.data_dir))
      train = cifar10_input.inputs('train', data_dir=None, batch_size=4,
                                   source='tfds', tfds_data_dir=self.data_dir)
      self.assertEqual([4, 3, 24, 24],
                       train.element_spec['images'].shape.as_list())
      next(iter(train))
    self.assertEqual([4, 4, 2], [len(b['labels']) for b in test])
    images = np.concatenate([b['images'] for b in test])
    self.assertAllClose(np.zeros(10), images.mean(axis=(1, 2, 3)), atol=1e-4)
    self.assertAllClose(np.ones(10), images.std(axis=(1, 2, 3)), atol=1e-3)

  def testMissingFile(self):
    os.remove(os.path.join(self.data_dir, 'data_batch_3.bin'))
    parent = os.path.dirname(self.data_dir)
    with self.assertRaisesRegex(
        errors.MissingDataError,
        f'data_batch_3.bin does not exist.*\n  wget '
        f'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz && tar '
        f'-xzf cifar-10-binary.tar.gz -C {parent}'):
      cifar10_input.inputs('train', data_dir=self.data_dir, batch_size=4)

  def testTruncatedFile(self):
    path = os.path.join(self.data_dir, 'test_batch.bin')
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:
      f.write(data[:-1])
    with self.assertRaisesRegex(errors.DataError, f'{path} is truncated'):
      cifar10_input.inputs('test', data_dir=self.data_dir, batch_size=4)

  def testBadArguments(self):
    with self.assertRaisesRegex(errors.ConfigError, 'split'):
      cifar10_input.inputs('valid', data_dir=self.data_dir, batch_size=4)
    with self.assertRaisesRegex(errors.ConfigError, 'source'):
      cifar10_input.inputs('test', data_dir=self.data_dir, batch_size=4,
                           source='png')


if __name__ == '__main__':
  tf.test.main()
