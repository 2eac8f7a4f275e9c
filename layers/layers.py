"""Capsule layers: squash, dynamic routing, capsule and convolutional capsules.

The pure tensor functions mirror the reference's private helpers (`_squash`,
`_leaky_routing`, `_update_routing`, `_depthwise_conv3d`, `_margin_loss`) and
its `evaluate`. The Keras layers own the weights, named and shaped as in the
reference's TF1 checkpoints, and call those functions.

Capsule tensors keep the reference's layout: atoms on axis 2 after the batch
and capsule axes (`[batch, capsules, atoms]`, or
`[batch, capsules, atoms, height, width]` for convolutional capsules).
Convolutions themselves run channels-last, which every TensorFlow device
supports, by one of `CONV_IMPLEMENTATIONS` for the convolutional capsules.
"""

import collections
from typing import Dict, List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

import errors
from layers import fourier
from layers import variables

# The convolutions `_conv2d` runs: TensorFlow's, and `fourier.conv2d` (the same
# numbers up to float rounding, faster on CPUs for large kernels).
CONV_IMPLEMENTATIONS = ('native', 'fourier')

# Added to |s|^2 under the square root so that the gradient of squash at the
# zero vector is finite; far below float32 resolution for any non-zero norm.
_SQUASH_EPSILON = 1e-20

Evaluation = collections.namedtuple(
    'Evaluation', ('total_loss', 'correct', 'almost', 'classification_loss'))

# One routing iteration, as `routing_iterations` keeps it.
RoutingIteration = collections.namedtuple(
    'RoutingIteration', ('logits', 'route', 'activation', 'agreement'))


def _squash(input_tensor: tf.Tensor) -> tf.Tensor:
  """Squash `s / |s| * |s|^2 / (1 + |s|^2)` over the atoms axis (axis 2).

  input_tensor: `[batch, num_capsules, num_atoms, ...]`; the result has its
  shape, norms below 1, and maps the zero vector to zero, gradient finite.
  """
  norm_squared = tf.reduce_sum(tf.square(input_tensor), axis=2, keepdims=True)
  norm = tf.sqrt(norm_squared + _SQUASH_EPSILON)
  return input_tensor * (norm / (1 + norm_squared))


def _leaky_routing(logits: tf.Tensor, output_dim: int) -> tf.Tensor:
  """Softmax over output capsules (axis 2) with an extra all-zero 'leak' logit.

  The leak lets an input capsule route to none of the output capsules. logits
  `[batch, input_dim, output_dim, ...]`; returns their shape, the leak dropped.
  """
  leak = tf.zeros_like(logits[:, :, :1])               # [b, in, 1, ...]
  leaky_logits = tf.concat([leak, logits], axis=2)     # [b, in, 1 + out, ...]
  leaky_routing = tf.nn.softmax(leaky_logits, axis=2)
  return tf.split(leaky_routing, [1, output_dim], axis=2)[1]


def _update_routing(votes: tf.Tensor, biases: tf.Tensor, num_routing: int,
                    leaky: bool, *, input_axis: int = 1, xla: bool = False,
                    iterations: Optional[List[RoutingIteration]] = None
                    ) -> tf.Tensor:
  """Dynamic routing by agreement (Sabour et al., Procedure 1), in float32.

  In the reference's order of operations (`agreement` is its `distances`).
  Its `logit_shape`, `num_dims`, `input_dim` and `output_dim` arguments are
  read off `votes`; its loop is a Python loop, unrolled in the graph.

  Args:
    votes: `[batch, input_dim, output_dim, atoms]` (fully connected) or
      `[batch, input_dim, output_dim, atoms, height, width]` (convolutional),
      float32 or narrower.
    biases: float32, broadcastable to `[output_dim, atoms, ...]`.
    num_routing: number of routing iterations, at least 1.
    leaky: route with `_leaky_routing` instead of a plain softmax.
    input_axis: 1, or 0 for votes `[input_dim, batch, output_dim, atoms,
      ...]` (the layout that `Capsule` computes without a transpose).
    xla: compile with XLA. Run op by op, routing is a dozen full passes over
      the votes per iteration; XLA fuses its broadcasts and reductions into a
      few loops, forward and backward, and widens narrower votes inside them,
      so they are read from memory at their own width. Op by op serves where
      XLA cannot compile (the same numbers up to float rounding).
    iterations: op by op only, a list to which each iteration's
      `RoutingIteration` is appended, as the reference's `activations`
      array kept every iteration's activation.

  Returns:
    float32 `[batch, output_dim, atoms, ...]` activations of the last
    iteration.
  """
  if xla:
    return _xla_update_routing(votes, biases, num_routing, leaky,
                               input_axis=input_axis)
  votes = tf.cast(votes, tf.float32)
  output_dim = votes.shape[2]
  # Zeros cut from the votes' shape, not from the votes: TFLite's
  # StridedSlice takes at most 5-D tensors, and convolutional votes are 6-D.
  logits = tf.zeros(tf.concat([tf.shape(votes)[:3], tf.shape(votes)[4:]],
                              axis=0))                  # [b, in, out, ...]
  for i in range(num_routing):
    if i == 0:
      # The (leaky) softmax of the zero logits, exactly. Written out, XLA
      # constant-folds that softmax at compile time: 8 s and an error-level
      # log line for MultiMNIST's 3,200 input capsules.
      route = tf.ones_like(logits) / (
          output_dim + 1 if leaky else output_dim)      # [b, in, out, ...]
    elif leaky:
      route = _leaky_routing(logits, output_dim)        # [b, in, out, ...]
    else:
      route = tf.nn.softmax(logits, axis=2)             # [b, in, out, ...]
    preactivate = tf.reduce_sum(tf.expand_dims(route, 3) * votes,
                                axis=input_axis) + biases  # [b, out, atoms, ..]
    activation = _squash(preactivate)                   # [b, out, atoms, ...]
    agreement = tf.reduce_sum(votes * tf.expand_dims(activation, input_axis),
                              axis=3)                   # [b, in, out, ...]
    if iterations is not None:
      iterations.append(RoutingIteration(logits, route, activation, agreement))
    logits += agreement
  return activation


_xla_update_routing = tf.function(_update_routing, jit_compile=True,
                                  autograph=False)


def routing_iterations(votes: tf.Tensor, *, biases: tf.Tensor,
                       num_routing: int, leaky: bool,
                       input_axis: int = 1) -> List[RoutingIteration]:
  """`_update_routing` (arguments there) op by op, every iteration kept.

  For diagnostics such as the paper's Appendix A: the mean absolute change of
  the logits in an iteration is the mean of `|agreement|`. Each
  `RoutingIteration` holds the logits it routes with and the route (coupling
  coefficients c), both `[batch, input_dim, output_dim, ...]` (the first two
  axes as in votes), the activation `[batch, output_dim, atoms, ...]`, and
  the agreement of the logits' shape that it adds to the logits.
  """
  iterations = []
  _update_routing(votes, biases, num_routing, leaky, input_axis=input_axis,
                  iterations=iterations)
  return iterations


def _conv2d(images: tf.Tensor, kernel: tf.Tensor, *, stride: int,
            padding: str, implementation: str) -> tf.Tensor:
  """`tf.nn.conv2d` by one of `CONV_IMPLEMENTATIONS` (else ConfigError)."""
  if implementation == 'native':
    return tf.nn.conv2d(images, kernel, stride, padding)
  if implementation == 'fourier':
    return fourier.conv2d(images, kernel, stride=stride, padding=padding)
  raise errors.ConfigError(
      f'conv_implementation={implementation!r}: use one of '
      f'{", ".join(CONV_IMPLEMENTATIONS)}')


def _depthwise_conv3d(input_tensor: tf.Tensor, kernel: tf.Tensor, *,
                      input_dim: int, output_dim: int, input_atoms: int,
                      output_atoms: int, stride: int, padding: str,
                      implementation: str = 'native') -> tf.Tensor:
  """Convolves every input capsule type with one shared kernel.

  The capsule-type axis is folded into the batch, the atoms become channels,
  and the result is split back into output capsules and atoms: input_tensor
  `[batch, input_dim, input_atoms, height, width]` and kernel `[k, k,
  input_atoms, output_dim * output_atoms]` (channel c is capsule
  `c // output_atoms`, atom `c % output_atoms`) give votes `[batch, input_dim,
  output_dim, output_atoms, out_height, out_width]` in the input's dtype.
  """
  height, width = input_tensor.shape[3], input_tensor.shape[4]
  flat = tf.reshape(input_tensor, [-1, input_atoms, height, width])
  return _conv_votes(tf.transpose(flat, [0, 2, 3, 1]), kernel,
                     input_dim=input_dim, output_dim=output_dim,
                     output_atoms=output_atoms, stride=stride, padding=padding,
                     implementation=implementation)


def _conv_votes(images: tf.Tensor, kernel: tf.Tensor, *, input_dim: int,
                output_dim: int, output_atoms: int, stride: int,
                padding: str, implementation: str = 'native') -> tf.Tensor:
  """`_depthwise_conv3d` of images `[batch * input_dim, h, w, input_atoms]`."""
  conv = _conv2d(images, kernel, stride=stride, padding=padding,
                 implementation=implementation)        # [b*in, oh, ow, o*a]
  out_height, out_width = conv.shape[1], conv.shape[2]
  conv = tf.reshape(conv, [-1, input_dim, out_height, out_width, output_dim,
                           output_atoms])
  return tf.transpose(conv, [0, 1, 4, 5, 2, 3])


def _margin_loss(labels: tf.Tensor, raw_logits: tf.Tensor, margin: float = 0.4,
                 downweight: float = 0.5) -> tf.Tensor:
  """Margin loss of each logit (capsule length) against 0.9 / 0.1 targets.

  labels (one- or two-hot) and raw_logits (capsule lengths in [0, 1]) are
  `[batch, num_classes]`; margin applies after subtracting 0.5 from the
  lengths, downweight to absent classes. Returns the unreduced cost of each.
  """
  logits = raw_logits - 0.5
  positive_cost = labels * tf.cast(tf.less(logits, margin),
                                   tf.float32) * tf.pow(logits - margin, 2)
  negative_cost = (1 - labels) * tf.cast(
      tf.greater(logits, -margin), tf.float32) * tf.pow(logits + margin, 2)
  return 0.5 * positive_cost + downweight * 0.5 * negative_cost


def _classification_loss(logits: tf.Tensor, labels: tf.Tensor,
                         loss_type: str) -> tf.Tensor:
  """Unreduced classification loss: per class (margin, sigmoid) or example."""
  if loss_type == 'sigmoid':
    return tf.nn.sigmoid_cross_entropy_with_logits(
        labels=labels / 2.0, logits=logits)
  if loss_type == 'softmax':
    return tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
  if loss_type == 'margin':
    return _margin_loss(labels=labels, raw_logits=logits)
  raise ValueError(
      f'unknown loss_type {loss_type!r}; use margin, softmax or sigmoid')


def _count_correct(logits: tf.Tensor, labels: tf.Tensor,
                   num_targets: int) -> Tuple[tf.Tensor, tf.Tensor]:
  """`[batch]` flags: every top-k logit is a target (correct), any (almost)."""
  _, targets = tf.nn.top_k(labels, k=num_targets)           # [b, k]
  _, predictions = tf.nn.top_k(logits, k=num_targets)       # [b, k]
  found = tf.reduce_any(
      tf.equal(targets[:, :, None], predictions[:, None, :]), axis=2)  # [b, k]
  num_missed = tf.reduce_sum(1 - tf.cast(found, tf.int32), axis=1)     # [b]
  correct = tf.cast(tf.equal(num_missed, 0), tf.float32)
  almost = tf.cast(tf.less(num_missed, num_targets), tf.float32)
  return correct, almost


def evaluate(logits: tf.Tensor, labels: tf.Tensor, num_targets: int,
             loss_type: str,
             extra_losses: Sequence[tf.Tensor] = ()) -> Evaluation:
  """Total loss and correct / almost-correct counts of a batch.

  logits and labels (one-hot, two-hot for num_targets=2) are `[batch,
  num_classes]`; extra_losses, scalars added to the total, are e.g. the
  balanced reconstruction losses (the reference collected them on the side).
  Returns scalars; correct and almost are batch sums.
  """
  classification_loss = tf.reduce_mean(
      _classification_loss(logits, labels, loss_type))
  total_loss = tf.add_n(list(extra_losses) + [classification_loss])
  correct, almost = _count_correct(logits, labels, num_targets)
  return Evaluation(total_loss, tf.reduce_sum(correct), tf.reduce_sum(almost),
                    classification_loss)


class _Tf1Layer(keras.layers.Layer):
  """A layer whose weights have TF1 checkpoint names under its scope.

  Weights are float32. A mixed dtype policy (`dtype='mixed_bfloat16'`) makes
  `compute_dtype` bfloat16: each layer then casts its inputs and weights to it
  for its convolutions and matrix products, explicitly (Keras' implicit
  autocast is off), and keeps the precision-sensitive math (squash, routing,
  losses) in float32.
  """

  def __init__(self, **kwargs):
    super().__init__(autocast=False, **kwargs)

  def add_weight(self, *args, **kwargs) -> keras.Variable:
    """A float32 weight that reads as float32 even under a mixed policy."""
    return super().add_weight(*args, autocast=False, **kwargs)

  def _add_weights(self, kernel_shape: Sequence[int],
                   biases_shape: Sequence[int],
                   stddev: float = variables.WEIGHT_STDDEV):
    """Adds `kernel` (TF1 `weights`) and `biases`, initialized as TF1's."""
    self.kernel = self.add_weight(
        name='weights', shape=kernel_shape,
        initializer=variables.weight_initializer(stddev))
    self.biases = self.add_weight(
        name='biases', shape=biases_shape,
        initializer=variables.bias_initializer())

  def _cast(self, tensor) -> tf.Tensor:
    return tf.cast(tensor, self.compute_dtype)

  def tf1_variables(self) -> Dict[str, keras.Variable]:
    """Maps names relative to the layer's TF1 scope to its weights."""
    return {'weights': self.kernel, 'biases': self.biases}


class Conv(_Tf1Layer):
  """ReLU 2D convolution, channels-last, output in the compute dtype."""

  def __init__(self, filters: int, *, kernel_size: int, padding: str,
               stddev: float = 5e-2, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.padding = padding
    self.stddev = stddev

  def build(self, input_shape):
    self._add_weights((self.kernel_size, self.kernel_size, input_shape[-1],
                       self.filters), (self.filters,), self.stddev)

  def call(self, inputs):
    conv = tf.nn.conv2d(self._cast(inputs), self._cast(self.kernel), 1,
                        self.padding)
    return tf.nn.relu(tf.nn.bias_add(conv, self._cast(self.biases)))


class FullyConnected(_Tf1Layer):
  """`activation(x @ weights + biases)`, output in the compute dtype."""

  def __init__(self, units: int, *, activation=None, stddev: float = 0.1,
               **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.activation = activation
    self.stddev = stddev

  def build(self, input_shape):
    self._add_weights((input_shape[-1], self.units), (self.units,),
                      self.stddev)

  def call(self, inputs):
    outputs = tf.matmul(self._cast(inputs),
                        self._cast(self.kernel)) + self._cast(self.biases)
    return self.activation(outputs) if self.activation else outputs


class _CapsuleLayer(_Tf1Layer):
  """Routes the votes of its subclass's `votes`, in float32."""

  def __init__(self, output_dim: int, *, output_atoms: int = 8,
               num_routing: int = 3, leaky: bool = False,
               xla_routing: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.output_dim = output_dim
    self.output_atoms = output_atoms
    self.num_routing = num_routing
    self.leaky = leaky
    self.xla_routing = xla_routing

  def _route(self, votes: tf.Tensor, input_axis: int = 1) -> tf.Tensor:
    return _update_routing(votes, tf.convert_to_tensor(self.biases),
                           self.num_routing, self.leaky, input_axis=input_axis,
                           xla=self.xla_routing)


class Capsule(_CapsuleLayer):
  """Fully connected capsule layer (the reference's `capsule`).

  Input `[batch, input_dim, input_atoms]`, float32 output
  `[batch, output_dim, output_atoms]`. Weights
  `[input_dim, input_atoms, output_dim * output_atoms]` (column j is output
  capsule `j // output_atoms`, atom `j % output_atoms`), biases
  `[output_dim, output_atoms]`.
  """

  def build(self, input_shape):
    _, self.input_dim, self.input_atoms = input_shape
    self._add_weights(
        (self.input_dim, self.input_atoms, self.output_dim * self.output_atoms),
        (self.output_dim, self.output_atoms))

  def votes(self, input_tensor: tf.Tensor, *,
            input_major: bool = False) -> tf.Tensor:
    """The votes `call` routes: every input capsule's prediction of each output.

    One matrix product per input capsule, batched over them; the layer must be
    built. Votes `[batch, input_dim, output_dim, output_atoms]` in the compute
    dtype, or with input_major `[input_dim, batch, ...]`, as the products make
    them and `call` routes them (the batch-first layout costs a transpose of
    the votes, the biggest tensor of the model).
    """
    votes = tf.matmul(tf.transpose(self._cast(input_tensor), [1, 0, 2]),
                      self._cast(self.kernel))      # [in, b, out * atoms]
    votes = tf.reshape(votes, [self.input_dim, -1, self.output_dim,
                               self.output_atoms])  # [in, b, out, atoms]
    return votes if input_major else tf.transpose(votes, [1, 0, 2, 3])

  def call(self, input_tensor):
    return self._route(self.votes(input_tensor, input_major=True),
                       input_axis=0)


class ConvSlimCapsule(_CapsuleLayer):
  """Convolutional capsule layer (the reference's `conv_slim_capsule`).

  Input `[batch, input_dim, input_atoms, height, width]` (or, with
  `data_format='channels_last'`, `[batch, height, width, input_dim,
  input_atoms]`, which saves two transposes of the input when it comes from a
  channels-last convolution), float32 output
  `[batch, output_dim, output_atoms, out_height, out_width]`. One kernel
  `[k, k, input_atoms, output_dim * output_atoms]` is shared by all input
  capsule types and positions; biases `[output_dim, output_atoms, 1, 1]`.
  The convolution is `_conv2d`'s by `conv_implementation`.
  """

  def __init__(self, output_dim: int, *, stride: int = 2,
               kernel_size: int = 5, padding: str = 'SAME',
               data_format: str = 'channels_first',
               conv_implementation: str = 'native', **kwargs):
    super().__init__(output_dim, **kwargs)
    if data_format not in ('channels_first', 'channels_last'):
      raise ValueError(f'data_format={data_format!r}: use channels_first or '
                       f'channels_last')
    self.stride = stride
    self.kernel_size = kernel_size
    self.padding = padding
    self.data_format = data_format
    self.conv_implementation = conv_implementation

  def build(self, input_shape):
    if self.data_format == 'channels_last':
      self.input_dim, self.input_atoms = input_shape[3], input_shape[4]
    else:
      self.input_dim, self.input_atoms = input_shape[1], input_shape[2]
    self._add_weights((self.kernel_size, self.kernel_size, self.input_atoms,
                       self.output_dim * self.output_atoms),
                      (self.output_dim, self.output_atoms, 1, 1))

  def votes(self, input_tensor: tf.Tensor) -> tf.Tensor:
    """`_depthwise_conv3d`'s votes, as `call` routes them (layer built)."""
    input_tensor = self._cast(input_tensor)
    kernel = self._cast(self.kernel)
    conv = dict(input_dim=self.input_dim, output_dim=self.output_dim,
                output_atoms=self.output_atoms, stride=self.stride,
                padding=self.padding, implementation=self.conv_implementation)
    if self.data_format == 'channels_first':
      return _depthwise_conv3d(input_tensor, kernel,
                               input_atoms=self.input_atoms, **conv)
    _, height, width, _, _ = input_tensor.shape
    if self.input_dim > 1:
      input_tensor = tf.transpose(input_tensor, [0, 3, 1, 2, 4])
    images = tf.reshape(input_tensor, [-1, height, width, self.input_atoms])
    return _conv_votes(images, kernel, **conv)

  def call(self, input_tensor):
    return self._route(self.votes(input_tensor))


class Reconstruction(_Tf1Layer):
  """Decoder from the masked capsule embedding, and its balanced loss.

  Three fully connected layers `recons_1..3` (ReLU, ReLU, sigmoid) turn the
  capsule embedding, with every capsule but the target zeroed, into an image.
  Shared between targets by calling the same layer once per target. The
  layers run in the compute dtype; the image and the loss are float32.
  """

  def __init__(self, layer_sizes: Sequence[int], *, num_pixels: int,
               balance_factor: float, **kwargs):
    super().__init__(**kwargs)
    first, second = layer_sizes
    self.balance_factor = balance_factor
    self.num_pixels = num_pixels
    self.recons_layers = [
        FullyConnected(units, activation=activation, name=f'recons_{i}',
                       dtype=self.dtype_policy)
        for i, units, activation in ((1, first, tf.nn.relu),
                                     (2, second, tf.nn.relu),
                                     (3, num_pixels, tf.sigmoid))]

  def call(self, capsule_embedding, capsule_mask, image):
    """`(reconstruction, balanced_loss)` of the target capsule's image.

    capsule_embedding `[batch, num_classes, num_atoms]`, capsule_mask the
    target's one-hot `[batch, num_classes]`, image `num_pixels` per example.
    Returns float32 `[batch, num_pixels]` and the scalar `balance_factor *
    mean over batch of the summed squared error`.
    """
    filtered = capsule_embedding * tf.expand_dims(capsule_mask, -1)
    hidden = tf.reshape(
        filtered, [-1, filtered.shape[1] * filtered.shape[2]])
    for layer in self.recons_layers:
      hidden = layer(hidden)
    remake = tf.cast(hidden, tf.float32)
    image_2d = tf.reshape(image, [-1, self.num_pixels])
    loss = tf.reduce_sum(tf.square(remake - image_2d), axis=-1)
    return remake, self.balance_factor * tf.reduce_mean(loss)

  def tf1_variables(self):
    return tf1_variable_map({layer.name: layer for layer in self.recons_layers})


def tf1_variable_map(scoped_layers: Dict[str, _Tf1Layer]
                    ) -> 'collections.OrderedDict[str, keras.Variable]':
  """Full TF1 names of the weights of layers keyed by their TF1 scope."""
  return collections.OrderedDict(
      (f'{scope}/{suffix}', var)
      for scope, layer in scoped_layers.items()
      for suffix, var in layer.tf1_variables().items())
