"""Adam as the reference computes it, to the last bit, in a Keras optimizer.

The reference trains with `tf.compat.v1.train.AdamOptimizer`, which updates
each variable with TensorFlow's `ResourceApplyAdam` kernel and keeps
`beta1_power` and `beta2_power` as float32 variables multiplied by beta1 and
beta2 after every step. Stock `keras.optimizers.Adam` implements the same
formula with other roundings: `1 - beta` in double precision, `beta ** t`
by `pow`, the update as separate elementwise ops. After one step the two
agree to about 1e-8, but a ReLU that one of them tips over its kink turns
that into a different gradient, which Adam's normalised update carries in
full: weights 40 times past the goldens' tolerance within three steps.
`ReferenceAdam` runs the reference's kernel on the reference's running beta
powers, so a step here is the reference's step bit for bit; being a Keras
optimizer, it keeps working under `tf.distribute`.
"""

import functools
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

# tf.compat.v1.train.AdamOptimizer's defaults, the reference's.
BETA1 = 0.9
BETA2 = 0.999
EPSILON = 1e-8
# float16's dynamic loss scale, with keras.optimizers.LossScaleOptimizer's
# defaults.
INITIAL_LOSS_SCALE = 2.0**15
LOSS_SCALE_GROWTH_STEPS = 2000


def beta_power(beta: float, step: int) -> np.float32:
  """The reference's `beta_power` variable at global step `step`.

  It starts at beta and is multiplied by beta in float32 after every step,
  so before the update of step `step` it is that product of `step + 1`
  factors, rounded after each factor (not `beta ** (step + 1)`). TensorFlow
  flushes subnormal results to zero on CPUs, so once the product falls
  below float32's smallest normal number it is zero.
  """
  factor = np.float32(beta)
  power = factor
  for _ in range(step):
    power = np.float32(power * factor)
    if power < np.finfo(np.float32).tiny:
      return np.float32(0)
  return power


class ReferenceAdam(keras.optimizers.Adam):
  """Keras Adam whose update is the reference's `AdamOptimizer` step."""

  def __init__(self, learning_rate, *, name: str = 'adam', **kwargs):
    super().__init__(learning_rate=learning_rate, beta_1=BETA1, beta_2=BETA2,
                     epsilon=EPSILON, name=name, **kwargs)

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    # Updated once per step in replica context: the first replica's value
    # is every replica's, as for the step counter.
    self._beta1_power = self.add_variable(
        shape=(), initializer=keras.initializers.Constant(BETA1),
        aggregation='only_first_replica', name='beta1_power')
    self._beta2_power = self.add_variable(
        shape=(), initializer=keras.initializers.Constant(BETA2),
        aggregation='only_first_replica', name='beta2_power')

  @property
  def beta_powers(self) -> Tuple[keras.Variable, keras.Variable]:
    """The variables `beta1_power`, `beta2_power` of the next update."""
    return self._beta1_power, self._beta2_power

  def slots(self, variable) -> Tuple[keras.Variable, keras.Variable]:
    """The first and second moments (`<var>/Adam`, `<var>/Adam_1`)."""
    index = self._get_variable_index(variable)
    return self._momentums[index], self._velocities[index]

  def update_step(self, gradient, variable, learning_rate):
    dtype = variable.dtype
    m, v = self.slots(variable)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=m.value.handle, v=v.value.handle,
        beta1_power=tf.cast(self._beta1_power.value, dtype),
        beta2_power=tf.cast(self._beta2_power.value, dtype),
        lr=tf.cast(learning_rate, dtype), beta1=tf.constant(BETA1, dtype),
        beta2=tf.constant(BETA2, dtype), epsilon=tf.constant(EPSILON, dtype),
        grad=tf.cast(gradient, dtype))

  def apply(self, grads, trainable_variables=None):
    super().apply(grads, trainable_variables)
    if len(grads):  # Keras skips an empty update.
      self._finish()

  def apply_summed(self, grads, trainable_variables, *,
                   where: Optional[tf.Tensor] = None) -> None:
    """One update with gradients summed over replicas before.

    Keras' `apply` sums them itself, inside; these sums (under a strategy,
    `batch_reduce_to`'s on the variables' devices) are applied in
    cross-replica context, each variable on its devices, as Keras does.

    where: a scalar bool (float16's finite gradients); where it is False,
    every variable the update writes keeps its value. It is selected, not
    branched on: a `tf.cond` on a GPU's tensor copies its predicate to the
    host and the step waits for it. The cost is a copy of each weight and
    its moments; the values kept are the kernel's own, bit for bit.
    """
    with tf.name_scope(self.name):
      learning_rate = self.learning_rate
      strategy = tf.distribute.get_strategy()
      for grad, variable in zip(grads, trainable_variables):
        strategy.extended.update(
            variable.value,
            lambda var, grad: self._update_where(grad, var, learning_rate,
                                                 where),
            args=(grad,), group=False)
      self.iterations.assign_add(
          1 if where is None else tf.cast(where, self.iterations.dtype))
      self._finish(where)

  def _update_where(self, gradient, variable, learning_rate, where) -> None:
    """`update_step` on one device's variable, kept where `where` holds."""
    if where is None:
      self.update_step(gradient, variable, learning_rate)
      return
    m, v = self.slots(variable)
    handles = (variable.handle, m.value.handle, v.value.handle)
    read = functools.partial(tf.raw_ops.ReadVariableOp, dtype=variable.dtype)
    old = [read(resource=handle) for handle in handles]
    self.update_step(gradient, variable, learning_rate)
    for handle, value in zip(handles, old):
      tf.raw_ops.AssignVariableOp(resource=handle,
                                  value=tf.where(where, read(resource=handle),
                                                 value))

  def _finish(self, where: Optional[tf.Tensor] = None) -> None:
    """The reference's: the next step's powers (unchanged where not where)."""
    for power, beta in ((self._beta1_power, BETA1),
                        (self._beta2_power, BETA2)):
      new = power * beta
      power.assign(new if where is None else tf.where(where, new, power))

  def set_step(self, step: int) -> None:
    """Sets the step counter and the beta powers the reference has there.

    For a checkpoint that holds no `beta1_power` and `beta2_power` (the
    released ones, or weights without optimizer state).
    """
    self.iterations.assign(step)
    self._beta1_power.assign(beta_power(BETA1, step))
    self._beta2_power.assign(beta_power(BETA2, step))


class DynamicLossScale:
  """float16's loss scale: doubled after a run of finite steps, halved at
  an overflow, as `keras.optimizers.LossScaleOptimizer` does it.

  Kept apart from the optimizer so that a step can all-reduce its
  gradients over replicas first and then decide, on the summed gradients
  that every replica holds alike, whether the step is applied: deciding on
  each replica's own gradients before the sum (Keras' order) lets an
  overflow on one replica through on the others.
  """

  def __init__(self, *, initial_scale: float = INITIAL_LOSS_SCALE,
               growth_steps: int = LOSS_SCALE_GROWTH_STEPS):
    self.growth_steps = growth_steps
    only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA
    self.scale = tf.Variable(initial_scale, dtype=tf.float32,
                             trainable=False, aggregation=only_first,
                             name='loss_scale')
    self.finite_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                    aggregation=only_first,
                                    name='finite_steps')

  def update(self, finite: tf.Tensor) -> None:
    """Counts a finite step, doubling the scale at growth_steps of them;
    halves it at an overflow. By selection, with no branch to wait for
    (`ReferenceAdam.apply_summed`); the factors are powers of two: exact."""
    grow = finite & (self.finite_steps + 1 >= self.growth_steps)
    factor = tf.where(grow, 2.0, tf.where(finite, 1.0, 0.5))
    self.finite_steps.assign(
        tf.where(finite & ~grow, self.finite_steps + 1, 0))
    self.scale.assign(self.scale * factor)
