"""Tests for mnist_input_record on records written by mnist_record_writer."""

import os
import tempfile

import numpy as np
import tensorflow as tf

import errors
from input_data.mnist import canvas
from input_data.mnist import mnist_input_record
from input_data.mnist import mnist_record_writer
from input_data import records


def _write_single(data_dir, split, shift, images, labels, pad=0):
  path = os.path.join(data_dir, mnist_record_writer.shifted_mnist_filename(
      split, shift=shift))
  mnist_record_writer.shift_write_mnist(images, labels=labels, filename=path,
                                        shift=shift, pad=pad)
  return path


def _reference_record(image, label):
  """A record as the reference's mnist_shift built it, field by field."""
  def int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
  example = tf.train.Example(features=tf.train.Features(feature={
      'height': int64(28),
      'width': int64(28),
      'depth': int64(1),
      'label': int64(label),
      'image_raw': tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[image.tobytes()])),
  }))
  return example.SerializeToString()


class MnistInputRecordTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.data_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    self.images = self.rng.integers(0, 256, (4, 28, 28), np.uint8)
    self.labels = np.array([3, 1, 4, 1], np.uint8)

  def testSingleTrain(self):
    _write_single(self.data_dir, 'train', 2, self.images, self.labels)
    dataset = mnist_input_record.inputs('train', data_dir=self.data_dir,
                                        batch_size=8)
    spec = dataset.element_spec
    self.assertEqual({'images', 'labels', 'recons_image', 'recons_label'},
                     set(spec))
    self.assertEqual([8, 1, 28, 28], spec['images'].shape.as_list())
    self.assertEqual([8, 10], spec['labels'].shape.as_list())
    self.assertEqual(tf.int32, spec['recons_label'].dtype)
    shifts = mnist_record_writer.all_shifts(2).astype(np.int32)
    copies = canvas.place(  # [4 * 25, 28, 28], image by image
        np.repeat(self.images, 25, axis=0), np.tile(shifts, (4, 1)), pad=0,
        shift=2).numpy().reshape(4, 25, 28, 28)
    for batch in dataset.take(30):  # 240 examples: more than one epoch
      self.assertAllEqual(batch['images'], batch['recons_image'])
      self.assertAllEqual(tf.one_hot(batch['recons_label'], 10),
                          batch['labels'])
      for image, label in zip(batch['images'].numpy(),
                              batch['recons_label'].numpy()):
        # Each image is a shifted copy of an image of its label, / 255.
        candidates = copies[self.labels == label].reshape(-1, 28, 28) / 255
        self.assertTrue(np.any(np.all(
            np.isclose(candidates, image[0]), axis=(1, 2))))

  def testTrainShuffles(self):
    labels = np.arange(40) % 10
    images = np.zeros((40, 28, 28), np.uint8)
    _write_single(self.data_dir, 'train', 2, images, labels.astype(np.uint8))
    batch = next(iter(mnist_input_record.inputs('train', data_dir=self.data_dir,
                                                batch_size=1000)))
    file_order = np.repeat(labels, 25)
    self.assertNotEqual(file_order.tolist(),
                        batch['recons_label'].numpy().tolist())
    self.assertAllEqual(np.bincount(file_order),
                        np.bincount(batch['recons_label'].numpy()))

  def testSingleTestReadsEveryExampleInOrder(self):
    images = self.rng.integers(0, 256, (13, 28, 28), np.uint8)
    labels = self.rng.integers(0, 10, 13).astype(np.uint8)
    _write_single(self.data_dir, 'test', 0, images, labels)
    dataset = mnist_input_record.inputs('test', data_dir=self.data_dir,
                                        batch_size=5)
    batches = list(dataset)
    self.assertEqual([5, 5, 3], [len(b['recons_label']) for b in batches])
    self.assertAllClose(
        images[:, None] / 255,
        np.concatenate([b['images'] for b in batches]))
    self.assertAllEqual(labels, np.concatenate(
        [b['recons_label'] for b in batches]))
    for first, second in zip(batches, dataset):  # deterministic
      self.assertAllEqual(first['images'], second['images'])

  def testValidateReadsValidationFiles(self):
    _write_single(self.data_dir, 'valid_test', 0, self.images, self.labels)
    _write_single(self.data_dir, 'valid_train', 2, self.images, self.labels)
    batch = next(iter(mnist_input_record.inputs('test', data_dir=self.data_dir,
                                                batch_size=4, validate=True)))
    self.assertAllEqual(self.labels, batch['recons_label'])
    batch = next(iter(mnist_input_record.inputs('train', data_dir=self.data_dir,
                                                batch_size=4, validate=True)))
    self.assertEqual((4, 1, 28, 28), batch['images'].shape)
    with self.assertRaisesRegex(
        errors.MissingDataError,
        'test_0shifted_mnist.tfrecords does not exist.*\n  python -m '
        f'input_data.mnist.mnist_shift --data_dir={self.data_dir} '
        '--split=test --shift=0'):
      mnist_input_record.inputs('test', data_dir=self.data_dir, batch_size=4)

  def testReadsReferenceLayoutRecords(self):
    path = os.path.join(self.data_dir, 'test_0shifted_mnist.tfrecords')
    with tf.io.TFRecordWriter(path) as writer:
      for image, label in zip(self.images, self.labels):
        writer.write(_reference_record(image, int(label)))
    batch = next(iter(mnist_input_record.inputs('test', data_dir=self.data_dir,
                                                batch_size=4)))
    self.assertAllClose(self.images[:, None] / 255, batch['images'])
    self.assertAllEqual(self.labels, batch['recons_label'])

  def testSingleTrainDistorted(self):
    _write_single(self.data_dir, 'train', 2, self.images, self.labels)
    dataset = mnist_input_record.inputs('train', data_dir=self.data_dir,
                                        batch_size=16, distort=True)
    self.assertEqual([16, 1, 24, 24],
                     dataset.element_spec['images'].shape.as_list())
    batch = next(iter(dataset))
    self.assertAllEqual(batch['images'], batch['recons_image'])
    # Nearest-neighbour rotation keeps pixel values: all are source values.
    source_values = set((self.images / 255).astype(np.float32).ravel()) | {0}
    self.assertTrue(set(batch['images'].numpy().ravel()) <= source_values)

  def testSingleTestDistorted(self):
    _write_single(self.data_dir, 'test', 0, self.images, self.labels)
    batch = next(iter(mnist_input_record.inputs('test', data_dir=self.data_dir,
                                                batch_size=4, distort=True)))
    self.assertAllClose(self.images[:, None, 2:26, 2:26] / 255,
                        batch['images'])
    self.assertAllEqual(self.labels, batch['recons_label'])

  def _write_multi(self, split, num_images=6, num_pairs=2, max_shard=5):
    prefix = os.path.join(
        self.data_dir, mnist_record_writer.shifted_mnist_filename(
            split, shift=2, multi_targets=True))
    images = self.rng.integers(0, 256, (num_images, 28, 28), np.uint8)
    labels = (np.arange(num_images) % 3).astype(np.uint8)
    filenames = mnist_record_writer.shift_write_multi_mnist(
        images, labels=labels, file_prefix=prefix, shift=2, pad=4,
        max_shard=max_shard, num_pairs=num_pairs, seed=0)
    return f'{prefix}@{len(filenames)}', filenames

  def testMultiTest(self):
    pattern, filenames = self._write_multi('test')
    self.assertEndsWith(pattern, 'multitest_2shifted_mnist.tfrecords@3')
    dataset = mnist_input_record.inputs('test', data_dir=pattern, batch_size=4,
                                        num_targets=2)
    batches = list(dataset)
    self.assertEqual([4, 4, 4], [len(b['labels']) for b in batches])
    examples = [tf.train.Example.FromString(r) for f in filenames
                for r in tf.data.TFRecordDataset(f).as_numpy_iterator()]
    features = {k: np.concatenate([b[k] for b in batches])
                for k in batches[0]}
    for i, example in enumerate(examples):
      def image(key, example=example):
        raw = example.features.feature[key].bytes_list.value[0]
        return np.frombuffer(raw, np.uint8).reshape(1, 36, 36) / 255
      label_1 = records.example_int(example, 'label_1')
      label_2 = records.example_int(example, 'label_2')
      self.assertAllClose(image('merged_raw'), features['images'][i])
      self.assertAllClose(image('image_raw_1'), features['recons_image'][i])
      self.assertAllClose(image('image_raw_2'), features['spare_image'][i])
      self.assertEqual(label_1, features['recons_label'][i])
      self.assertEqual(label_2, features['spare_label'][i])
      two_hot = np.zeros(10)
      two_hot[[label_1, label_2]] = 1
      self.assertAllEqual(two_hot, features['labels'][i])

  def testMultiTrain(self):
    pattern, _ = self._write_multi('train')
    dataset = mnist_input_record.inputs('train', data_dir=pattern, batch_size=8,
                                        num_targets=2)
    spec = dataset.element_spec
    for key in ('images', 'recons_image', 'spare_image'):
      self.assertEqual([8, 1, 36, 36], spec[key].shape.as_list())
    self.assertEqual([8, 10], spec['labels'].shape.as_list())
    batch = next(iter(dataset))
    self.assertAllEqual(np.full(8, 2.0), tf.reduce_sum(batch['labels'], 1))
    self.assertAllEqual(np.ones(8, bool),
                        batch['recons_label'] != batch['spare_label'])

  def testMissingShard(self):
    pattern, filenames = self._write_multi('test')
    os.remove(filenames[1])
    with self.assertRaisesRegex(
        errors.MissingDataError,
        f'(?s){filenames[1]} does not exist.*mnist_shift --multi_targets.*'
        '--split=test --shift=2'):
      mnist_input_record.inputs('test', data_dir=pattern, batch_size=4,
                                num_targets=2)

  def testTruncatedFileIsNamed(self):
    path = _write_single(self.data_dir, 'test', 0, self.images, self.labels)
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:
      f.write(data[:-100])
    with self.assertRaisesRegex(errors.DataError,
                                f'{path} is truncated or corrupt'):
      mnist_input_record.inputs('test', data_dir=self.data_dir, batch_size=4)

  def testEmptyFile(self):
    _write_single(self.data_dir, 'test', 0, self.images[:0], self.labels[:0])
    with self.assertRaisesRegex(errors.DataError, 'hold no records'):
      mnist_input_record.inputs('test', data_dir=self.data_dir, batch_size=4)

  def testHeightNoneTakesTheRecordsSize(self):
    _write_single(self.data_dir, 'test', 0, self.images, self.labels, pad=2)
    batch = next(iter(mnist_input_record.inputs('test', data_dir=self.data_dir,
                                                batch_size=4, height=None)))
    self.assertEqual([4, 1, 32, 32], batch['images'].shape.as_list())
    # The digits sit in the middle of the zero padding.
    self.assertAllClose(self.images / 255, batch['images'][:, 0, 2:30, 2:30])
    self.assertAllEqual(np.zeros((4, 2, 32)), batch['images'][:, 0, :2])

  def testBadArguments(self):
    path = _write_single(self.data_dir, 'test', 0, self.images, self.labels,
                         pad=4)
    with self.assertRaisesRegex(errors.DataError,
                                f'{path} holds 36x36 images'):
      mnist_input_record.inputs('test', data_dir=self.data_dir, batch_size=4)
    with self.assertRaisesRegex(errors.ConfigError, 'split'):
      mnist_input_record.inputs('valid', data_dir=self.data_dir, batch_size=4)
    with self.assertRaisesRegex(errors.ConfigError, 'num_targets'):
      mnist_input_record.inputs('test', data_dir=self.data_dir, batch_size=4,
                                num_targets=3)
    with self.assertRaisesRegex(errors.ConfigError, 'single-digit'):
      mnist_input_record.inputs('test', data_dir=self.data_dir + '/x@2',
                                batch_size=4, num_targets=2, distort=True)
    with self.assertRaisesRegex(errors.ConfigError, 'sharded pattern'):
      mnist_input_record.inputs('test', data_dir=self.data_dir, batch_size=4,
                                num_targets=2)


if __name__ == '__main__':
  tf.test.main()
