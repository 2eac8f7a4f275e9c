"""Tests for mnist_shift: idx reading, shifting, record layout, MultiMNIST."""

import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from input_data import records
from input_data.mnist import canvas
from input_data.mnist import generated_input
from input_data.mnist import mnist_input_record
from input_data.mnist import mnist_shift

# The feature spec the reference's reader parsed single-digit records with.
REFERENCE_SINGLE_SPEC = {
    'image_raw': tf.io.FixedLenFeature([], tf.string),
    'label': tf.io.FixedLenFeature([], tf.int64),
    'height': tf.io.FixedLenFeature([], tf.int64),
    'width': tf.io.FixedLenFeature([], tf.int64),
    'depth': tf.io.FixedLenFeature([], tf.int64),
}
REFERENCE_MULTI_SPEC = {
    'height': tf.io.FixedLenFeature([], tf.int64),
    'width': tf.io.FixedLenFeature([], tf.int64),
    'depth': tf.io.FixedLenFeature([], tf.int64),
    'label_1': tf.io.FixedLenFeature([], tf.int64),
    'label_2': tf.io.FixedLenFeature([], tf.int64),
    'image_raw_1': tf.io.FixedLenFeature([], tf.string),
    'image_raw_2': tf.io.FixedLenFeature([], tf.string),
    'merged_raw': tf.io.FixedLenFeature([], tf.string),
}


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
  """An idx file: big-endian magic, dimensions, then the uint8 data."""
  header = [magic] + list(array.shape)
  return (b''.join(v.to_bytes(4, 'big') for v in header) +
          array.astype(np.uint8).tobytes())


def write_mnist_idx(data_dir: str, images: np.ndarray, labels: np.ndarray,
                    prefix: str = 'train', gzipped: bool = True) -> None:
  """Writes `{prefix}-images-idx3-ubyte[.gz]` and the labels file."""
  for name, magic, array in (
      (f'{prefix}-images-idx3-ubyte', mnist_shift.IMAGES_MAGIC, images),
      (f'{prefix}-labels-idx1-ubyte', mnist_shift.LABELS_MAGIC, labels)):
    opener = gzip.open if gzipped else open
    suffix = '.gz' if gzipped else ''
    with opener(os.path.join(data_dir, name + suffix), 'wb') as f:
      f.write(idx_bytes(magic, array))


def read_records(path):
  return [tf.train.Example.FromString(r)
          for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]


def image_of(example, key='image_raw'):
  raw = example.features.feature[key].bytes_list.value[0]
  size = records.example_int(example, 'height')
  return np.frombuffer(raw, np.uint8).reshape(size, size)


class MnistShiftTest(tf.test.TestCase):

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
      read_images, read_labels = mnist_shift.read_byte_data(data_dir, 'test')
      self.assertAllEqual(images, read_images)
      self.assertAllEqual(labels, read_labels)

  def testImageCountComesFromHeader(self):
    images = self.rng.integers(0, 256, (7, 28, 28), np.uint8)
    write_mnist_idx(self.tmp, images, np.arange(7))
    read_images, _ = mnist_shift.read_byte_data(self.tmp, 'train')
    self.assertAllEqual(images, read_images)

  def testWrongMagicNumberIsRejected(self):
    labels = idx_bytes(mnist_shift.LABELS_MAGIC, np.arange(3))
    with self.assertRaisesRegex(ValueError, 'magic number 0x00000801'):
      mnist_shift.parse_idx(labels, mnist_shift.IMAGES_MAGIC, 'x')

  def testTruncatedIdxIsRejected(self):
    data = idx_bytes(mnist_shift.IMAGES_MAGIC, np.zeros((3, 28, 28)))
    with self.assertRaisesRegex(ValueError, 'truncated'):
      mnist_shift.parse_idx(data[:-1], mnist_shift.IMAGES_MAGIC, 'x')

  def testMissingIdxFileNamesDownload(self):
    with self.assertRaisesRegex(
        FileNotFoundError,
        f'(?s){self.tmp}/t10k-images-idx3-ubyte .*wget -P {self.tmp} '
        'https://storage.googleapis.com/cvdf-datasets/mnist/'
        't10k-images-idx3-ubyte.gz'):
      mnist_shift.read_byte_data(self.tmp, 'test')

  def testValidationSplitRanges(self):
    count = mnist_shift.VALIDATION_SIZE + 3
    # 1x1 images holding their index, so ranges are easy to read.
    images = (np.arange(count) % 251).astype(np.uint8).reshape(count, 1, 1)
    labels = (np.arange(count) % 10).astype(np.uint8)
    valid_test, test_labels = mnist_shift.select_split(images, labels,
                                                       'valid_test')
    valid_train, _ = mnist_shift.select_split(images, labels, 'valid_train')
    train, _ = mnist_shift.select_split(images, labels, 'train')
    self.assertAllEqual(images[:10000], valid_test)
    self.assertAllEqual(labels[:10000], test_labels)
    self.assertAllEqual(images[10000:], valid_train)
    self.assertAllEqual(images, train)
    with self.assertRaisesRegex(ValueError, 'more than 10000'):
      mnist_shift.select_split(images[:10000], labels[:10000], 'valid_train')

  def testShift2d(self):
    """Shifts in every direction, by positive and negative amounts."""
    image = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    self.assertAllEqual([[0, 4, 5], [0, 7, 8], [0, 0, 0]],
                        mnist_shift.shift_2d(image, (-1, 1), 3))
    self.assertAllEqual([[0, 0, 0], [0, 0, 0], [3, 0, 0]],
                        mnist_shift.shift_2d(image, (2, -2), 2))

  def testShift2dZero(self):
    image = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    self.assertAllEqual(image, mnist_shift.shift_2d(image, (0, 0), 0))

  def testAllShiftsOrder(self):
    self.assertAllEqual(
        [[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 0], [0, 1], [1, -1],
         [1, 0], [1, 1]], mnist_shift.all_shifts(1))

  def testShiftWriteMnist(self):
    """Each image gives (2*shift+1)^2 padded, shifted, zero-filled records."""
    images = self.rng.integers(1, 256, (3, 28, 28), np.uint8)
    labels = np.array([5, 1, 8], np.uint8)
    path = os.path.join(self.tmp, 'train_1shifted_mnist.tfrecords')
    self.assertEqual(27, mnist_shift.shift_write_mnist(images, labels, path,
                                                       shift=1, pad=2))
    examples = read_records(path)
    self.assertLen(examples, 27)
    for n, example in enumerate(examples):
      image_index, (row, col) = n // 9, mnist_shift.all_shifts(1)[n % 9]
      self.assertEqual(labels[image_index],
                       records.example_int(example, 'label'))
      for key, value in (('height', 32), ('width', 32), ('depth', 1)):
        self.assertEqual(value, records.example_int(example, key))
      expected = np.zeros((32, 32), np.uint8)
      expected[2 + row:30 + row, 2 + col:30 + col] = images[image_index]
      self.assertAllEqual(expected, image_of(example))

  def testRecordParsesWithReferenceSpec(self):
    image = self.rng.integers(0, 256, (28, 28), np.uint8)
    parsed = tf.io.parse_single_example(
        mnist_shift.single_example(image, 3), REFERENCE_SINGLE_SPEC)
    self.assertEqual(3, parsed['label'])
    self.assertEqual([28, 28, 1], [parsed['height'], parsed['width'],
                                   parsed['depth']])
    self.assertAllEqual(image.ravel(),
                        tf.io.decode_raw(parsed['image_raw'], tf.uint8))
    merged = np.minimum(image.astype(int) + image.T, 255).astype(np.uint8)
    parsed = tf.io.parse_single_example(
        mnist_shift.multi_example(image, 1, image.T, 2, merged),
        REFERENCE_MULTI_SPEC)
    self.assertEqual([1, 2], [parsed['label_1'], parsed['label_2']])
    self.assertAllEqual(merged.ravel(),
                        tf.io.decode_raw(parsed['merged_raw'], tf.uint8))

  def testMultiShiftWrite(self):
    """The reference's case: 2 flat images, pad 4, shift 0, 1 pair, 2 shards."""
    colors = [255, 128]
    images = np.stack([np.full((28, 28), c, np.uint8) for c in colors])
    labels = np.array([3, 4], np.uint8)
    prefix = os.path.join(self.tmp, 'multitest_0shifted_mnist.tfrecords')
    filenames = mnist_shift.shift_write_multi_mnist(
        images, labels=labels, file_prefix=prefix, shift=0, pad=4,
        max_shard=1, num_pairs=1, seed=0)
    self.assertEqual(records.sharded_filenames(prefix, 2), filenames)
    examples = read_records(filenames[0]) + read_records(filenames[1])
    self.assertLen(examples, 2)
    for example in examples:
      self.assertEqual(36, records.example_int(example, 'height'))
      merged = image_of(example, 'merged_raw')
      self.assertAllEqual(np.full((28, 28), 255), merged[4:-4, 4:-4])
      self.assertEqual(0, merged.sum() - merged[4:-4, 4:-4].sum())
    self.assertCountEqual(
        [(3, 4), (4, 3)],
        [(records.example_int(e, 'label_1'), records.example_int(e, 'label_2'))
         for e in examples])

  def testMultiRecords(self):
    """Random shifts, other digits, clipped sums, shard sizes, reproducible."""
    images = self.rng.integers(0, 256, (20, 28, 28), np.uint8)
    labels = np.arange(20) % 4
    num_pairs, max_shard = 3, 16
    written = {}
    for run, seed in (('a', 7), ('b', 7), ('c', 8)):
      prefix = os.path.join(self.tmp, run,
                            'multitrain_2shifted_mnist.tfrecords')
      os.makedirs(os.path.dirname(prefix))
      filenames = mnist_shift.shift_write_multi_mnist(
          images, labels=labels, file_prefix=prefix, shift=2, pad=1,
          max_shard=max_shard, num_pairs=num_pairs, seed=seed)
      written[run] = [open(f, 'rb').read() for f in filenames]
    self.assertEqual(written['a'], written['b'])
    self.assertNotEqual(written['a'], written['c'])

    shards = [read_records(f) for f in records.sharded_filenames(prefix, 4)]
    self.assertEqual([16, 16, 16, 12], [len(s) for s in shards])
    examples = [e for shard in shards for e in shard]
    shifts = mnist_shift.all_shifts(2).astype(np.int32)
    copies = canvas.place(np.repeat(images, len(shifts), axis=0),
                          np.tile(shifts, (20, 1)), pad=1, shift=2).numpy()
    # The bytes of every padded image shifted by at most 2 pixels.
    shifted = [{c.tobytes() for c in copies[i * 25:(i + 1) * 25]}
               for i in range(20)]
    uses = np.zeros(20, int)
    for example in examples:
      label_1 = records.example_int(example, 'label_1')
      label_2 = records.example_int(example, 'label_2')
      self.assertNotEqual(label_1, label_2)
      image_1, image_2 = image_of(example, 'image_raw_1'), image_of(
          example, 'image_raw_2')
      self.assertAllEqual(
          np.minimum(image_1.astype(int) + image_2, 255),
          image_of(example, 'merged_raw'))
      # image_1 is one of the padded images shifted by at most 2 pixels.
      matches = [i for i in range(20) if labels[i] == label_1 and
                 image_1.tobytes() in shifted[i]]
      self.assertLen(matches, 1)
      uses[matches[0]] += 1
    # Every image is the first digit of exactly num_pairs records.
    self.assertAllEqual(np.full(20, num_pairs), uses)

  def testReadTfdsData(self):
    with tfds.testing.mock_data(num_examples=12):
      images, labels = mnist_shift.read_tfds_data('test', self.tmp)
    self.assertEqual((12, 28, 28), images.shape)
    self.assertEqual(np.uint8, images.dtype)
    self.assertEqual((12,), labels.shape)
    self.assertTrue(set(labels.tolist()) <= set(range(10)))

  def testCommandLine(self):
    """The documented command writes the file that the reader opens."""
    count = mnist_shift.VALIDATION_SIZE + 2
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 10, 10] = 200
    write_mnist_idx(self.tmp, images, np.arange(count) % 10)
    output_dir = os.path.join(self.tmp, 'records')
    command = [sys.executable, '-m', 'input_data.mnist.mnist_shift',
               f'--data_dir={self.tmp}', f'--output_dir={output_dir}',
               '--split=valid_train', '--shift=2']
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    # Three commands at once: each process spends seconds starting TF.
    processes = [subprocess.Popen(arguments, cwd=root, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for arguments in (
                     command, command + ['--multi_targets'],
                     # --seed: the pairs generated_input makes from it.
                     command + ['--multi_targets', '--num_pairs=1',
                                '--max_shard=1', '--shift=6', '--pad=4',
                                '--seed=3'])]
    stderrs = [process.communicate()[1] for process in processes]
    self.assertEqual(0, processes[0].returncode, stderrs[0])
    self.assertNotEqual(0, processes[1].returncode)
    self.assertIn('--multi_targets needs --num_pairs > 0', stderrs[1])
    self.assertEqual(0, processes[2].returncode, stderrs[2])
    dataset = mnist_input_record.inputs(output_dir, 10, 'train', 1,
                                        validate=True)
    batch = next(iter(dataset))
    self.assertEqual((10, 1, 28, 28), batch['images'].shape)
    self.assertAllClose(np.full(10, 200 / 255), tf.reduce_sum(
        batch['images'], axis=[1, 2, 3]))
    self.assertLen(read_records(os.path.join(
        output_dir, 'valid_train_2shifted_mnist.tfrecords')), 2 * 25)
    written = list(mnist_input_record.inputs(os.path.join(
        output_dir, 'multivalid_train_6shifted_mnist.tfrecords@2'), 2,
                                             'test', 2))[0]
    generated = next(iter(generated_input.multi_mnist_inputs(
        images[10000:], np.arange(10000, count) % 10, split='test',
        batch_size=2, shift='reference', num_pairs=1, seed=3, eval_size=2)))
    for key in generated:
      self.assertAllEqual(generated[key], written[key])


if __name__ == '__main__':
  tf.test.main()
