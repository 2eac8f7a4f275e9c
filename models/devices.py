"""The devices a run uses, and how the model computes on them.

Every choice that depends on the hardware is made here, and
`resolve_run_config` puts them into the run's `RunConfig`:
- `conv_implementation`: the primary capsules' convolution by DFT matrix
  products on CPUs, TensorFlow's (cuDNN) on GPUs;
- `mixed_precision_dtype`: what `--compute_dtype=mixed` means on this
  machine (bfloat16 or float16, or float32 where neither is fast);
- `allow_gpu_memory_growth` and `make_strategy`: GPU memory as needed, and
  the `tf.distribute` strategy that places the replicas (one device, several
  GPUs, or several workers).
Routing is compiled by XLA on every device (`layers.fused_routing`).

No GPU was available to this project: the GPU branches follow the libraries'
documentation and are tested on CPU by forcing each one (docs/speed.md).
"""

import os
from typing import List

import tensorflow as tf

import errors
from layers import variables
from models import run_config as run_config_lib

# `--compute_dtype`'s values: a compute dtype, or 'mixed' for this machine's.
COMPUTE_DTYPE_NAMES = variables.COMPUTE_DTYPES + ('mixed',)
# GPUs of this compute capability and newer (Ampere) multiply bfloat16 fast.
BFLOAT16_COMPUTE_CAPABILITY = (8, 0)
# CPU features (Linux /proc/cpuinfo flags) that multiply bfloat16 natively.
BFLOAT16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')


def conv_implementation() -> str:
  """'native' (TensorFlow's convolution) when a GPU is visible, else 'fourier'.

  The Fourier convolution was measured faster on CPUs only (`python -m
  benchmarks.ablation`, docs/speed.md); on a GPU cuDNN's convolutions are
  the tuned ones, with FFT and Winograd algorithms of their own.
  """
  return 'native' if tf.config.list_logical_devices('GPU') else 'fourier'


def _cpu_flags(cpuinfo: str = '/proc/cpuinfo') -> List[str]:
  try:
    with open(cpuinfo) as info:
      for line in info:
        if line.startswith('flags'):
          return line.partition(':')[2].split()
  except OSError:
    pass
  return []


def mixed_precision_dtype(cpuinfo: str = '/proc/cpuinfo') -> str:
  """The compute dtype of mixed precision on this machine's devices.

  bfloat16 on GPUs of compute capability 8.0 and newer and on CPUs with
  bfloat16 instructions; float16 (with loss scaling) on older GPUs, which
  have fast float16 but no fast bfloat16; float32 on other CPUs, where
  narrower types only add conversions.

  Args:
    cpuinfo: where the CPU's feature flags are read (Linux).
  """
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    capabilities = [tf.config.experimental.get_device_details(gpu).get(
        'compute_capability', (0, 0)) for gpu in gpus]
    if min(capabilities) >= BFLOAT16_COMPUTE_CAPABILITY:
      return 'bfloat16'
    return 'float16'
  if set(BFLOAT16_CPU_FLAGS) & set(_cpu_flags(cpuinfo)):
    return 'bfloat16'
  return 'float32'


def resolve_compute_dtype(name: str) -> str:
  """`--compute_dtype`'s value as a dtype: 'mixed' becomes this machine's."""
  return mixed_precision_dtype() if name == 'mixed' else name


def resolve_run_config(*, compute_dtype: str = 'float32',
                       **settings) -> run_config_lib.RunConfig:
  """The run's configuration on this machine.

  Args:
    compute_dtype: a name of COMPUTE_DTYPE_NAMES; 'mixed' becomes this
      machine's (`mixed_precision_dtype`).
    **settings: other `RunConfig` fields, as given; without
      conv_implementation, the device's (`conv_implementation`).

  Returns:
    The `RunConfig`.
  """
  settings.setdefault('conv_implementation', conv_implementation())
  return run_config_lib.RunConfig(
      compute_dtype=resolve_compute_dtype(compute_dtype), **settings)


def check_replicas(num_replicas: int, global_batch_size: int) -> None:
  """Raises ConfigError unless the replicas split the global batch evenly."""
  if num_replicas < 1 or global_batch_size % num_replicas:
    raise errors.ConfigError(
        f'{num_replicas} replicas cannot split the global batch of '
        f'{global_batch_size} evenly; use a number of GPUs (times workers) '
        f'that divides {global_batch_size}')


def allow_gpu_memory_growth() -> List[str]:
  """Lets TensorFlow take GPU memory as it needs it, not all at start.

  So a training and an evaluation process share one GPU (the reference
  needed a second GPU or a memory cap for that). Must run before TensorFlow
  first touches a GPU; a no-op without GPUs. Returns the GPUs' names.
  """
  gpus = tf.config.list_physical_devices('GPU')
  for gpu in gpus:
    tf.config.experimental.set_memory_growth(gpu, True)
  return [gpu.name for gpu in gpus]


def make_strategy(num_gpus: int, *,
                  global_batch_size: int) -> tf.distribute.Strategy:
  """The distribution strategy for `num_gpus` replicas per worker.

  With `TF_CONFIG` set, a `MultiWorkerMirroredStrategy` over the workers it
  lists, each using its first `num_gpus` GPUs (or its CPU when it has none);
  otherwise a `MirroredStrategy` over `num_gpus` GPUs when `num_gpus > 1`,
  else the default strategy (one device).

  Raises:
    errors.ConfigError: if num_gpus does not divide the global batch or exceeds the
      GPUs this machine has.
  """
  check_replicas(num_gpus, global_batch_size)
  gpus = tf.config.list_physical_devices('GPU')
  if num_gpus > 1 and num_gpus > len(gpus):
    raise errors.ConfigError(f'num_gpus={num_gpus} but this machine has '
                             f'{len(gpus)} GPUs')
  if 'TF_CONFIG' in os.environ:
    if gpus:
      tf.config.set_visible_devices(gpus[:num_gpus], 'GPU')
    return tf.distribute.MultiWorkerMirroredStrategy()
  if num_gpus > 1:
    return tf.distribute.MirroredStrategy(
        [f'/gpu:{i}' for i in range(num_gpus)])
  return tf.distribute.get_strategy()
