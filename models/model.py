"""Base model: optimizer, learning-rate schedule, training and evaluation steps.

Subclasses define `_make_layers` and `forward`; the reference's Adam update,
the loss, the correct / almost counts and the reference's checkpoint names
live here once.

A model's methods take a batch's `tensors` as the readers give them: `images`
`[batch, depth, height, width]`, `labels` `[batch, num_classes]`,
`recons_label`, `recons_image` (and `spare_label`, `spare_image` for two
targets). The data's shape ints are the model's own, from `build`.
"""

import abc
import collections
import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import keras
import tensorflow as tf

import errors
from layers import layers
from layers import variables as layer_variables
from models import adam

Inferred = collections.namedtuple('Inferred', ('logits', 'remakes'))

# The Python ints of the data a model is built for.
DataShape = collections.namedtuple(
    'DataShape', ('height', 'depth', 'num_classes', 'num_targets'),
    defaults=(10, 1))

# Everything a forward pass produces: `Inferred` plus what the loss needs.
Forward = collections.namedtuple(
    'Forward',
    ('logits', 'remakes', 'capsule_output', 'reconstruction_losses'))

# Everything a loss evaluation produces, for steps and summaries.
Losses = collections.namedtuple(
    'Losses', ('total_loss', 'correct', 'almost', 'classification_loss',
               'reconstruction_losses', 'logits', 'remakes'))

MIN_LEARNING_RATE = 1e-6

GLOBAL_STEP = 'global_step'
PADDINGS = ('SAME', 'VALID')
LOSS_TYPES = ('margin', 'softmax', 'sigmoid')


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """How a model computes; the defaults run anywhere.

  Attributes:
    compute_dtype: 'float32', 'bfloat16' or 'float16' (mixed precision, as
      `--compute_dtype` says); float16, whose range is narrow, trains on a
      dynamically scaled loss.
    conv_implementation: the primary capsules' convolution, one of
      `layers.CONV_IMPLEMENTATIONS` ('fourier' is faster on CPUs).
    xla_routing: compile the routing with XLA (fused loops, several times
      faster); off where XLA cannot compile (no CUDA libdevice, say).
  """
  compute_dtype: str = 'float32'
  conv_implementation: str = 'native'
  xla_routing: bool = True

  def __post_init__(self):
    for name, allowed in (('compute_dtype', layer_variables.COMPUTE_DTYPES),
                          ('conv_implementation',
                           layers.CONV_IMPLEMENTATIONS)):
      if getattr(self, name) not in allowed:
        raise errors.ConfigError(f'{name}={getattr(self, name)!r}: use one '
                                 f'of {", ".join(allowed)}')


def data_shape(element_spec: Mapping[str, tf.TensorSpec],
               num_targets: int) -> DataShape:
  """The shape ints of batches of `images` `[b, depth, h, w]` and `labels`."""
  _, depth, height, _ = element_spec['images'].shape
  return DataShape(height, depth, element_spec['labels'].shape[-1],
                   num_targets)


def check_hparams(hparams) -> None:
  """Raises ConfigError for a padding, loss_type or routing that cannot work."""
  if hparams.padding not in PADDINGS:
    raise errors.ConfigError(
        f'hparam padding={hparams.padding!r}: use SAME or VALID')
  if hparams.loss_type not in LOSS_TYPES:
    raise errors.ConfigError(
        f'hparam loss_type={hparams.loss_type!r}: use one of '
        f'{", ".join(LOSS_TYPES)}')
  if hparams.routing < 1:
    raise errors.ConfigError(
        f'hparam routing={hparams.routing}: needs at least 1')


def _first_local(value):
  return tf.distribute.get_strategy().experimental_local_results(value)[0]


class LearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """`max(lr * rate ** (step / decay_steps), 1e-6)`, continuous decay."""

  def __init__(self, learning_rate: float, decay_steps: int,
               decay_rate: float):
    self.learning_rate = learning_rate
    self.decay_steps = decay_steps
    self.decay_rate = decay_rate

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    decayed = self.learning_rate * tf.pow(self.decay_rate,
                                          step / self.decay_steps)
    return tf.maximum(decayed, MIN_LEARNING_RATE)

  def get_config(self):
    return dict(learning_rate=self.learning_rate, decay_steps=self.decay_steps,
                decay_rate=self.decay_rate)


class Model(abc.ABC):
  """A model with the reference's optimizer, steps and checkpoint names."""

  def __init__(self, hparams, *, config: ModelConfig = ModelConfig()):
    """Creates the optimizer; `build` makes the variables."""
    check_hparams(hparams)
    self.hparams = hparams
    self.config = config
    self.shape: Optional[DataShape] = None
    self._layers: Dict[str, 'layers._Tf1Layer'] = {}
    self._dtype_policy = layer_variables.dtype_policy(config.compute_dtype)
    # The reference's Adam, `tf.compat.v1.train.AdamOptimizer`'s step.
    self.optimizer = adam.ReferenceAdam(LearningRateSchedule(
        hparams.learning_rate, hparams.decay_steps, hparams.decay_rate))
    self.loss_scale = (adam.DynamicLossScale()
                       if self.compute_dtype == 'float16' else None)

  @property
  def compute_dtype(self) -> str:
    """Dtype of the convolutions and matrix products; weights are float32."""
    return self._dtype_policy.compute_dtype

  @property
  def global_step(self) -> tf.Variable:
    """Adam updates so far (float16 steps skipped for overflow not counted)."""
    return self.optimizer.iterations

  @abc.abstractmethod
  def _make_layers(self) -> Dict[str, 'layers._Tf1Layer']:
    """The layers for data of `self.shape`, by TF1 variable scope, in order."""

  @abc.abstractmethod
  def forward(self, tensors: Mapping, *, training: bool = False) -> Forward:
    """The inference graph on a batch; training: the pass that trains."""

  def inference(self, tensors: Mapping) -> Inferred:
    """The reference's `inference`: logits and reconstructions (or None)."""
    out = self.forward(tensors)
    return Inferred(out.logits, out.remakes)

  def build(self, shape: DataShape) -> None:
    """Keeps the data's shape and creates the variables on one zero image
    (under a strategy's scope: distributed variables)."""
    self.shape = shape
    self._layers = self._make_layers()
    image = tf.zeros([1, shape.depth, shape.height, shape.height])
    label = tf.zeros([1], tf.int32)
    self.forward(dict(images=image, labels=tf.one_hot(label, shape.num_classes),
                      recons_image=image, recons_label=label,
                      spare_image=image, spare_label=label))
    self.optimizer.build(self.trainable_variables)

  def channels_last(self, images: tf.Tensor) -> tf.Tensor:
    """`[batch, height, width, depth]` images of any `[batch, ...]` layout."""
    shape = self.shape
    images = tf.reshape(images, [-1, shape.depth, shape.height, shape.height])
    return tf.transpose(images, [0, 2, 3, 1])

  @property
  def trainable_variables(self) -> List[keras.Variable]:
    """Model weights in the reference's creation order."""
    return list(layers.tf1_variable_map(self._layers).values())

  def losses(self, tensors: Mapping, *, training: bool = False) -> Losses:
    """Forward pass, total loss and correct / almost counts of a batch."""
    out = self.forward(tensors, training=training)
    evaluation = layers.evaluate(
        logits=out.logits, labels=tensors['labels'],
        num_targets=self.shape.num_targets,
        loss_type=self.hparams.loss_type,
        extra_losses=out.reconstruction_losses)
    return Losses(evaluation.total_loss, evaluation.correct,
                  evaluation.almost, evaluation.classification_loss,
                  out.reconstruction_losses, out.logits, out.remakes)

  def compute_loss(self, tensors: Mapping
                  ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`(total_loss, correct, almost)` of a batch, the evaluation step."""
    result = self.losses(tensors)
    return result.total_loss, result.correct, result.almost

  def compute_gradients(self, tensors: Mapping, *, replicas: int = 1
                       ) -> Tuple[List[tf.Tensor], Losses]:
    """Gradients of `total_loss / replicas` for `trainable_variables`.

    Each replica passes `num_replicas_in_sync`: the sum of their gradients
    is then the gradient of the global-batch mean loss. In float16 the loss
    is scaled for the backward pass and the gradients unscaled again (by a
    power of two: exactly); an overflow shows as a non-finite gradient.
    """
    with tf.GradientTape() as tape:
      result = self.losses(tensors, training=True)
      scaled_loss = result.total_loss * (1.0 / replicas)
      if self.loss_scale is not None:
        scaled_loss *= self.loss_scale.scale
    grads = tape.gradient(scaled_loss, self.trainable_variables)
    if self.loss_scale is not None:
      grads = [grad / self.loss_scale.scale for grad in grads]
    return grads, result

  def apply_gradients(self, grads: Sequence[tf.Tensor]) -> None:
    """One Adam update of gradients summed over replicas already.

    Under a strategy, call it in cross-replica context (in the strategy's
    scope, outside `strategy.run`). In float16 a step whose gradients are
    not finite is skipped (the global step stays) and the loss scale
    updated, alike on every replica.
    """
    if self.loss_scale is None:
      self.optimizer.apply_summed(grads, self.trainable_variables)
      return
    # Every replica holds the same sum: the first one's decides.
    finite = tf.reduce_all([
        tf.reduce_all(tf.math.is_finite(_first_local(grad)))
        for grad in grads])
    self.optimizer.apply_summed(grads, self.trainable_variables,
                                where=finite)
    self.loss_scale.update(finite)

  def summarize(self, losses: Losses, tensors: Mapping, *,
                step: tf.Tensor, batch_size: int) -> None:
    """Writes the reference's summaries of a training step at `step`.

    `losses` holds the whole batch's (of batch_size examples) mean losses
    and summed counts, and the logits and remakes of `tensors`, one
    replica's batch.
    """
    del tensors  # The capsule model shows its reconstructions.
    tf.summary.scalar('batch_classification_cost', losses.classification_loss,
                      step=step)
    tf.summary.scalar('total_loss', losses.total_loss, step=step)
    tf.summary.scalar('accuracy', losses.correct / batch_size, step=step)
    tf.summary.scalar('correct_prediction_batch', losses.correct, step=step)
    tf.summary.scalar('almost_correct_batch', losses.almost, step=step)
    for i, recons_loss in enumerate(losses.reconstruction_losses):
      tf.summary.scalar('reconstruction_error' + (f'_{i}' if i else ''),
                        recons_loss, step=step)
    if self.hparams.verbose:
      for name, var in layers.tf1_variable_map(self._layers).items():
        tf.summary.histogram(name, tf.convert_to_tensor(var), step=step)
      tf.summary.histogram('logits', losses.logits, step=step)

  def tf1_variable_map(self) -> Dict[str, tf.Variable]:
    """Reference checkpoint name to variable, model weights and global step."""
    variables = layers.tf1_variable_map(self._layers)
    variables[GLOBAL_STEP] = self.global_step
    return variables

  def slot_map(self) -> Dict[str, tf.Variable]:
    """Adam's state by reference name: `<var>/Adam`, `<var>/Adam_1`, ..."""
    slots = {}
    for name, var in layers.tf1_variable_map(self._layers).items():
      slots[f'{name}/Adam'], slots[f'{name}/Adam_1'] = self.optimizer.slots(var)
    slots['beta1_power'], slots['beta2_power'] = self.optimizer.beta_powers
    return slots

  def require_built(self) -> None:
    """Raises RuntimeError unless the model has its variables."""
    if not self._layers or not all(
        layer.built for layer in self._layers.values()):
      raise RuntimeError(
          'the model has no variables yet: call model.build(shape) before '
          'loading or saving a checkpoint')
