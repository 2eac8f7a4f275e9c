"""The baseline CNNs: the reference code's (`--model=baseline`, 7,495,946
parameters on MNIST) and the paper's MNIST network of Table 1."""

import numpy as np
import tensorflow as tf

from layers import layers
from models import model

CONV_CHANNELS = (512, 256)
CONV_KERNEL = 5
FC1_UNITS = 1024
POOL_SIZE = 2

# The paper's MNIST baseline (section 5): 5x5 stride-1 convolutions of 256,
# 256 and 128 channels, then FC layers of 328 and 192 units.
PAPER_CONV_CHANNELS = (256, 256, 128)
PAPER_FC_UNITS = (328, 192)
# SAME padding and no pooling: the only choice that gives the paper's 35.4M
# parameters (models/conv_model_test.py derives the count).
PAPER_PADDING = 'SAME'
# The paper does not give the rate; 0.5, the usual one.
PAPER_DROPOUT_RATE = 0.5


class ConvModel(model.Model):
  """conv1 5x5x512 -> pool -> conv2 5x5x256 -> pool -> fc1 1024 -> softmax_layer.

  Convolutions run channels-last; the pooled features are flattened in the
  reference's channels-first order (channel, row, column) so that fc1's
  weights match the released layout.
  """

  def _make_layers(self):
    dtype = self._dtype_policy
    self._convs = [
        layers.Conv(channels, kernel_size=CONV_KERNEL,
                    padding=self.hparams.padding, name=f'conv{i}',
                    dtype=dtype)
        for i, channels in enumerate(CONV_CHANNELS, start=1)
    ]
    self._fc1 = layers.FullyConnected(FC1_UNITS, activation=tf.nn.relu,
                                      name='fc1', dtype=dtype)
    self._softmax_layer = layers.FullyConnected(
        self.shape.num_classes, name='softmax_layer', dtype=dtype)
    return {layer.name: layer
            for layer in self._convs + [self._fc1, self._softmax_layer]}

  def forward(self, tensors, *, training=False):
    hidden = self.channels_last(tensors['images'])
    for conv in self._convs:
      hidden = tf.nn.max_pool2d(conv(hidden), POOL_SIZE, POOL_SIZE, 'SAME')
    hidden = tf.transpose(hidden, [0, 3, 1, 2])
    hidden = tf.reshape(
        hidden, [-1, hidden.shape[1] * hidden.shape[2] * hidden.shape[3]])
    logits = tf.cast(self._softmax_layer(self._fc1(hidden)), tf.float32)
    return model.Forward(logits, None, None, [])


class PaperBaselineModel(model.Model):
  """The paper's MNIST baseline: conv1-3 -> fc1 328 -> fc2 192 -> softmax.

  ReLU layers, dropout after fc2: 35,445,522 parameters on 28x28 MNIST. The
  architecture is fixed: hparams.padding does not apply (VALID would not
  give the paper's count). No reference checkpoint exists, so the features
  are flattened channels-last.

  The paper gives neither the initialization nor the learning rate. On
  MNIST (softmax loss, batches of 32, 30 steps) the reference's stddevs
  (0.05 for convolutions, 0.1 for FC layers; first logits ~30 wide) left the
  loss at 2.6, and with the default learning rate 1e-3 the network stays at
  chance whatever the initialization (Adam's steps are large for fc1's
  100,352 inputs). So the truncated normals here have He stddevs
  `sqrt(2 / fan_in)` (`sqrt(1 / fan_in)` for the linear softmax_layer), and
  it trains with learning_rate=1e-4 (loss 0.79 after the same 30 steps), as
  the `mnist_baseline` experiment of paper/experiments.py sets. Dropout is
  on in the training forward pass only (training, a Python bool: the
  training and evaluation tf.functions each trace their own graph).
  """

  def _make_layers(self):
    """The layers, with stddevs from the data's fan-ins."""
    self._convs, self._fcs = [], []
    dtype = self._dtype_policy
    fan_in = CONV_KERNEL * CONV_KERNEL * self.shape.depth
    for i, channels in enumerate(PAPER_CONV_CHANNELS, start=1):
      self._convs.append(layers.Conv(
          channels, kernel_size=CONV_KERNEL, padding=PAPER_PADDING,
          stddev=np.sqrt(2 / fan_in), name=f'conv{i}', dtype=dtype))
      fan_in = CONV_KERNEL * CONV_KERNEL * channels
    fan_in = self.shape.height ** 2 * PAPER_CONV_CHANNELS[-1]
    for i, units in enumerate(PAPER_FC_UNITS, start=1):
      self._fcs.append(layers.FullyConnected(
          units, activation=tf.nn.relu, stddev=np.sqrt(2 / fan_in),
          name=f'fc{i}', dtype=dtype))
      fan_in = units
    self._softmax_layer = layers.FullyConnected(
        self.shape.num_classes, stddev=np.sqrt(1 / fan_in),
        name='softmax_layer', dtype=dtype)
    return {layer.name: layer
            for layer in self._convs + self._fcs + [self._softmax_layer]}

  def forward(self, tensors, *, training=False):
    hidden = self.channels_last(tensors['images'])
    for conv in self._convs:
      hidden = conv(hidden)
    hidden = tf.reshape(
        hidden, [-1, hidden.shape[1] * hidden.shape[2] * hidden.shape[3]])
    for fc in self._fcs:
      hidden = fc(hidden)
    if training:
      hidden = tf.nn.dropout(hidden, rate=PAPER_DROPOUT_RATE)
    logits = tf.cast(self._softmax_layer(hidden), tf.float32)
    return model.Forward(logits, None, None, [])
