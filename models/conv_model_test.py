"""Tests for the baseline ConvModel."""

import numpy as np
import tensorflow as tf

import experiment
from models import conv_model


class ConvModelTest(tf.test.TestCase):

  def testFullMnistParameterCount(self):
    model = conv_model.ConvModel(experiment.default_hparams())
    model.build(28, 1)
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
        experiment.default_hparams().parse('padding=SAME'))
    model.build(4, 1)  # 4 -> pool 2 -> pool 1: fc1 rows are the channels.
    images = tf.random.uniform((1, 1, 4, 4))
    features = dict(images=images, labels=tf.one_hot([3], 10),
                    recons_image=images, recons_label=tf.constant([3]),
                    height=4, depth=1, num_classes=10, num_targets=1)
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


if __name__ == '__main__':
  tf.test.main()
