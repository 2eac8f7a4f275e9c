"""Tests for norb_convert on tiny smallNORB-format files."""

import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from input_data.norb import norb_convert

BYTE_MAGIC = 0x1E3D4C55
INT_MAGIC = 0x1E3D4C54


def matrix_bytes(magic: int, array: np.ndarray) -> bytes:
  """A smallNORB binary matrix: little-endian magic, ndim, >= 3 dims, data."""
  dims = list(array.shape) + [1] * (3 - array.ndim)
  header = np.array([magic, array.ndim] + dims, '<i4')
  dtype = np.uint8 if magic == BYTE_MAGIC else '<i4'
  return header.tobytes() + array.astype(dtype).tobytes()


class NorbConvertTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.data_dir = tempfile.mkdtemp(dir=self.get_temp_dir())

  def testParseMatrix(self):
    images = self.rng.integers(0, 256, (3, 2, 4, 4), np.uint8)
    self.assertAllEqual(images, norb_convert.parse_matrix(
        matrix_bytes(BYTE_MAGIC, images), 'dat'))
    labels = np.array([4, 0, 2])  # 1-D: the header still holds 3 dims
    self.assertAllEqual(labels, norb_convert.parse_matrix(
        matrix_bytes(INT_MAGIC, labels), 'cat'))
    info = self.rng.integers(0, 18, (3, 4))
    self.assertAllEqual(info, norb_convert.parse_matrix(
        matrix_bytes(INT_MAGIC, info), 'info'))

  def testParseMatrixRejectsBadFiles(self):
    data = matrix_bytes(INT_MAGIC, np.arange(3))
    with self.assertRaisesRegex(ValueError, 'magic number 0x1e3d4c99'):
      norb_convert.parse_matrix(
          np.array([0x1E3D4C99], '<i4').tobytes() + data[4:], 'x')
    with self.assertRaisesRegex(ValueError, 'truncated'):
      norb_convert.parse_matrix(data[:-1], 'x')

  def testReadSplitAndWriteRecords(self):
    images = self.rng.integers(0, 256, (3, 2, 8, 8), np.uint8)
    labels = np.array([4, 0, 2])
    info = self.rng.integers(0, 18, (3, 4))
    name = norb_convert.SMALLNORB_FILES['test']
    with open(os.path.join(self.data_dir, name.format('dat')), 'wb') as f:
      f.write(matrix_bytes(BYTE_MAGIC, images))
    with gzip.open(os.path.join(self.data_dir, name.format('cat') + '.gz'),
                   'wb') as f:
      f.write(matrix_bytes(INT_MAGIC, labels))
    with open(os.path.join(self.data_dir, name.format('info')), 'wb') as f:
      f.write(matrix_bytes(INT_MAGIC, info))
    read = norb_convert.read_split(self.data_dir, 'test')
    for expected, got in zip((images, labels, info), read):
      self.assertAllEqual(expected, got)

    path = os.path.join(self.data_dir, 'testduo.tfrecords')
    norb_convert.write_records(path, *read)
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

  def testNorbExampleSameBytesInEveryProcess(self):
    code = ('import sys; import numpy as np; '
            'from input_data.norb import norb_convert; '
            'sys.stdout.buffer.write(norb_convert.norb_example('
            'np.zeros((2, 2, 2), np.uint8), 3, [1, 2, 4, 5]))')
    # Protobuf draws its map order at random in each process.
    processes = [subprocess.Popen([sys.executable, '-c', code],
                                  stdout=subprocess.PIPE) for _ in range(2)]
    outputs = [process.communicate()[0] for process in processes]
    self.assertEqual([0, 0], [process.returncode for process in processes])
    expected = norb_convert.norb_example(np.zeros((2, 2, 2), np.uint8), 3,
                                         [1, 2, 4, 5])
    self.assertEqual([expected] * 2, outputs)

  def testMissingFile(self):
    name = norb_convert.SMALLNORB_FILES['train'].format('dat')
    with self.assertRaisesRegex(
        FileNotFoundError,
        f'(?s){name} .*wget -P {self.data_dir} '
        f'https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/{name}.gz'):
      norb_convert.read_split(self.data_dir, 'train')


if __name__ == '__main__':
  tf.test.main()
