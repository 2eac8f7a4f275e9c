"""Tests for the SVHN pipeline on tensorflow-datasets' mock data."""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import errors
from input_data import interface
from input_data.svhn import dataset as svhn


class SvhnInputTest(tf.test.TestCase):

  def _options(self):
    return interface.Options(data_dir='unused',
                             tfds_data_dir=self.get_temp_dir())

  def testTrain(self):
    with tfds.testing.mock_data(num_examples=20):
      dataset = svhn.inputs('train', self._options(), batch_size=8)
      batches = list(dataset.take(4))  # 32 examples: more than one epoch
    spec = dataset.element_spec
    self.assertEqual([8, 3, 32, 32], spec['images'].shape.as_list())
    self.assertEqual([8, 10], spec['labels'].shape.as_list())
    for batch in batches:
      self.assertAllEqual(batch['images'], batch['recons_image'])
      self.assertAllEqual(tf.one_hot(batch['recons_label'], 10),
                          batch['labels'])
      # Per-image standardization: every image has mean 0 and variance 1.
      self.assertAllClose(np.zeros(8), tf.reduce_mean(batch['images'],
                                                      [1, 2, 3]), atol=1e-4)
      self.assertAllClose(np.ones(8), tf.math.reduce_std(
          batch['images'], [1, 2, 3]), atol=1e-3)

  def testTestOnceInOrderAndShared(self):
    with tfds.testing.mock_data(num_examples=10):
      labels = np.concatenate([b['recons_label'] for b in svhn.inputs(
          'test', self._options(), batch_size=4)])
      shares = [np.concatenate([b['recons_label'] for b in svhn.inputs(
          'test', self._options(), batch_size=4,
          input_context=tf.distribute.InputContext(
              num_input_pipelines=2, input_pipeline_id=i))])
                for i in range(2)]
    self.assertLen(labels, 10)
    self.assertAllEqual(labels[0::2], shares[0])
    self.assertAllEqual(labels[1::2], shares[1])
    with self.assertRaisesRegex(errors.ConfigError,
                                'split must be train or test'):
      svhn.inputs('extra', self._options(), batch_size=4)


if __name__ == '__main__':
  tf.test.main()
