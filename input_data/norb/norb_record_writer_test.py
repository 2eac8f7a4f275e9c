"""Tests for norb_record_writer on tiny smallNORB-format files."""

import gzip
import os
import tempfile

import numpy as np
import tensorflow as tf

import errors
from input_data.norb import norb_record_writer

BYTE_MAGIC = 0x1E3D4C55
INT_MAGIC = 0x1E3D4C54


def matrix_bytes(magic: int, array: np.ndarray) -> bytes:
  """A smallNORB binary matrix: little-endian magic, ndim, >= 3 dims, data."""
  dims = list(array.shape) + [1] * (3 - array.ndim)
  header = np.array([magic, array.ndim] + dims, '<i4')
  dtype = np.uint8 if magic == BYTE_MAGIC else '<i4'
  return header.tobytes() + array.astype(dtype).tobytes()


def write_norb_mat(data_dir: str, split: str, images: np.ndarray,
                   labels: np.ndarray, info: np.ndarray) -> None:
  """Writes a split's three .mat files, the categories gzipped."""
  name = norb_record_writer.SMALLNORB_FILES[split]
  with open(os.path.join(data_dir, name.format('dat')), 'wb') as f:
    f.write(matrix_bytes(BYTE_MAGIC, images))
  with gzip.open(os.path.join(data_dir, name.format('cat') + '.gz'),
                 'wb') as f:
    f.write(matrix_bytes(INT_MAGIC, labels))
  with open(os.path.join(data_dir, name.format('info')), 'wb') as f:
    f.write(matrix_bytes(INT_MAGIC, info))


class NorbRecordsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.data_dir = tempfile.mkdtemp(dir=self.get_temp_dir())

  def testParseMatrix(self):
    images = self.rng.integers(0, 256, (3, 2, 4, 4), np.uint8)
    self.assertAllEqual(images, norb_record_writer.parse_matrix(
        matrix_bytes(BYTE_MAGIC, images), name='dat'))
    labels = np.array([4, 0, 2])  # 1-D: the header still holds 3 dims
    self.assertAllEqual(labels, norb_record_writer.parse_matrix(
        matrix_bytes(INT_MAGIC, labels), name='cat'))
    info = self.rng.integers(0, 18, (3, 4))
    self.assertAllEqual(info, norb_record_writer.parse_matrix(
        matrix_bytes(INT_MAGIC, info), name='info'))

  def testParseMatrixRejectsBadFiles(self):
    data = matrix_bytes(INT_MAGIC, np.arange(3))
    with self.assertRaisesRegex(errors.DataError, 'magic number 0x1e3d4c99'):
      norb_record_writer.parse_matrix(
          np.array([0x1E3D4C99], '<i4').tobytes() + data[4:], name='x')
    with self.assertRaisesRegex(errors.DataError, 'truncated'):
      norb_record_writer.parse_matrix(data[:-1], name='x')

  def testReadSplitAndWriteRecords(self):
    images = self.rng.integers(0, 256, (3, 2, 8, 8), np.uint8)
    labels = np.array([4, 0, 2])
    info = self.rng.integers(0, 18, (3, 4))
    write_norb_mat(self.data_dir, 'test', images, labels, info)
    read = norb_record_writer.read_split('test', data_dir=self.data_dir)
    for expected, got in zip((images, labels, info), read):
      self.assertAllEqual(expected, got)

    path = os.path.join(self.data_dir, 'testduo.tfrecords')
    norb_record_writer.write_records(path, images=read[0], labels=read[1],
                                     info=read[2])
    spec = {
        'image_raw': tf.io.FixedLenFeature([], tf.string),
        'label': tf.io.FixedLenFeature([], tf.int64),
        'height': tf.io.FixedLenFeature([], tf.int64),
        'width': tf.io.FixedLenFeature([], tf.int64),
        'depth': tf.io.FixedLenFeature([], tf.int64),
        'meta': tf.io.FixedLenFeature([4], tf.int64),
    }
    parsed = [tf.io.parse_single_example(r, spec)
              for r in tf.data.TFRecordDataset(path)]
    self.assertLen(parsed, 3)
    for i, example in enumerate(parsed):
      self.assertAllEqual(images[i].ravel(),
                          tf.io.decode_raw(example['image_raw'], tf.uint8))
      self.assertEqual(labels[i], example['label'])
      self.assertAllEqual([8, 8, 2], [example['height'], example['width'],
                                      example['depth']])
      self.assertAllEqual(info[i], example['meta'])

  def testFilesThatDisagreeAreRejected(self):
    write_norb_mat(self.data_dir, 'test',
                   self.rng.integers(0, 256, (3, 2, 8, 8), np.uint8),
                   np.array([4, 0]), self.rng.integers(0, 18, (3, 4)))
    with self.assertRaisesRegex(
        errors.DataError, 'test: 3 images, 2 labels and 3 info rows'):
      norb_record_writer.read_split('test', data_dir=self.data_dir)

  def testMissingFile(self):
    name = norb_record_writer.SMALLNORB_FILES['train'].format('dat')
    with self.assertRaisesRegex(
        errors.MissingDataError,
        f'(?s){name} .*wget -P {self.data_dir} '
        f'https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/{name}.gz'):
      norb_record_writer.read_split('train', data_dir=self.data_dir)


if __name__ == '__main__':
  tf.test.main()
