"""Initializers of the reference's `weight_variable` and `bias_variable`.

The reference created every weight with a truncated normal (2 standard
deviations, stddev 0.1 unless a layer asks for another) and every bias with
the constant 0.1. Keras layers call these when they add their weights. Weights
stay float32 whatever dtype the layers compute in (`dtype_policy`).
"""

import keras

WEIGHT_STDDEV = 0.1
BIAS_VALUE = 0.1
COMPUTE_DTYPES = ('float32', 'bfloat16', 'float16')


def weight_initializer(
    stddev: float = WEIGHT_STDDEV) -> keras.initializers.Initializer:
  return keras.initializers.TruncatedNormal(stddev=stddev)


def bias_initializer() -> keras.initializers.Initializer:
  return keras.initializers.Constant(BIAS_VALUE)


def dtype_policy(compute_dtype: str) -> keras.DTypePolicy:
  """Float32 weights, computing in `compute_dtype` (of COMPUTE_DTYPES, else
  ValueError)."""
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f'compute_dtype={compute_dtype!r}: use one of '
                     f'{", ".join(COMPUTE_DTYPES)}')
  name = 'float32' if compute_dtype == 'float32' else f'mixed_{compute_dtype}'
  return keras.DTypePolicy(name)
