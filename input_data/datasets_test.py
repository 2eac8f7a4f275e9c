"""Tests for datasets: the registry, and each data set read by its name."""

import contextlib
import io
import os
import tempfile
from unittest import mock
import urllib.error

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import errors
from input_data.affnist.dataset_test import write_affnist_mat
from input_data import datasets
from input_data.mnist.idx_test import write_mnist_idx
from input_data.mnist import mnist_record_writer
from input_data.norb.norb_record_writer_test import write_norb_mat
from input_data import tfds_data
import test_utils

_NAMES = ['mnist', 'norb', 'cifar10', 'expanded_mnist', 'affnist',
          'affine_mnist', 'svhn']


def _offline():
  """Makes every download server unreachable, as on a machine offline."""
  return mock.patch('urllib.request.urlopen',
                    side_effect=urllib.error.URLError('offline'))


def _read(input_fn, split, batch_size):
  """The batches of a split, concatenated, and what reading printed."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    batches = list(input_fn(split, batch_size).as_numpy_iterator())
  return {key: np.concatenate([batch[key] for batch in batches])
          for key in batches[0]}, out.getvalue()


class DatasetsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(0)
    self.data_dir = tempfile.mkdtemp(dir=self.get_temp_dir())

  def _mnist_test_digits(self, count=5):
    """Writes the test idx files; returns their digits."""
    images = self.rng.integers(0, 256, (count, 28, 28), np.uint8)
    labels = (np.arange(count) % 10).astype(np.uint8)
    write_mnist_idx(self.data_dir, images, labels, prefix='t10k')
    return images, labels

  def testRegistryHasAnEntryPerName(self):
    self.assertEqual(_NAMES, list(datasets.DATASETS))
    for name, data_set in datasets.DATASETS.items():
      self.assertEqual(name, data_set.name)
      expected = ('test',) if data_set.train_on else ('train', 'test')
      self.assertEqual(expected, data_set.splits)
    self.assertEqual(['affnist', 'affine_mnist'],
                     [name for name, data_set in datasets.DATASETS.items()
                      if data_set.train_on])
    self.assertEqual(
        ['mnist', 'expanded_mnist'],
        [name for name, data_set in datasets.DATASETS.items()
         if data_set.validate])

  def testUnknownNameListsTheKnownOnes(self):
    message = ("unknown dataset 'mnist2'; use one of mnist, norb, cifar10, "
               'expanded_mnist, affnist, affine_mnist, svhn')
    with self.assertRaises(errors.ConfigError) as caught:
      datasets.input_fn('mnist2', data_dir=self.data_dir)
    self.assertEqual(message, str(caught.exception))
    with self.assertRaises(errors.ConfigError) as caught:
      datasets.prepare_split('mnist2', 'test', data_dir=self.data_dir)
    self.assertEqual(message, str(caught.exception))

  def testArgumentMistakes(self):
    with self.assertRaisesRegex(errors.ConfigError, 'data_dir is required'):
      datasets.input_fn('mnist', data_dir=None)
    with self.assertRaisesRegex(
        errors.ConfigError,
        'validate is only available for mnist and expanded_mnist, not norb'):
      datasets.prepare_split('norb', 'test', data_dir=self.data_dir,
                             validate=True)
    test_only = ("affnist is a test set only; train on expanded_mnist and "
                 "evaluate on affnist \\(got split 'train'\\)")
    with self.assertRaisesRegex(errors.ConfigError, test_only):
      datasets.prepare_split('affnist', 'train', data_dir=self.data_dir)
    read = datasets.input_fn('affnist', data_dir=self.data_dir)
    with self.assertRaisesRegex(errors.ConfigError, test_only):
      read('train', 4)
    with self.assertRaisesRegex(errors.ConfigError,
                                "split must be train or test, got 'valid'"):
      datasets.prepare_split('cifar10', 'valid', data_dir=self.data_dir)
    with self.assertRaisesRegex(errors.ConfigError,
                                'num_targets must be 1 or 2, got 3'):
      datasets.input_fn('mnist', data_dir=self.data_dir, num_targets=3)(
          'test', 4)
    # Nothing was made.
    self.assertEqual([], os.listdir(self.data_dir))

  def testEveryDataSetReadsItsTestSplit(self):
    """Each entry prepares and reads its own files, in order."""
    mnist_images, mnist_labels = self._mnist_test_digits()
    norb_labels = np.array([4, 0, 2])
    write_norb_mat(self.data_dir, 'test',
                   self.rng.integers(0, 256, (3, 2, 48, 48), np.uint8),
                   norb_labels, self.rng.integers(0, 18, (3, 4)))
    affnist_labels = np.array([3, 1, 4, 1, 5, 9, 2])
    write_affnist_mat(os.path.join(self.data_dir, 'test.mat'),
                      self.rng.integers(0, 256, (7, 40, 40), np.uint8),
                      affnist_labels)
    cifar_labels = np.array([6, 2, 8], np.uint8)
    os.mkdir(os.path.join(self.data_dir, 'cifar-10-batches-bin'))
    with open(os.path.join(self.data_dir, 'cifar-10-batches-bin',
                           'test_batch.bin'), 'wb') as f:
      for label in cifar_labels:
        f.write(bytes([label]) + self.rng.integers(
            0, 256, 3 * 32 * 32, np.uint8).tobytes())
    expected = {
        'mnist': ([1, 28, 28], mnist_labels),
        'norb': ([2, 32, 32], norb_labels),
        'cifar10': ([3, 24, 24], cifar_labels),
        'expanded_mnist': ([1, 40, 40], mnist_labels),
        'affnist': ([1, 40, 40], affnist_labels),
        'affine_mnist': ([1, 40, 40], mnist_labels),
        'svhn': ([3, 32, 32], None),
    }
    with _offline(), tfds.testing.mock_data(num_examples=6):
      for name, (shape, labels) in expected.items():
        datasets.prepare_split(name, 'test', data_dir=self.data_dir)
        features, _ = _read(datasets.input_fn(
            name, data_dir=self.data_dir, eval_size=len(mnist_labels)),
                            'test', 4)
        self.assertEqual(shape, list(features['images'].shape[1:]), name)
        if labels is not None:
          self.assertAllEqual(labels, features['recons_label'], name)
    self.assertAllClose(mnist_images[:, None] / 255, _read(
        datasets.input_fn('mnist', data_dir=self.data_dir), 'test', 4)[0][
            'images'])

  def testPrepareSplitMakesWhatTheInputFunctionReads(self):
    images, labels = self._mnist_test_digits(3)
    with _offline():  # tfds is not needed
      printed = io.StringIO()
      with contextlib.redirect_stdout(printed):
        datasets.prepare_split('mnist', 'test', data_dir=self.data_dir)
      self.assertIn('Writing 3 records', printed.getvalue())
      self.assertIn('test_0shifted_mnist.tfrecords',
                    os.listdir(self.data_dir))
      features, printed = _read(
          datasets.input_fn('mnist', data_dir=self.data_dir), 'test', 2)
    self.assertEqual('', printed)
    self.assertAllEqual(labels, features['recons_label'])
    self.assertAllClose(images[:, None] / 255, features['images'])

  def testInputFnPreparesMissingRecords(self):
    images, labels = self._mnist_test_digits(3)
    input_fn = datasets.input_fn('mnist', data_dir=self.data_dir)
    with _offline():  # tfds is not needed
      features, printed = _read(input_fn, 'test', 2)
    self.assertIn('Writing 3 records', printed)
    self.assertAllEqual(labels, features['recons_label'])
    self.assertAllClose(images / 255, features['images'][:, 0])

  def testMultiMnistGeneratedEqualsItsRecords(self):
    """MultiMNIST from the digits, or from the records of the same seed."""
    images, labels = self._mnist_test_digits(12)
    prefix = os.path.join(self.data_dir, 'multitest_6shifted_mnist.tfrecords')
    shards = mnist_record_writer.shift_write_multi_mnist(
        images, labels=labels, file_prefix=prefix, shift=6, pad=4,
        max_shard=5, num_pairs=1, seed=3)
    pattern = f'{prefix}@{len(shards)}'
    datasets.prepare_split('mnist', 'test', data_dir=pattern, num_targets=2)
    written, _ = _read(datasets.input_fn('mnist', data_dir=pattern,
                                         num_targets=2), 'test', 4)
    with _offline():
      generated, _ = _read(datasets.input_fn(
          'mnist', data_dir=self.data_dir, num_targets=2, num_pairs=1, seed=3,
          eval_size=12), 'test', 4)
    self.assertLen(written['labels'], 12)
    for key in written:
      self.assertAllEqual(written[key], generated[key])
    with self.assertRaisesRegex(
        errors.MissingDataError,
        f'(?s){prefix}-00000-of-00004 does not exist.*mnist_shift '
        '--multi_targets'):
      datasets.prepare_split('mnist', 'test', data_dir=f'{prefix}@4',
                             num_targets=2)


if __name__ == '__main__':
  tf.test.main()


def _no_tfds(name, *args, **kwargs):
  raise FileNotFoundError(f'tensorflow-datasets cannot download {name}')


def test_validate_reads_the_validation_files(tmp_path):
  images, labels = test_utils.random_digits(100, seed=4)
  test_utils.write_mnist_records(
      str(tmp_path / 'valid_test_0shifted_mnist.tfrecords'), images, labels)
  validation = datasets.input_fn('mnist', data_dir=str(tmp_path),
                                 validate=True)
  batch = next(iter(validation('test', 100)))
  np.testing.assert_array_equal(batch['recons_label'], labels)
  # Without validate the test split needs the test digits (offline here).
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tfds_data, 'prepare_tfds', _no_tfds)
    with pytest.raises(FileNotFoundError, match='lacks t10k-images'):
      datasets.input_fn('mnist', data_dir=str(tmp_path))('test', 100)


def test_mnist_input_takes_the_records_image_size(tmp_path):
  # mnist_shift --pad=2 writes 32x32 digits; the model is built for them.
  images, labels = test_utils.random_digits(3, seed=5)
  padded = np.pad(images, [(0, 0), (2, 2), (2, 2)])
  test_utils.write_mnist_records(
      str(tmp_path / 'test_0shifted_mnist.tfrecords'), padded, labels)
  batch = next(iter(datasets.input_fn('mnist', data_dir=str(tmp_path))(
      'test', 3)))
  assert batch['images'].shape == (3, 1, 32, 32)
  np.testing.assert_allclose(batch['images'][:, 0], padded / 255)


def test_multi_mnist_reads_the_digits_once(tmp_path, capsys):
  """Training builds its pipeline twice (first for the shapes) in a process."""
  images, _ = test_utils.random_digits(4, seed=6)
  write_mnist_idx(str(tmp_path), images, np.arange(4, dtype=np.uint8))
  input_fn = datasets.input_fn('mnist', data_dir=str(tmp_path), num_targets=2,
                               num_pairs=1)
  first, again = (next(input_fn('train', 4).as_numpy_iterator())
                  for _ in range(2))
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  assert capsys.readouterr().out.splitlines() == [
      f'Reading MNIST train from the idx files in {tmp_path}']
