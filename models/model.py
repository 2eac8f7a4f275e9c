"""Base model: optimizer, learning-rate schedule, training and evaluation steps.

Subclasses define `forward` (the inference graph) and `_scoped_layers` (their
Keras layers keyed by TF1 variable scope). Everything else, the Adam update of
the reference, the loss, the correct / almost counts and the conversion to and
from the reference's name-based TF1 checkpoints, lives here once.
"""

import abc
import collections
from typing import Dict, List, Mapping, Sequence, Tuple

import keras
import tensorflow as tf

import errors
from layers import layers
from layers import variables as layer_variables
from models import adam
from models import run_config as run_config_lib

Inferred = collections.namedtuple('Inferred', ('logits', 'remakes'))

# The Python ints a model reads from the feature dict, from the data.
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


def features(tensors: Mapping[str, tf.Tensor],
             shape: DataShape) -> Dict[str, object]:
  """The models' feature dict: a batch's tensors plus the shape ints.

  Args:
    tensors: `images` `[batch, depth, height, width]`, `labels`
      `[batch, num_classes]`, `recons_label`, `recons_image` (and
      `spare_label`, `spare_image` for two targets), as the readers give them.
    shape: the data's shape ints.

  Returns:
    The reference's feature dict.
  """
  return dict(tensors, **shape._asdict())


def data_shape(element_spec: Mapping[str, tf.TensorSpec],
               num_targets: int) -> DataShape:
  """The shape ints of batches of `images` `[b, depth, h, w]` and `labels`."""
  _, depth, height, _ = element_spec['images'].shape
  return DataShape(height, depth, element_spec['labels'].shape[-1],
                   num_targets)


def _first_local(value):
  """The first replica's copy of a value (the value itself off strategies)."""
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

  def __init__(self, hparams, *,
               config: run_config_lib.RunConfig = run_config_lib.RunConfig()):
    """Creates the optimizer; layers are built on the first forward pass.

    Args:
      hparams: `models.hparams.default_hparams()`, possibly overridden.
      config: how the model computes. Its compute_dtype is 'float32', or
        'bfloat16' or 'float16' for mixed precision: the convolutions and
        matrix products run in that dtype on float32 weights, squash,
        routing and losses stay float32. float16, whose range is narrow,
        trains on a dynamically scaled loss (`adam.DynamicLossScale`: a
        step whose gradients overflow is skipped and the scale halved).

    Raises:
      errors.ConfigError: for a padding, loss_type or routing that cannot
        work.
    """
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
    self._hparams = hparams
    self._config = config
    self._dtype_policy = layer_variables.dtype_policy(config.compute_dtype)
    self._adam = adam.ReferenceAdam(LearningRateSchedule(
        hparams.learning_rate, hparams.decay_steps, hparams.decay_rate))
    self.loss_scale = (adam.DynamicLossScale()
                       if self.compute_dtype == 'float16' else None)

  @property
  def hparams(self):
    return self._hparams

  @property
  def optimizer(self) -> adam.ReferenceAdam:
    """The reference's Adam, `tf.compat.v1.train.AdamOptimizer`'s step."""
    return self._adam

  @property
  def config(self) -> run_config_lib.RunConfig:
    """How the model computes (its compute dtype, its convolution)."""
    return self._config

  @property
  def compute_dtype(self) -> str:
    """Dtype of the convolutions and matrix products; weights are float32."""
    return self._dtype_policy.compute_dtype

  @property
  def global_step(self) -> tf.Variable:
    """Number of Adam updates so far (the reference's `global_step`).

    A float16 step skipped for overflowing gradients does not count.
    """
    return self._adam.iterations

  @abc.abstractmethod
  def _scoped_layers(self) -> Dict[str, 'layers._Tf1Layer']:
    """The model's layers keyed by TF1 variable scope, in creation order."""

  @abc.abstractmethod
  def forward(self, features: Mapping) -> Forward:
    """Builds the inference graph on a feature dict.

    Args:
      features: the reference's feature dict: `images`
        `[batch, depth, height, width]`, `labels`, `recons_label`,
        `recons_image` (and `spare_label`, `spare_image` for two targets),
        plus the Python ints `height`, `depth`, `num_classes`, `num_targets`.

    Returns:
      A `Forward` tuple.
    """

  def inference(self, features: Mapping) -> Inferred:
    """The reference's `inference`: logits and reconstructions (or None)."""
    out = self.forward(features)
    return Inferred(out.logits, out.remakes)

  def build(self, shape: DataShape) -> None:
    """Creates the variables with a forward pass on one zero image.

    Call it under a `tf.distribute` strategy's scope to get distributed
    variables, and before restoring a checkpoint.

    Args:
      shape: the shape of the data the model will see.
    """
    image = tf.zeros([1, shape.depth, shape.height, shape.height])
    label = tf.zeros([1], tf.int32)
    tensors = dict(images=image, labels=tf.one_hot(label, shape.num_classes),
                   recons_image=image, recons_label=label, spare_image=image,
                   spare_label=label)
    self.forward(features(tensors, shape))
    self.optimizer.build(self.trainable_variables)

  @property
  def built(self) -> bool:
    return all(layer.built for layer in self._scoped_layers().values())

  @property
  def trainable_variables(self) -> List[keras.Variable]:
    """Model weights in the reference's creation order."""
    return list(layers.tf1_variable_map(self._scoped_layers()).values())

  def losses(self, features: Mapping) -> Losses:
    """Forward pass, total loss and correct / almost counts of a batch."""
    out = self.forward(features)
    evaluation = layers.evaluate(
        logits=out.logits, labels=features['labels'],
        num_targets=features['num_targets'],
        loss_type=self._hparams.loss_type,
        extra_losses=out.reconstruction_losses)
    return Losses(evaluation.total_loss, evaluation.correct,
                  evaluation.almost, evaluation.classification_loss,
                  out.reconstruction_losses, out.logits, out.remakes)

  def compute_loss(self, features: Mapping
                  ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`(total_loss, correct, almost)` of a batch, the evaluation step."""
    result = self.losses(features)
    return result.total_loss, result.correct, result.almost

  def compute_gradients(self, features: Mapping, *, replicas: int = 1
                       ) -> Tuple[List[tf.Tensor], Losses]:
    """Gradients of `total_loss / replicas` for `trainable_variables`.

    Under a `tf.distribute` strategy each replica passes
    `num_replicas_in_sync`: the sum of their gradients is then the gradient
    of the global-batch mean loss. In float16 the loss is scaled by the
    loss scale for the backward pass and the gradients unscaled again (by
    a power of two: exactly); an overflow shows as a non-finite gradient.
    """
    with tf.GradientTape() as tape:
      result = self.losses(features)
      scaled_loss = result.total_loss * (1.0 / replicas)
      if self.loss_scale is not None:
        scaled_loss *= self.loss_scale.scale
    grads = tape.gradient(scaled_loss, self.trainable_variables)
    if self.loss_scale is not None:
      grads = [grad / self.loss_scale.scale for grad in grads]
    return grads, result

  def apply_gradients(self, grads: Sequence[tf.Tensor]) -> None:
    """One Adam update at the current global step, which then advances.

    The gradients are `compute_gradients`', summed over replicas already:
    under a strategy, call this in cross-replica context (in the strategy's
    scope, outside `strategy.run`) with the all-reduced gradients. In
    float16 a step whose gradients are not finite is skipped (the global
    step stays) and the loss scale updated, alike on every replica.
    """
    if self.loss_scale is None:
      self._adam.apply_summed(grads, self.trainable_variables)
      return
    # Every replica holds the same sum: the first one's decides.
    finite = tf.reduce_all([
        tf.reduce_all(tf.math.is_finite(_first_local(grad)))
        for grad in grads])

    def apply():
      self._adam.apply_summed(grads, self.trainable_variables)
      return tf.constant(True)

    tf.cond(finite, apply, lambda: tf.constant(False))
    self.loss_scale.update(finite)

  def summarize(self, losses: Losses, features: Mapping, *,
                step: tf.Tensor, batch_size: int) -> None:
    """Writes the reference's summaries of a training step.

    To the default summary writer at `step`: the scalars `total_loss`,
    `batch_classification_cost`, `accuracy`, `correct_prediction_batch`,
    `almost_correct_batch` and `reconstruction_error` (`_1` for the second
    target), and with hparam verbose histograms of the weights and logits.

    Args:
      losses: the step's `Losses`: losses and counts of the whole batch
        (mean losses, summed counts), logits and remakes of `features`.
      features: the feature dict of one replica's batch.
      step: the global step before the update.
      batch_size: examples in the whole batch.
    """
    del features  # The capsule model shows its reconstructions.
    tf.summary.scalar('batch_classification_cost', losses.classification_loss,
                      step=step)
    tf.summary.scalar('total_loss', losses.total_loss, step=step)
    tf.summary.scalar('accuracy', losses.correct / batch_size, step=step)
    tf.summary.scalar('correct_prediction_batch', losses.correct, step=step)
    tf.summary.scalar('almost_correct_batch', losses.almost, step=step)
    for i, recons_loss in enumerate(losses.reconstruction_losses):
      tf.summary.scalar('reconstruction_error' + (f'_{i}' if i else ''),
                        recons_loss, step=step)
    if self._hparams.verbose:
      for name, var in layers.tf1_variable_map(self._scoped_layers()).items():
        tf.summary.histogram(name, tf.convert_to_tensor(var), step=step)
      tf.summary.histogram('logits', losses.logits, step=step)

  def tf1_variable_map(self) -> Dict[str, tf.Variable]:
    """Reference checkpoint name to variable, model weights and global step."""
    variables = layers.tf1_variable_map(self._scoped_layers())
    variables[GLOBAL_STEP] = self.global_step
    return variables

  def slot_map(self) -> Dict[str, tf.Variable]:
    """Adam's state by reference name.

    `<var>/Adam` and `<var>/Adam_1` (first and second moments) of every
    weight, and `beta1_power`, `beta2_power`.
    """
    slots = {}
    for name, var in layers.tf1_variable_map(self._scoped_layers()).items():
      slots[f'{name}/Adam'], slots[f'{name}/Adam_1'] = self._adam.slots(var)
    slots['beta1_power'], slots['beta2_power'] = self._adam.beta_powers
    return slots

  def set_step(self, step: int) -> None:
    """Sets the global step, and Adam's beta powers to the reference's there."""
    self._adam.set_step(step)

  def require_built(self) -> None:
    """Raises RuntimeError unless the model has its variables."""
    if not self.built:
      raise RuntimeError(
          'the model has no variables yet: call model.build(shape) or run '
          'it on a batch before loading or saving a checkpoint')
