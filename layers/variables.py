"""Initializers of the reference's `weight_variable` and `bias_variable`.

The reference created every weight with a truncated normal (2 standard
deviations, stddev 0.1 unless a layer asks for another) and every bias with
the constant 0.1. Keras layers call these when they add their weights.
"""

import keras

WEIGHT_STDDEV = 0.1
BIAS_VALUE = 0.1


def weight_initializer(stddev: float = WEIGHT_STDDEV) -> keras.initializers.Initializer:
  """Truncated normal initializer of the reference's weight variables."""
  return keras.initializers.TruncatedNormal(stddev=stddev)


def bias_initializer() -> keras.initializers.Initializer:
  """Constant 0.1 initializer of the reference's bias variables."""
  return keras.initializers.Constant(BIAS_VALUE)
