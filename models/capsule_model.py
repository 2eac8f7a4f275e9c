"""CapsNet: a ReLU convolution, primary capsules and routed class capsules."""

from typing import List, Mapping, Optional

import tensorflow as tf

import errors
from layers import layers
from models import model
from models import run_config

CONV1_KERNEL = 9
PRIME_KERNEL = 9
PRIME_STRIDE = 2
RECONS_LAYER_SIZES = (512, 1024)
RECONS_BALANCE_FACTOR = 0.0005
MAX_RECONSTRUCTION_IMAGES = 10


class CapsuleModel(model.Model):
  """The paper's CapsNet with the reference's variable names.

  conv1 (9x9, 256, ReLU) -> conv_capsule1 (9x9 stride 2, num_prime_capsules
  types of 8 atoms, one routing iteration) -> capsule2 (one 16-atom capsule
  per class, hparams.routing iterations) -> logits = capsule lengths, and with
  hparams.remake the shared reconstruction network `recons` per target.
  """

  def __init__(self, hparams, *,
               config: run_config.RunConfig = run_config.RunConfig()):
    """See `model.Model`; the primary capsules convolve as config says."""
    super().__init__(hparams, config=config)
    self._conv1 = layers.Conv(
        hparams.conv1_channels, kernel_size=CONV1_KERNEL,
        padding=hparams.padding, name='conv1', dtype=self._dtype_policy)
    self._conv_capsule1 = layers.ConvSlimCapsule(
        output_dim=hparams.num_prime_capsules,
        output_atoms=hparams.prime_capsule_atoms,
        stride=PRIME_STRIDE, kernel_size=PRIME_KERNEL, padding=hparams.padding,
        num_routing=1, leaky=hparams.leaky, data_format='channels_last',
        conv_implementation=config.conv_implementation,
        xla_routing=config.xla_routing, name='conv_capsule1',
        dtype=self._dtype_policy)
    self._capsule2 = None
    self._recons = None

  def _scoped_layers(self):
    scoped = {'conv1': self._conv1, 'conv_capsule1': self._conv_capsule1}
    if self._capsule2 is not None:
      scoped['capsule2'] = self._capsule2
    if self._recons is not None:
      scoped['recons'] = self._recons
    return scoped

  def _layers_for(self, features: Mapping) -> None:
    """Creates the layers whose size depends on the data, once."""
    if self._capsule2 is None:
      self._capsule2 = layers.Capsule(
          output_dim=features['num_classes'],
          output_atoms=self._hparams.digit_capsule_atoms,
          num_routing=self._hparams.routing, leaky=self._hparams.leaky,
          xla_routing=self._config.xla_routing, name='capsule2',
          dtype=self._dtype_policy)
    if self._hparams.remake and self._recons is None:
      num_pixels = features['depth'] * features['height'] * features['height']
      self._recons = layers.Reconstruction(
          RECONS_LAYER_SIZES, num_pixels=num_pixels,
          balance_factor=RECONS_BALANCE_FACTOR, name='recons',
          dtype=self._dtype_policy)

  def primary_capsules(self, features: Mapping) -> tf.Tensor:
    """conv1 and the primary capsules, capsule2's input.

    Args:
      features: the feature dict (see `model.Model.forward`).

    Returns:
      float32 `[batch, P * h * w, 8]` primary capsules ordered (type, row,
      column), as capsule2's weights are: P = num_prime_capsules types on the
      h x w grid of conv_capsule1 (6 x 6 for 28 x 28 MNIST).
    """
    self._layers_for(features)
    depth, height = features['depth'], features['height']
    images = tf.reshape(features['images'], [-1, depth, height, height])
    conv1 = self._conv1(tf.transpose(images, [0, 2, 3, 1]))
    # One input capsule type of 256 atoms, kept channels-last.
    capsule1 = self._conv_capsule1(tf.expand_dims(conv1, 3))  # [b, P, 8, h, w]
    capsule1_atom_last = tf.transpose(capsule1, [0, 1, 3, 4, 2])
    _, types, grid_height, grid_width, atoms = capsule1_atom_last.shape
    return tf.reshape(capsule1_atom_last,
                      [-1, types * grid_height * grid_width, atoms])

  def class_routing(self, features: Mapping, *,
                    num_routing: Optional[int] = None
                   ) -> List[layers.RoutingIteration]:
    """capsule2's dynamic routing, iteration by iteration.

    The same votes and routing as `forward`, run op by op (not compiled), so
    that every iteration's tensors can be looked at (the paper's Appendix A).
    The model must be built.

    Args:
      features: the feature dict (see `model.Model.forward`).
      num_routing: iterations to run; None: the model's (hparam routing).
        More than the model was trained with show where routing goes on
        to; `forward` always runs the model's.

    Returns:
      One `layers.RoutingIteration` per routing iteration: the logits and the
      route (coupling coefficients) `[batch, P * h * w, num_classes]`, the
      activation `[batch, num_classes, 16]` (the last one is `forward`'s
      capsule_output) and the agreement added to the logits
      `[batch, P * h * w, num_classes]`.
    """
    primary = self.primary_capsules(features)
    capsule2 = self._capsule2
    votes = capsule2.votes(primary)
    return list(layers.routing_iterations(
        tf.cast(votes, tf.float32), biases=tf.convert_to_tensor(
            capsule2.biases), num_routing=num_routing or capsule2.num_routing,
        leaky=capsule2.leaky))

  def decode(self, capsule_output: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """The decoder's image of the capsules that `mask` keeps.

    Args:
      capsule_output: `[batch, num_classes, 16]` class capsules.
      mask: `[batch, num_classes]`, one-hot of the capsule to decode.

    Returns:
      float32 `[batch, depth * height * width]` reconstructions in [0, 1].

    Raises:
      errors.ConfigError: the model has no decoder (hparam remake=false) or
        has not been built.
    """
    if self._recons is None:
      raise errors.ConfigError('this capsule model has no decoder: it needs '
                               'hparam remake=true and a forward pass (or '
                               'build) first')
    # The layer also returns the loss against a target image, unused here.
    no_target = tf.zeros([tf.shape(capsule_output)[0],
                          self._recons.num_pixels])
    remake, _ = self._recons(capsule_output, mask, no_target)
    return remake

  def forward(self, features):
    primary = self.primary_capsules(features)
    capsule_output = self._capsule2(primary)
    logits = tf.norm(capsule_output, axis=-1)
    remakes, losses = None, []
    if self._hparams.remake:
      targets = [(features['recons_label'], features['recons_image'])]
      if features['num_targets'] == 2:
        targets.append((features['spare_label'], features['spare_image']))
      remakes = []
      for label, image in targets:
        remake, loss = self._recons(
            capsule_output, tf.one_hot(label, features['num_classes']), image)
        remakes.append(remake)
        losses.append(loss)
    return model.Forward(logits, remakes, capsule_output, losses)

  def summarize(self, losses, features, *, step, batch_size):
    """`model.Model.summarize`, and with hparam verbose the reconstructions.

    The image summary 'reconstruction' shows up to 10 examples of `features`:
    for each target a column of three images stacked vertically (input,
    target image, reconstruction), the second target's column on the right.
    """
    super().summarize(losses, features, step=step, batch_size=batch_size)
    if not (self._hparams.verbose and losses.remakes):
      return
    depth, height = features['depth'], features['height']

    def channels_last(image):
      image = tf.reshape(image, [-1, depth, height, height])
      return tf.transpose(image, [0, 2, 3, 1])

    targets = [features['recons_image']]
    if features['num_targets'] == 2:
      targets.append(features['spare_image'])
    columns = [
        tf.concat([channels_last(features['images']), channels_last(target),
                   channels_last(remake)], axis=1)
        for target, remake in zip(targets, losses.remakes)
    ]
    tf.summary.image('reconstruction', tf.concat(columns, axis=2), step=step,
                     max_outputs=MAX_RECONSTRUCTION_IMAGES)
