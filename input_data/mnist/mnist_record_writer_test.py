"""Tests for mnist_record_writer: shifting, record layout, MultiMNIST shards."""

import contextlib
import io
import os
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from input_data.mnist import canvas
from input_data.mnist import mnist_record_writer
from input_data import records
import progress

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


def read_records(path):
  return [tf.train.Example.FromString(r)
          for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]


def image_of(example, key='image_raw'):
  raw = example.features.feature[key].bytes_list.value[0]
  size = records.example_int(example, 'height')
  return np.frombuffer(raw, np.uint8).reshape(size, size)


class MnistRecordsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.tmp = tempfile.mkdtemp(dir=self.get_temp_dir())

  def testShiftedMnistFilename(self):
    self.assertEqual('valid_train_2shifted_mnist.tfrecords',
                     mnist_record_writer.shifted_mnist_filename('valid_train',
                                                                shift=2))
    self.assertEqual('multitest_6shifted_mnist.tfrecords',
                     mnist_record_writer.shifted_mnist_filename(
                         'test', shift=6, multi_targets=True))

  def testShift2d(self):
    """Shifts in every direction, by positive and negative amounts."""
    image = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    self.assertAllEqual([[0, 4, 5], [0, 7, 8], [0, 0, 0]],
                        mnist_record_writer.shift_2d(image, shift=(-1, 1),
                                                     max_shift=3))
    self.assertAllEqual([[0, 0, 0], [0, 0, 0], [3, 0, 0]],
                        mnist_record_writer.shift_2d(image, shift=(2, -2),
                                                     max_shift=2))

  def testShift2dZero(self):
    image = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    self.assertAllEqual(image, mnist_record_writer.shift_2d(image, shift=(0, 0),
                                                            max_shift=0))

  def testAllShiftsOrder(self):
    self.assertAllEqual(
        [[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 0], [0, 1], [1, -1],
         [1, 0], [1, 1]], mnist_record_writer.all_shifts(1))

  def testShiftWriteMnist(self):
    """Each image gives (2*shift+1)^2 padded, shifted, zero-filled records."""
    images = self.rng.integers(1, 256, (3, 28, 28), np.uint8)
    labels = np.array([5, 1, 8], np.uint8)
    path = os.path.join(self.tmp, 'train_1shifted_mnist.tfrecords')
    self.assertEqual(27, mnist_record_writer.shift_write_mnist(
        images, labels=labels, filename=path, shift=1, pad=2))
    examples = read_records(path)
    self.assertLen(examples, 27)
    for n, example in enumerate(examples):
      image_index, (row, col) = n // 9, mnist_record_writer.all_shifts(1)[n % 9]
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
        mnist_record_writer.single_example(image, label=3),
        REFERENCE_SINGLE_SPEC)
    self.assertEqual(3, parsed['label'])
    self.assertEqual([28, 28, 1], [parsed['height'], parsed['width'],
                                   parsed['depth']])
    self.assertAllEqual(image.ravel(),
                        tf.io.decode_raw(parsed['image_raw'], tf.uint8))
    merged = np.minimum(image.astype(int) + image.T, 255).astype(np.uint8)
    parsed = tf.io.parse_single_example(
        mnist_record_writer.multi_example(merged, image_1=image, label_1=1,
                                          image_2=image.T, label_2=2),
        REFERENCE_MULTI_SPEC)
    self.assertEqual([1, 2], [parsed['label_1'], parsed['label_2']])
    self.assertAllEqual(merged.ravel(),
                        tf.io.decode_raw(parsed['merged_raw'], tf.uint8))
    self.assertAllEqual(image.ravel(),
                        tf.io.decode_raw(parsed['image_raw_1'], tf.uint8))
    self.assertAllEqual(image.T.ravel(),
                        tf.io.decode_raw(parsed['image_raw_2'], tf.uint8))

  def testMultiShiftWrite(self):
    """The reference's case: 2 flat images, pad 4, shift 0, 1 pair, 2 shards.

    With a progress line per pair, when every pair is late.
    """
    colors = [255, 128]
    images = np.stack([np.full((28, 28), c, np.uint8) for c in colors])
    labels = np.array([3, 4], np.uint8)
    prefix = os.path.join(self.tmp, 'multitest_0shifted_mnist.tfrecords')
    out = io.StringIO()
    with mock.patch.object(progress, 'LINE_SECONDS', 0), \
        contextlib.redirect_stdout(out):
      filenames = mnist_record_writer.shift_write_multi_mnist(
          images, labels=labels, file_prefix=prefix, shift=0, pad=4,
          max_shard=1, num_pairs=1, seed=0)
    self.assertEqual(['Writing: 1/2 pairs', 'Writing: 2/2 pairs'],
                     [line.rsplit(',', 1)[0]
                      for line in out.getvalue().splitlines()])
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
      filenames = mnist_record_writer.shift_write_multi_mnist(
          images, labels=labels, file_prefix=prefix, shift=2, pad=1,
          max_shard=max_shard, num_pairs=num_pairs, seed=seed)
      written[run] = [open(f, 'rb').read() for f in filenames]
    self.assertEqual(written['a'], written['b'])
    self.assertNotEqual(written['a'], written['c'])

    shards = [read_records(f) for f in records.sharded_filenames(prefix, 4)]
    self.assertEqual([16, 16, 16, 12], [len(s) for s in shards])
    examples = [e for shard in shards for e in shard]
    shifts = mnist_record_writer.all_shifts(2).astype(np.int32)
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


if __name__ == '__main__':
  tf.test.main()
