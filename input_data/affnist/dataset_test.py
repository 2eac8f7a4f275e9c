"""Tests for the affNIST reader on small files of the official structure."""

import os
import tempfile

import numpy as np
from scipy import io as scipy_io
import tensorflow as tf

import errors
from input_data.affnist import dataset as affnist
from input_data import interface


def write_affnist_mat(path, images, labels):
  """Writes images `[n, 40, 40]` as affNIST does: a struct, one image per
  column of `image` `[1600, n]`, its pixels row by row."""
  one_of_n = np.zeros((10, len(labels)), np.uint8)
  one_of_n[labels, np.arange(len(labels))] = 1
  scipy_io.savemat(path, {'affNISTdata': {
      'image': images.reshape(len(images), -1).T,
      'label_int': labels.astype(np.uint8)[None],
      'label_one_of_n': one_of_n,
      'human_readable_transform': np.zeros((7, len(labels))),
  }})


class AffnistInputTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    rng = np.random.default_rng(0)
    self.images = rng.integers(0, 256, (7, 40, 40), np.uint8)
    self.labels = np.array([3, 1, 4, 1, 5, 9, 2])

  def testReadMat(self):
    path = os.path.join(self.dir, 'test.mat')
    write_affnist_mat(path, self.images, self.labels)
    # The file stores `image` column-major as MATLAB does: image 0 is the
    # first 1600 values on disk, and reading it transposed must fail.
    images, labels = affnist.read_mat(path)
    self.assertAllEqual(self.images, images)
    self.assertAllEqual(self.labels, labels)
    self.assertNotAllEqual(self.images, np.transpose(images, (0, 2, 1)))

  def testBatchesInNumericOrder(self):
    batch_dir = os.path.join(self.dir, 'test_batches')
    os.makedirs(batch_dir)
    for name, rows in (('1', slice(0, 2)), ('2', slice(2, 5)),
                       ('10', slice(5, 7))):
      write_affnist_mat(os.path.join(batch_dir, f'{name}.mat'),
                        self.images[rows], self.labels[rows])
    self.assertEqual([os.path.join(batch_dir, f'{n}.mat') for n in (1, 2, 10)],
                     affnist.test_files(self.dir))
    batches = list(affnist.inputs(
        'test', interface.Options(data_dir=self.dir), batch_size=4))
    self.assertEqual([4, 3], [len(b['labels']) for b in batches])
    self.assertAllClose(self.images[:4, None] / 255, batches[0]['images'])
    self.assertAllEqual(batches[0]['images'], batches[0]['recons_image'])
    self.assertAllEqual(
        self.labels, np.concatenate([b['recons_label'] for b in batches]))
    self.assertAllEqual(np.eye(10)[self.labels[:4]], batches[0]['labels'])
    shares = [np.concatenate([b['recons_label'] for b in affnist.inputs(
        'test', interface.Options(data_dir=self.dir), batch_size=4,
        input_context=tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=i))]) for i in range(2)]
    self.assertAllEqual(self.labels[0::2], shares[0])
    self.assertAllEqual(self.labels[1::2], shares[1])
    with self.assertRaisesRegex(errors.ConfigError, 'test split only'):
      affnist.inputs('train', interface.Options(data_dir=self.dir),
                     batch_size=4)

  def testMissingFilesSayWhatToGet(self):
    with self.assertRaisesRegex(
        errors.MissingDataError,
        f'(?s){self.dir}/test.mat .*wget https://www.cs.toronto.edu/'
        '~tijmen/affNIST/32x/transformed/test.mat.zip'):
      affnist.test_files(self.dir)

  def testWrongLayoutIsRejected(self):
    path = os.path.join(self.dir, 'test.mat')
    scipy_io.savemat(path, {'affNISTdata': {
        'image': self.images.reshape(7, -1), 'label_int': self.labels[None]}})
    with self.assertRaisesRegex(errors.DataError, r'image is \(7, 1600\)'):
      affnist.read_mat(path)
    scipy_io.savemat(path, {'mnist': self.images})
    with self.assertRaisesRegex(errors.DataError, 'no affNISTdata'):
      affnist.read_mat(path)


if __name__ == '__main__':
  tf.test.main()
