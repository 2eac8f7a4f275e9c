"""Tests for the baseline ConvModel."""

import numpy as np
import tensorflow as tf

from models import conv_model
from models import hparams as hparams_lib
from models import model as model_lib
from models import registry


class ConvModelTest(tf.test.TestCase):

  def testFullMnistParameterCount(self):
    model = conv_model.ConvModel(hparams_lib.default_hparams())
    model.build(model_lib.DataShape(28, 1))
    # conv1 5x5x1x512 + 512; 28 -> 24 (VALID) -> 12 (pool).
    # conv2 5x5x512x256 + 256; 12 -> 8 -> 4 (pool): fc1 takes 256*4*4.
    # fc1 4096*1024 + 1024; softmax_layer 1024*10 + 10.
    expected = (25 * 512 + 512) + (25 * 512 * 256 + 256) + (
        4096 * 1024 + 1024) + (1024 * 10 + 10)
    count = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    self.assertEqual(count, expected)
    self.assertEqual(list(model.tf1_variable_map()), [
        'conv1/weights', 'conv1/biases', 'conv2/weights', 'conv2/biases',
        'fc1/weights', 'fc1/biases', 'softmax_layer/weights',
        'softmax_layer/biases', 'global_step'])

  def testFlattensChannelsFirst(self):
    """fc1 row r reads channel r // (h*w), position r % (h*w)."""
    model = conv_model.ConvModel(
        hparams_lib.default_hparams().parse('padding=SAME'))
    model.build(model_lib.DataShape(4, 1))  # 4 -> pool 2 -> pool 1: fc1 rows are the channels.
    images = tf.random.uniform((1, 1, 4, 4))
    features = dict(images=images, labels=tf.one_hot([3], 10),
                    recons_image=images, recons_label=tf.constant([3]))
    weights = np.zeros((256, 1024), np.float32)
    weights[7, 0] = 1.0   # hidden unit 0 copies channel 7
    model.tf1_variable_map()['fc1/weights'].assign(weights)
    model.tf1_variable_map()['fc1/biases'].assign(np.zeros(1024))
    softmax = np.zeros((1024, 10), np.float32)
    softmax[0, 0] = 1.0
    model.tf1_variable_map()['softmax_layer/weights'].assign(softmax)
    model.tf1_variable_map()['softmax_layer/biases'].assign(np.zeros(10))
    hidden = tf.transpose(images, [0, 2, 3, 1])
    for conv in model._convs:
      hidden = tf.nn.max_pool2d(conv(hidden), 2, 2, 'SAME')
    channel_7 = tf.nn.relu(hidden[0, 0, 0, 7])
    self.assertAllClose(model.inference(features).logits[0, 0], channel_7)
    self.assertIsNone(model.inference(features).remakes)


def _paper_features(batch=4, seed=0):
  rng = np.random.default_rng(seed)
  images = tf.constant(rng.uniform(size=(batch, 1, 28, 28)), tf.float32)
  labels = rng.integers(0, 10, batch)
  return dict(images=images, labels=tf.one_hot(labels, 10),
              recons_image=images, recons_label=tf.constant(labels, tf.int32))


class PaperBaselineModelTest(tf.test.TestCase):

  def testFullMnistParameterCount(self):
    # padding=VALID in the hparams: the paper's network ignores it.
    model = conv_model.PaperBaselineModel(hparams_lib.default_hparams())
    model.build(model_lib.DataShape(28, 1))
    # conv1 5x5x1x256 + 256 = 6,656; conv2 5x5x256x256 + 256 = 1,638,656;
    # conv3 5x5x256x128 + 128 = 819,328. SAME and no pooling keep 28x28,
    # so fc1 takes 28*28*128 = 100,352 inputs: 100,352*328 + 328 =
    # 32,915,784; fc2 328*192 + 192 = 63,168; softmax_layer 192*10 + 10 =
    # 1,930. Total 35,445,522: the paper's 35.4M. (VALID: 28 -> 16 after
    # three 5x5 convolutions, fc1 10.7M, 13.2M in all; one 2x2 pooling:
    # 10.6M.)
    expected = (25 * 256 + 256) + (25 * 256 * 256 + 256) + (
        25 * 256 * 128 + 128) + (28 * 28 * 128 * 328 + 328) + (
            328 * 192 + 192) + (192 * 10 + 10)
    count = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    self.assertEqual(count, expected)
    self.assertEqual(count, 35_445_522)
    self.assertEqual(list(model.tf1_variable_map()), [
        'conv1/weights', 'conv1/biases', 'conv2/weights', 'conv2/biases',
        'conv3/weights', 'conv3/biases', 'fc1/weights', 'fc1/biases',
        'fc2/weights', 'fc2/biases', 'softmax_layer/weights',
        'softmax_layer/biases', 'global_step'])

  def testRegisteredInExperiment(self):
    self.assertIs(registry.MODELS['baseline_paper'],
                  conv_model.PaperBaselineModel)

  def testHeInitialization(self):
    model = conv_model.PaperBaselineModel(hparams_lib.default_hparams())
    model.build(model_lib.DataShape(28, 1))
    weights = model.tf1_variable_map()
    # Truncated at 2 stddevs: the values' std is 0.88 of the stddev.
    self.assertAllClose(np.std(weights['fc1/weights'].numpy()),
                        0.88 * np.sqrt(2 / 100352), rtol=0.02)
    self.assertAllClose(np.std(weights['softmax_layer/weights'].numpy()),
                        0.88 * np.sqrt(1 / 192), rtol=0.1)

  def testDropoutOnlyInTraining(self):
    """Evaluation is deterministic; training steps drop half of fc2."""
    model = conv_model.PaperBaselineModel(
        hparams_lib.default_hparams().parse('loss_type=softmax'))
    model.build(model_lib.DataShape(28, 1))
    features = _paper_features()
    first = model.compute_loss(features)[0]
    self.assertAllEqual(model.compute_loss(features)[0], first)
    self.assertAllEqual(model.inference(features).logits,
                        model.losses(features).logits)
    _, trained = model.compute_gradients(features)
    _, again = model.compute_gradients(features)
    # Different dropout masks, the same weights: different losses.
    self.assertNotAllClose(trained.total_loss, again.total_loss)
    self.assertNotAllClose(trained.logits, model.losses(features).logits)
    self.assertNotAllClose(
        model.losses(features, training=True).logits,
        model.losses(features, training=True).logits)


if __name__ == '__main__':
  tf.test.main()
