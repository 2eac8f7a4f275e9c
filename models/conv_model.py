"""Baseline CNN of the paper: two convolutions with pooling, two FC layers."""

import tensorflow as tf

from layers import layers
from models import model

CONV_CHANNELS = (512, 256)
CONV_KERNEL = 5
FC1_UNITS = 1024
POOL_SIZE = 2


class ConvModel(model.Model):
  """conv1 5x5x512 -> pool -> conv2 5x5x256 -> pool -> fc1 1024 -> softmax_layer.

  Convolutions run channels-last; the pooled features are flattened in the
  reference's channels-first order (channel, row, column) so that fc1's
  weights match the released layout.
  """

  def __init__(self, hparams, compute_dtype: str = 'float32'):
    super().__init__(hparams, compute_dtype)
    self._convs = [
        layers.Conv(channels, CONV_KERNEL, hparams.padding, name=f'conv{i}',
                    dtype=self._dtype_policy)
        for i, channels in enumerate(CONV_CHANNELS, start=1)
    ]
    self._fc1 = layers.FullyConnected(FC1_UNITS, tf.nn.relu, name='fc1',
                                      dtype=self._dtype_policy)
    self._softmax_layer = None

  def _scoped_layers(self):
    scoped = {layer.name: layer for layer in self._convs}
    scoped['fc1'] = self._fc1
    if self._softmax_layer is not None:
      scoped['softmax_layer'] = self._softmax_layer
    return scoped

  def forward(self, features):
    if self._softmax_layer is None:
      self._softmax_layer = layers.FullyConnected(
          features['num_classes'], name='softmax_layer',
          dtype=self._dtype_policy)
    depth, height = features['depth'], features['height']
    images = tf.reshape(features['images'], [-1, depth, height, height])
    hidden = tf.transpose(images, [0, 2, 3, 1])
    for conv in self._convs:
      hidden = tf.nn.max_pool2d(conv(hidden), POOL_SIZE, POOL_SIZE, 'SAME')
    hidden = tf.transpose(hidden, [0, 3, 1, 2])
    hidden = tf.reshape(
        hidden, [-1, hidden.shape[1] * hidden.shape[2] * hidden.shape[3]])
    logits = tf.cast(self._softmax_layer(self._fc1(hidden)), tf.float32)
    return model.Forward(logits, None, None, [])
