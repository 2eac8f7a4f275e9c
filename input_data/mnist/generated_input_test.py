"""Tests for the generated MultiMNIST and expanded MNIST pipelines."""

import os
import tempfile

import numpy as np
import tensorflow as tf

import errors
from input_data.mnist import canvas
from input_data.mnist import generated_input
from input_data.mnist import mnist_input_record
from input_data.mnist import mnist_record_writer


def _digits(num_images, num_classes):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (num_images, 28, 28), np.uint8)
  return images, (np.arange(num_images) % num_classes).astype(np.uint8)


def _numpy(dataset, num_batches=None):
  """The batches of a dataset, concatenated: a dict of numpy arrays."""
  batches = list(dataset.take(num_batches) if num_batches else dataset)
  return {key: np.concatenate([b[key].numpy() for b in batches])
          for key in batches[0]}


def _context(pipeline_id, num_pipelines):
  return tf.distribute.InputContext(num_input_pipelines=num_pipelines,
                                    input_pipeline_id=pipeline_id)


class MultiMnistInputsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.images, self.labels = _digits(24, 4)

  def _inputs(self, split, batch_size=8, **kwargs):
    kwargs = {'num_pairs': 3, 'eval_size': 40, 'seed': 1, **kwargs}
    return generated_input.multi_mnist_inputs(
        split, images=self.images, labels=self.labels, batch_size=batch_size,
        **kwargs)

  def testTrainPairs(self):
    """Static shapes, two-hot labels of two classes, merged = clip(sum)."""
    dataset = self._inputs('train')
    for key in ('images', 'recons_image', 'spare_image'):
      self.assertEqual([8, 1, 36, 36], dataset.element_spec[key].shape)
    batch = _numpy(dataset, 20)
    self.assertTrue((batch['recons_label'] != batch['spare_label']).all())
    two_hot = np.zeros((160, 10))
    two_hot[np.arange(160), batch['recons_label']] = 1
    two_hot[np.arange(160), batch['spare_label']] = 1
    self.assertAllEqual(two_hot, batch['labels'])
    pixels = lambda key: np.round(batch[key] * 255).astype(int)
    merged = np.minimum(pixels('recons_image') + pixels('spare_image'), 255)
    self.assertAllEqual(merged, pixels('images'))
    self.assertTrue((merged == 255).any())  # the clipping was exercised

  def testShiftByName(self):
    """'paper': no digit pixel moves more than 4 pixels from its place."""
    images = np.zeros((24, 28, 28), np.uint8)
    images[:, 0, 0] = 255  # a single pixel at the digit's corner
    dataset = generated_input.multi_mnist_inputs(
        'train', images=images, labels=self.labels, batch_size=8,
        shift='paper', num_pairs=3)
    batch = _numpy(dataset, 30)
    corners = np.argwhere(batch['recons_image'][:, 0] > 0)[:, 1:]
    self.assertAllInRange(corners, 0, 8)
    self.assertAllEqual([0, 8], [corners.min(), corners.max()])
    with self.assertRaisesRegex(errors.ConfigError,
                                "unknown MultiMNIST shift 'x'"):
      self._inputs('train', shift='x')

  def testSeedDeterminism(self):
    first = _numpy(self._inputs('train'), 5)
    again = _numpy(self._inputs('train'), 5)
    other = _numpy(self._inputs('train', seed=2), 5)
    for key in first:
      self.assertAllEqual(first[key], again[key])
    self.assertNotAllEqual(first['images'], other['images'])
    test = _numpy(self._inputs('test'))
    self.assertLen(test['labels'], 40)
    self.assertAllEqual(test['images'], _numpy(self._inputs('test'))['images'])

  def testTrainingReshufflesEveryEpoch(self):
    """Epoch 2 (rounds 3-5) pairs the digits anew, in a new order."""
    stream = _numpy(self._inputs('train', batch_size=24), 6)
    epochs = [
        set(zip(stream['recons_label'][i * 72:(i + 1) * 72],
                [image.tobytes() for image in
                 stream['images'][i * 72:(i + 1) * 72]]))
        for i in range(2)]
    self.assertEmpty(epochs[0] & epochs[1])

  def testTestSetIsWhatMnistShiftWrites(self):
    """The same seed: the same pairs in the same order as the records."""
    prefix = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()),
                          'multitest_6shifted_mnist.tfrecords')
    filenames = mnist_record_writer.shift_write_multi_mnist(
        self.images, labels=self.labels, file_prefix=prefix,
        shift=canvas.MULTI_MNIST_SHIFTS['reference'],
        pad=canvas.MULTI_MNIST_PAD, max_shard=25, num_pairs=3, seed=4)
    written = _numpy(mnist_input_record.inputs(
        'test', data_dir=f'{prefix}@{len(filenames)}', batch_size=10,
        num_targets=2))
    self.assertLen(written['labels'], 72)
    generated = _numpy(self._inputs('test', seed=4, eval_size=72))
    train = _numpy(self._inputs('train', seed=4, batch_size=24), 3)
    for key in written:
      self.assertAllEqual(written[key], generated[key])
      self.assertAllEqual(written[key], train[key])

  def testWorkersShareTheStream(self):
    """Two pipelines: disjoint shares, every other pair of the whole."""
    for split, batches in (('test', None), ('train', 6)):
      whole = _numpy(self._inputs(split, batch_size=4), batches and 2 * batches)
      shares = [_numpy(self._inputs(split, batch_size=4,
                                    input_context=_context(i, 2)), batches)
                for i in range(2)]
      for i in range(2):
        self.assertAllEqual(whole['images'][i::2], shares[i]['images'])
        self.assertAllEqual(whole['recons_label'][i::2],
                            shares[i]['recons_label'])

  def testBadSplit(self):
    with self.assertRaisesRegex(errors.ConfigError,
                                'split must be train or test'):
      self._inputs('valid')


class ExpandedMnistInputsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.images, self.labels = _digits(20, 10)

  def _inputs(self, split, **kwargs):
    return generated_input.expanded_mnist_inputs(
        split, images=self.images, labels=self.labels, batch_size=10, seed=3,
        eval_size=20, **kwargs)

  def testTestDigitsInOrderAtFixedPlaces(self):
    test = _numpy(self._inputs('test'))
    self.assertEqual({'images', 'labels', 'recons_image', 'recons_label'},
                     set(test))
    self.assertAllEqual(self.labels, test['recons_label'])
    self.assertAllEqual(test['images'], test['recons_image'])
    self.assertAllEqual(test['images'], _numpy(self._inputs('test'))['images'])
    # Digit k, whole, somewhere within 6 pixels of the centre of 40x40.
    shifts = np.stack(np.meshgrid(range(-6, 7), range(-6, 7)), -1).reshape(
        -1, 2).astype(np.int32)
    for k, image in enumerate(test['images'][:, 0]):
      copies = canvas.place(np.repeat(self.images[k:k + 1], 169, axis=0),
                            shifts, pad=6, shift=6).numpy() / 255
      self.assertTrue(np.isclose(copies, image).all(axis=(1, 2)).any())

  def testTrainMovesDigitsEveryEpoch(self):
    dataset = self._inputs('train')
    self.assertEqual([10, 1, 40, 40], dataset.element_spec['images'].shape)
    stream = _numpy(dataset, 4)
    epochs = [dict(zip(stream['recons_label'][i * 20:(i + 1) * 20],
                       stream['images'][i * 20:(i + 1) * 20]))
              for i in range(2)]
    self.assertCountEqual(range(10), epochs[0])
    self.assertNotAllEqual(np.stack([epochs[0][k] for k in range(10)]),
                           np.stack([epochs[1][k] for k in range(10)]))
    self.assertAllClose(
        np.sort(self.images.sum(axis=(1, 2)) / 255),
        np.sort(stream['images'][:20].sum(axis=(1, 2, 3))), rtol=1e-5)


if __name__ == '__main__':
  tf.test.main()
