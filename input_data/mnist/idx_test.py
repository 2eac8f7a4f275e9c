"""Tests for idx: reading the MNIST idx files and tfds' mnist into arrays."""

import gzip
import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import errors
from input_data.mnist import idx


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
  """An idx file: big-endian magic, dimensions, then the uint8 data."""
  header = [magic] + list(array.shape)
  return (b''.join(v.to_bytes(4, 'big') for v in header) +
          array.astype(np.uint8).tobytes())


def write_mnist_idx(data_dir: str, images: np.ndarray, labels: np.ndarray,
                    prefix: str = 'train', gzipped: bool = True) -> None:
  """Writes `{prefix}-images-idx3-ubyte[.gz]` and the labels file."""
  for name, magic, array in (
      (f'{prefix}-images-idx3-ubyte', idx.IMAGES_MAGIC, images),
      (f'{prefix}-labels-idx1-ubyte', idx.LABELS_MAGIC, labels)):
    opener = gzip.open if gzipped else open
    suffix = '.gz' if gzipped else ''
    with opener(os.path.join(data_dir, name + suffix), 'wb') as f:
      f.write(idx_bytes(magic, array))


class IdxTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.tmp = tempfile.mkdtemp(dir=self.get_temp_dir())

  def testReadImage(self):
    """Reads 3 images from a gzipped and a plain idx file, values in order."""
    colors = [0, 255, 100]
    images = np.stack([np.full((28, 28), c, np.uint8) for c in colors])
    labels = np.array([4, 0, 9], np.uint8)
    for gzipped in (True, False):
      data_dir = tempfile.mkdtemp(dir=self.tmp)
      write_mnist_idx(data_dir, images, labels, 't10k', gzipped)
      read_images, read_labels = idx.read_byte_data('test', data_dir=data_dir)
      self.assertAllEqual(images, read_images)
      self.assertAllEqual(labels, read_labels)

  def testImageCountComesFromHeader(self):
    images = self.rng.integers(0, 256, (7, 28, 28), np.uint8)
    write_mnist_idx(self.tmp, images, np.arange(7))
    read_images, _ = idx.read_byte_data('train', data_dir=self.tmp)
    self.assertAllEqual(images, read_images)

  def testWrongMagicNumberIsRejected(self):
    labels = idx_bytes(idx.LABELS_MAGIC, np.arange(3))
    with self.assertRaisesRegex(errors.DataError, 'magic number 0x00000801'):
      idx.parse_idx(labels, expected_magic=idx.IMAGES_MAGIC, name='x')

  def testTruncatedIdxIsRejected(self):
    data = idx_bytes(idx.IMAGES_MAGIC, np.zeros((3, 28, 28)))
    with self.assertRaisesRegex(errors.DataError, 'truncated'):
      idx.parse_idx(data[:-1], expected_magic=idx.IMAGES_MAGIC, name='x')

  def testMissingIdxFileNamesDownload(self):
    with self.assertRaisesRegex(
        errors.MissingDataError,
        f'(?s){self.tmp}/t10k-images-idx3-ubyte .*wget -P {self.tmp} '
        'https://storage.googleapis.com/cvdf-datasets/mnist/'
        't10k-images-idx3-ubyte.gz'):
      idx.read_byte_data('test', data_dir=self.tmp)

  def testValidationSplitRanges(self):
    count = idx.VALIDATION_SIZE + 3
    # 1x1 images holding their index, so ranges are easy to read.
    images = (np.arange(count) % 251).astype(np.uint8).reshape(count, 1, 1)
    labels = (np.arange(count) % 10).astype(np.uint8)
    valid_test, test_labels = idx.select_split('valid_test', images=images,
                                               labels=labels)
    valid_train, _ = idx.select_split('valid_train', images=images,
                                      labels=labels)
    train, _ = idx.select_split('train', images=images, labels=labels)
    self.assertAllEqual(images[:10000], valid_test)
    self.assertAllEqual(labels[:10000], test_labels)
    self.assertAllEqual(images[10000:], valid_train)
    self.assertAllEqual(images, train)
    with self.assertRaisesRegex(errors.DataError, 'more than 10000'):
      idx.select_split('valid_train', images=images[:10000],
                       labels=labels[:10000])

  def testReadTfdsData(self):
    with tfds.testing.mock_data(num_examples=12):
      images, labels = idx.read_tfds_data('test', tfds_data_dir=self.tmp)
    self.assertEqual((12, 28, 28), images.shape)
    self.assertEqual(np.uint8, images.dtype)
    self.assertEqual((12,), labels.shape)
    self.assertTrue(set(labels.tolist()) <= set(range(10)))


if __name__ == '__main__':
  tf.test.main()
