"""CapsNet: a ReLU convolution, primary capsules and routed class capsules."""

from typing import List, Mapping, Optional

import tensorflow as tf

import errors
from layers import layers
from models import model

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

  def _make_layers(self):
    hparams, dtype = self.hparams, self._dtype_policy
    self._conv1 = layers.Conv(
        hparams.conv1_channels, kernel_size=CONV1_KERNEL,
        padding=hparams.padding, name='conv1', dtype=dtype)
    self._conv_capsule1 = layers.ConvSlimCapsule(
        output_dim=hparams.num_prime_capsules,
        output_atoms=hparams.prime_capsule_atoms,
        stride=PRIME_STRIDE, kernel_size=PRIME_KERNEL, padding=hparams.padding,
        num_routing=1, leaky=hparams.leaky, data_format='channels_last',
        conv_implementation=self.config.conv_implementation,
        xla_routing=self.config.xla_routing, name='conv_capsule1',
        dtype=dtype)
    self._capsule2 = layers.Capsule(
        output_dim=self.shape.num_classes,
        output_atoms=hparams.digit_capsule_atoms, num_routing=hparams.routing,
        leaky=hparams.leaky, xla_routing=self.config.xla_routing,
        name='capsule2', dtype=dtype)
    scoped = {'conv1': self._conv1, 'conv_capsule1': self._conv_capsule1,
              'capsule2': self._capsule2}
    self._recons = None
    if hparams.remake:
      self._recons = scoped['recons'] = layers.Reconstruction(
          RECONS_LAYER_SIZES,
          num_pixels=self.shape.depth * self.shape.height ** 2,
          balance_factor=RECONS_BALANCE_FACTOR, name='recons', dtype=dtype)
    return scoped

  def primary_capsules(self, tensors: Mapping) -> tf.Tensor:
    """conv1 and the primary capsules of a batch, capsule2's input.

    float32 `[batch, P * h * w, 8]`, ordered (type, row, column) as
    capsule2's weights are: P = num_prime_capsules types on the h x w grid
    of conv_capsule1 (6 x 6 for 28 x 28 MNIST).
    """
    conv1 = self._conv1(self.channels_last(tensors['images']))
    # One input capsule type of 256 atoms, kept channels-last.
    capsule1 = self._conv_capsule1(tf.expand_dims(conv1, 3))  # [b, P, 8, h, w]
    capsule1_atom_last = tf.transpose(capsule1, [0, 1, 3, 4, 2])
    _, types, grid_height, grid_width, atoms = capsule1_atom_last.shape
    return tf.reshape(capsule1_atom_last,
                      [-1, types * grid_height * grid_width, atoms])

  def class_routing(self, tensors: Mapping, *,
                    num_routing: Optional[int] = None
                   ) -> List[layers.RoutingIteration]:
    """capsule2's dynamic routing, iteration by iteration.

    The same votes and routing as `forward`, run op by op (not compiled), so
    that every iteration's tensors can be looked at (the paper's Appendix A):
    a `layers.RoutingIteration` each, its logits, route and agreement
    `[batch, P * h * w, num_classes]`, its activation `[batch, num_classes,
    16]` (the last is `forward`'s). num_routing: None: the model's (more
    show where routing goes on to).
    """
    primary = self.primary_capsules(tensors)
    capsule2 = self._capsule2
    votes = capsule2.votes(primary)
    return list(layers.routing_iterations(
        tf.cast(votes, tf.float32), biases=tf.convert_to_tensor(
            capsule2.biases), num_routing=num_routing or capsule2.num_routing,
        leaky=capsule2.leaky))

  def decode(self, capsule_output: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """The decoder's image of the class capsules that `mask` keeps.

    capsule_output `[batch, num_classes, 16]`, mask `[batch, num_classes]`
    (one-hot) -> float32 `[batch, depth * height * width]` in [0, 1].
    """
    if self._recons is None:
      raise errors.ConfigError('this capsule model has no decoder: it needs '
                               'hparam remake=true')
    # The layer also returns the loss against a target image, unused here.
    no_target = tf.zeros([tf.shape(capsule_output)[0],
                          self._recons.num_pixels])
    remake, _ = self._recons(capsule_output, mask, no_target)
    return remake

  def forward(self, tensors, *, training=False):
    primary = self.primary_capsules(tensors)
    capsule_output = self._capsule2(primary)
    logits = tf.norm(capsule_output, axis=-1)
    remakes, losses = None, []
    if self.hparams.remake:
      targets = [(tensors['recons_label'], tensors['recons_image'])]
      if self.shape.num_targets == 2:
        targets.append((tensors['spare_label'], tensors['spare_image']))
      remakes = []
      for label, image in targets:
        remake, loss = self._recons(
            capsule_output, tf.one_hot(label, self.shape.num_classes), image)
        remakes.append(remake)
        losses.append(loss)
    return model.Forward(logits, remakes, capsule_output, losses)

  def summarize(self, losses, tensors, *, step, batch_size):
    """`model.Model.summarize`, and with hparam verbose the reconstructions.

    The image summary 'reconstruction' shows up to 10 examples of `tensors`:
    for each target a column of three images stacked vertically (input,
    target image, reconstruction), the second target's column on the right.
    """
    super().summarize(losses, tensors, step=step, batch_size=batch_size)
    if not (self.hparams.verbose and losses.remakes):
      return
    channels_last = self.channels_last
    targets = [tensors['recons_image']]
    if self.shape.num_targets == 2:
      targets.append(tensors['spare_image'])
    columns = [
        tf.concat([channels_last(tensors['images']), channels_last(target),
                   channels_last(remake)], axis=1)
        for target, remake in zip(targets, losses.remakes)
    ]
    tf.summary.image('reconstruction', tf.concat(columns, axis=2), step=step,
                     max_outputs=MAX_RECONSTRUCTION_IMAGES)
