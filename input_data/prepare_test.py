"""Tests for prepare, tfds_data and the data sets' prepare, on demand."""

import contextlib
import gzip
import http.server
import io
import dataclasses
import os
import tempfile
import threading
import time
from unittest import mock
import urllib.error

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import errors
from input_data.cifar10 import dataset as cifar10_dataset
from input_data import interface
from input_data.mnist import dataset as mnist_dataset
from input_data.mnist import idx
from input_data.mnist.idx_test import write_mnist_idx
from input_data.mnist import mnist_record_writer
from input_data.norb import norb_record_writer
from input_data.norb import dataset as norb_dataset
from input_data.norb.norb_record_writer_test import write_norb_mat
from input_data import prepare
from input_data import tfds_data
import progress

# Generous: the offline error takes well under a second after the imports.
MAX_OFFLINE_SECONDS = 10
_NORB_SPEC = {
    'image_raw': tf.io.FixedLenFeature([], tf.string),
    'label': tf.io.FixedLenFeature([], tf.int64),
    'height': tf.io.FixedLenFeature([], tf.int64),
    'width': tf.io.FixedLenFeature([], tf.int64),
    'depth': tf.io.FixedLenFeature([], tf.int64),
    'meta': tf.io.FixedLenFeature([4], tf.int64),
}


def _read(path):
  with open(path, 'rb') as f:
    return f.read()


def _offline():
  """Makes every download server unreachable, as on a machine offline."""
  return mock.patch('urllib.request.urlopen',
                    side_effect=urllib.error.URLError('offline'))


def _online():
  """Makes every download server answer (tfds' mock_data downloads nothing)."""
  return mock.patch('urllib.request.urlopen')


def _printed(function, *args, **kwargs):
  """Calls function and returns its result and what it printed."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    result = function(*args, **kwargs)
  return result, out.getvalue()


class PrepareTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.data_dir = self._tmpdir()
    # An empty tensorflow-datasets folder: nothing is prepared there.
    self.tfds_dir = self._tmpdir()

  def _tmpdir(self):
    return tempfile.mkdtemp(dir=self.get_temp_dir())

  def _options(self, **kwargs):
    return interface.Options(data_dir=self.data_dir,
                             tfds_data_dir=self.tfds_dir, **kwargs)

  def _digits(self, count):
    images = self.rng.integers(0, 256, (count, 28, 28), np.uint8)
    return images, self.rng.integers(0, 10, count).astype(np.uint8)

  def _write_mnist_records(self, split, **kwargs):
    """mnist's write_records, and what it printed."""
    return _printed(mnist_dataset.write_records, split,
                    self._options(**kwargs))

  def _mnist_shift_bytes(self, images, labels, shift):
    """The bytes mnist_shift writes for these digits."""
    path = os.path.join(self._tmpdir(), 'records')
    mnist_record_writer.shift_write_mnist(images, labels=labels, filename=path,
                                          shift=shift, pad=0)
    return _read(path)

  def testMnistFromIdxEqualsMnistShift(self):
    for gzipped in (True, False):
      self.data_dir = self._tmpdir()
      train, test = self._digits(3), self._digits(2)
      write_mnist_idx(self.data_dir, *train, gzipped=gzipped)
      write_mnist_idx(self.data_dir, *test, prefix='t10k', gzipped=gzipped)
      with _offline():  # tfds is not needed
        train_path, printed = self._write_mnist_records('train')
        test_path, _ = self._write_mnist_records('test')
      self.assertEqual(
          os.path.join(self.data_dir, 'train_2shifted_mnist.tfrecords'),
          train_path)
      self.assertEqual(
          os.path.join(self.data_dir, 'test_0shifted_mnist.tfrecords'),
          test_path)
      self.assertEqual(self._mnist_shift_bytes(*train, 2), _read(train_path))
      self.assertEqual(self._mnist_shift_bytes(*test, 0), _read(test_path))
      # 3 images, 25 shifts each, 891 bytes a record.
      self.assertEqual(
          f'Reading MNIST train from the idx files in {self.data_dir}\n'
          f'Writing 75 records (0 MB) to {train_path}\n'
          f'Wrote {train_path} in 0 s\n', printed)
      self.assertEqual(75 * 891, os.path.getsize(train_path))

  def testMnistValidationFiles(self):
    images, labels = self._digits(idx.VALIDATION_SIZE + 2)
    write_mnist_idx(self.data_dir, images, labels, gzipped=False)
    train_path, _ = self._write_mnist_records('train', validate=True)
    test_path, _ = self._write_mnist_records('test', validate=True)
    start = idx.VALIDATION_SIZE
    self.assertEqual(self._mnist_shift_bytes(images[start:], labels[start:], 2),
                     _read(train_path))
    self.assertEqual(self._mnist_shift_bytes(images[:start], labels[:start], 0),
                     _read(test_path))
    # Nothing else is left in the folder, no temporary file in particular.
    self.assertCountEqual(
        ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
         'valid_train_2shifted_mnist.tfrecords',
         'valid_test_0shifted_mnist.tfrecords'], os.listdir(self.data_dir))

  def testMnistDigitsFromIdx(self):
    images, labels = self._digits(idx.VALIDATION_SIZE + 3)
    write_mnist_idx(self.data_dir, images, labels)
    for split, rows in (('train', slice(None)),
                        ('valid_train', slice(idx.VALIDATION_SIZE, None)),
                        ('valid_test', slice(idx.VALIDATION_SIZE))):
      (got_images, got_labels), _ = _printed(mnist_dataset.digits, split,
                                             self._options())
      self.assertEqual(np.uint8, got_images.dtype)
      self.assertEqual(np.uint8, got_labels.dtype)
      self.assertAllEqual(images[rows], got_images)
      self.assertAllEqual(labels[rows], got_labels)
    with self.assertRaisesRegex(errors.ConfigError, 'split must be one of'):
      mnist_dataset.digits('validation', self._options())

  def testBadSplits(self):
    for prepare_split in (mnist_dataset.write_records, norb_dataset.prepare):
      with self.assertRaisesRegex(errors.ConfigError,
                                  "split must be train or test, got 'valid'"):
        prepare_split('valid', self._options())

  def testMnistFromTfds(self):
    with tfds.testing.mock_data(num_examples=4), _online():
      path, printed = self._write_mnist_records('test')
      (images, labels), _ = _printed(mnist_dataset.digits, 'test',
                                     self._options())
      expected = idx.read_tfds_data('test', tfds_data_dir=self.tfds_dir)
    self.assertEqual((4, 28, 28), images.shape)
    self.assertEqual(np.uint8, images.dtype)
    self.assertAllEqual(expected[0], images)
    self.assertAllEqual(expected[1], labels)
    self.assertEqual(self._mnist_shift_bytes(images, labels, 0), _read(path))
    self.assertIn("reading tensorflow-datasets' mnist", printed)

  def testOfflineErrorIsFastAndNamesTheFiles(self):
    start = time.monotonic()
    with _offline():
      with self.assertRaises(errors.MissingDataError) as caught:
        mnist_dataset.write_records('train', self._options())
    self.assertLess(time.monotonic() - start, MAX_OFFLINE_SECONDS)
    message = str(caught.exception)
    self.assertNotIn('\n', message)
    self.assertRegex(
        message,
        f'^{self.data_dir} lacks train-images-idx3-ubyte\\[.gz\\] and '
        r'train-labels-idx1-ubyte\[.gz\] \(from https://storage.googleapis.'
        r'com/cvdf-datasets/mnist/\): place them there. Or else: '
        f'tensorflow-datasets has no prepared \'mnist\' in {self.tfds_dir} '
        r'.*cannot reach storage.googleapis.com.*download_and_prepare')
    self.assertEqual([], os.listdir(self.data_dir))

  def testOfflineErrorSaysAFolderIsMissing(self):
    missing = os.path.join(self.data_dir, 'no_such_folder')
    with _offline():
      with self.assertRaisesRegex(
          errors.MissingDataError,
          f'^the folder {missing} does not exist: make it and place '
          r'train-images-idx3-ubyte\[.gz\] and .* in it\. Or else: '):
        mnist_dataset.write_records(
            'train', dataclasses.replace(self._options(), data_dir=missing))
    self.assertFalse(os.path.exists(missing))

  def testOfflineErrorsOfNorbAndCifar10(self):
    with _offline():
      with self.assertRaisesRegex(
          errors.MissingDataError,
          f'^{self.data_dir} lacks smallnorb-5x46789x9x18x6x2x96x96-'
          r'training-dat.mat\[.gz\], .*-cat.mat\[.gz\], .*-info.mat\[.gz\] '
          r'\(from https://cs.nyu.edu/.*cannot reach cs.nyu.edu'):
        norb_dataset.prepare('train', self._options())
      with self.assertRaisesRegex(
          errors.MissingDataError,
          f'^{self.data_dir} lacks cifar-10-batches-bin/ \\(extract '
          r'https://www.cs.toronto.edu/.*cannot reach www.cs.toronto.edu'):
        cifar10_dataset.prepare('train', self._options())

  def testReusesPreparedFiles(self):
    write_mnist_idx(self.data_dir, *self._digits(2))
    path, _ = self._write_mnist_records('train')
    before = os.stat(path)
    # Without the idx files, and offline: only the records can be used.
    for name in os.listdir(self.data_dir):
      if name.endswith('.gz'):
        os.remove(os.path.join(self.data_dir, name))
    with _offline():
      again, printed = self._write_mnist_records('train')
    self.assertEqual(path, again)
    self.assertEqual('', printed)
    after = os.stat(path)
    self.assertEqual((before.st_ino, before.st_mtime_ns),
                     (after.st_ino, after.st_mtime_ns))

  def testExistingFileIsUsedAsItIs(self):
    path = os.path.join(self.data_dir, 'test_0shifted_mnist.tfrecords')
    with open(path, 'wb') as f:
      f.write(b'mine')
    write_mnist_idx(self.data_dir, *self._digits(2), prefix='t10k')
    self.assertEqual((path, ''), self._write_mnist_records('test'))
    self.assertEqual(b'mine', _read(path))

  def testFileWrittenMeanwhileIsNotOverwritten(self):
    write_mnist_idx(self.data_dir, *self._digits(2), prefix='t10k')
    path = os.path.join(self.data_dir, 'test_0shifted_mnist.tfrecords')
    examples = mnist_record_writer.shifted_examples

    def written_while_another_writes(*args, **kwargs):
      yield from examples(*args, **kwargs)
      with open(path, 'wb') as f:
        f.write(b'theirs')

    with mock.patch.object(mnist_record_writer, 'shifted_examples',
                           written_while_another_writes):
      _, printed = self._write_mnist_records('test')
    self.assertEqual(b'theirs', _read(path))
    self.assertIn(f'Another preparation wrote {path} meanwhile', printed)
    self.assertCountEqual(
        ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz',
         'test_0shifted_mnist.tfrecords'], os.listdir(self.data_dir))

  def testInterruptedPreparationLeavesNoFile(self):
    write_mnist_idx(self.data_dir, *self._digits(2), prefix='t10k')
    examples = mnist_record_writer.shifted_examples

    def interrupted(*args, **kwargs):
      yield next(examples(*args, **kwargs))
      raise KeyboardInterrupt

    with mock.patch.object(mnist_record_writer, 'shifted_examples',
                           interrupted):
      with self.assertRaises(KeyboardInterrupt):
        self._write_mnist_records('test')
    self.assertCountEqual(
        ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'],
        os.listdir(self.data_dir))

  def testLeftoverTemporaryFileIsNotPrepared(self):
    """A preparation killed outright leaves its temporary file behind."""
    images, labels = self._digits(2)
    write_mnist_idx(self.data_dir, images, labels, prefix='t10k')
    leftover = os.path.join(
        self.data_dir, 'test_0shifted_mnist.tfrecords.partial-0badf00d')
    with open(leftover, 'wb') as f:
      f.write(b'half')
    path, _ = self._write_mnist_records('test')
    self.assertEqual(self._mnist_shift_bytes(images, labels, 0), _read(path))
    self.assertEqual(b'half', _read(leftover))

  def testProgressLines(self):
    """A line per record when every record is late (progress' cadence)."""
    write_mnist_idx(self.data_dir, *self._digits(2), prefix='t10k')
    with mock.patch.object(progress, 'LINE_SECONDS', 0):
      path, printed = self._write_mnist_records('test')
    self.assertEqual([f'Writing 2 records (0 MB) to {path}',
                      'Writing: 1/2 records, 0 s', 'Writing: 2/2 records, 0 s',
                      f'Wrote {path} in 0 s'], printed.splitlines()[1:])

  def testNorbFromMatEqualsNorbConvert(self):
    images = self.rng.integers(0, 256, (3, 2, 8, 8), np.uint8)
    labels = np.array([4, 0, 2])
    info = self.rng.integers(0, 18, (3, 4))
    write_norb_mat(self.data_dir, 'test', images, labels, info)
    with _offline():  # tfds is not needed
      path, printed = _printed(norb_dataset.prepare, 'test',
                               self._options())
    self.assertEqual(os.path.join(self.data_dir, 'testduo.tfrecords'), path)
    expected = os.path.join(self._tmpdir(), 'testduo.tfrecords')
    norb_record_writer.write_records(expected, images=images, labels=labels,
                                     info=info)
    self.assertEqual(_read(expected), _read(path))
    self.assertIn(f'.mat files in {self.data_dir}', printed)

  def testNorbFromTfds(self):
    with tfds.testing.mock_data(num_examples=3), _online():
      path, _ = _printed(norb_dataset.prepare, 'train', self._options())
      expected = list(tfds.builder('smallnorb', data_dir=self.tfds_dir)
                      .as_dataset(split='train', shuffle_files=False)
                      .as_numpy_iterator())
    parsed = [tf.io.parse_single_example(r, _NORB_SPEC)
              for r in tf.data.TFRecordDataset(path)]
    self.assertLen(parsed, 3)
    for want, got in zip(expected, parsed):
      pair = np.stack([want['image'][..., 0], want['image2'][..., 0]])
      self.assertAllEqual(pair.ravel(),
                          tf.io.decode_raw(got['image_raw'], tf.uint8))
      self.assertEqual(want['label_category'], got['label'])
      self.assertAllEqual([96, 96, 2],
                          [got['height'], got['width'], got['depth']])
      # The original files' azimuth, twice tensorflow-datasets' label.
      self.assertAllEqual(
          [want['instance'], want['label_elevation'],
           2 * want['label_azimuth'], want['label_lighting']], got['meta'])

  def testCifar10Source(self):
    with tfds.testing.mock_data(num_examples=2), _online():
      source, printed = _printed(cifar10_dataset.prepare, 'test',
                                 self._options())
    self.assertEqual('tfds', source)
    self.assertEqual('tfds', cifar10_dataset.source(self.data_dir))
    self.assertIn("reading tensorflow-datasets' cifar10", printed)
    os.mkdir(os.path.join(self.data_dir, 'cifar-10-batches-bin'))
    self.assertEqual('bin', cifar10_dataset.source(self.data_dir))
    with _offline():  # tfds is not needed
      self.assertEqual('bin', cifar10_dataset.prepare('test', self._options()))


  def testOpenMaybeGzipped(self):
    tmp = self._tmpdir()
    with open(os.path.join(tmp, 'plain'), 'wb') as f:
      f.write(b'plain bytes')
    with gzip.open(os.path.join(tmp, 'zipped.gz'), 'wb') as f:
      f.write(b'zipped bytes')
    for name in ('plain', 'zipped'):
      with prepare.open_maybe_gzipped(os.path.join(tmp, name), 'get') as f:
        self.assertEqual(name.encode() + b' bytes', f.read())
    with self.assertRaisesRegex(errors.MissingDataError,
                                'other.gz.*\n  wget x'):
      prepare.open_maybe_gzipped(os.path.join(tmp, 'other'), 'wget x')

  def testLoadTfdsMock(self):
    with tfds.testing.mock_data(num_examples=6):
      dataset = tfds_data.load_tfds('mnist', 'test',
                                    tfds_data_dir=self._tmpdir())
      examples = list(dataset.as_numpy_iterator())
    self.assertLen(examples, 6)
    self.assertEqual((28, 28, 1), examples[0]['image'].shape)

  def testLoadTfdsWithoutNetwork(self):
    data_dir = self._tmpdir()
    with mock.patch.object(tfds.core.DatasetBuilder, 'download_and_prepare',
                           side_effect=ConnectionError('network down')):
      with self.assertRaisesRegex(
          errors.MissingDataError,
          f'^tensorflow-datasets has no prepared \'mnist\' in {data_dir} '
          '.*network down.*download_and_prepare.*copy DIR/mnist into'):
        tfds_data.load_tfds('mnist', 'train', tfds_data_dir=data_dir)

  def testPrepareTfdsFailsFastWithoutServer(self):
    data_dir = self._tmpdir()
    download = mock.Mock()
    start = time.monotonic()
    with mock.patch.object(tfds.core.DatasetBuilder, 'download_and_prepare',
                           download):
      # .invalid never resolves (RFC 6761), online or not.
      with self.assertRaisesRegex(
          errors.MissingDataError,
          '^[^\n]*could not download it \\(cannot reach capsules.invalid'):
        tfds_data.prepare_tfds('mnist', tfds_data_dir=data_dir,
                               server_url='https://capsules.invalid/a.gz')
    self.assertLess(time.monotonic() - start, 15)
    download.assert_not_called()

  def testPrepareTfdsDownloadsWhenServerAnswers(self):
    """A server that answers, even 404 to a HEAD request, is reachable."""
    server = http.server.HTTPServer(('127.0.0.1', 0),
                                    http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    download = mock.Mock()
    try:
      with mock.patch.object(tfds.core.DatasetBuilder,
                             'download_and_prepare', download):
        tfds_data.prepare_tfds(
            'mnist', tfds_data_dir=self._tmpdir(),
            server_url=f'http://127.0.0.1:{server.server_port}/missing.gz')
    finally:
      server.shutdown()
      server.server_close()
    download.assert_called_once()

if __name__ == '__main__':
  tf.test.main()
