"""The devices a run uses, and how the model computes on them.

Every command starts with `setup`, and every choice that depends on the
hardware is made here: the convolution (by DFT matrix products on CPUs,
cuDNN's on GPUs), what mixed precision means on the devices in use, XLA, the
strategy that places the replicas, the `Devices: ...` line.

No GPU was available to this project: the GPU branches follow the libraries'
documentation and are tested on CPU by forcing each one (docs/gpu.md).
"""

import collections
import os
from typing import List, Optional

import keras
import tensorflow as tf

import errors
from layers import variables
from models import model as model_lib
from models import run_config as run_config_lib

# `--compute_dtype`'s values: a compute dtype, 'tf32' (float32 that may run
# in TF32 on GPUs) or 'mixed' for the dtype the GPUs in use run fast.
COMPUTE_DTYPE_NAMES = variables.COMPUTE_DTYPES + ('tf32', 'mixed')
# GPUs of this compute capability and newer (Ampere) multiply bfloat16 fast.
BFLOAT16_COMPUTE_CAPABILITY = (8, 0)
# CPU features (Linux /proc/cpuinfo flags) that multiply bfloat16 natively.
BFLOAT16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')
GPU_REQUIREMENTS = 'requirements-gpu.txt'

# What `setup` gives a command.
Setup = collections.namedtuple('Setup', ('strategy', 'config'))


def _gpus_in_use(num_gpus: Optional[int] = None) -> List:
  """The visible GPUs a run of num_gpus replicas uses (None: all)."""
  gpus = tf.config.get_visible_devices('GPU')
  return gpus if num_gpus is None else gpus[:num_gpus]


def conv_implementation(gpus: Optional[List] = None) -> str:
  """'native' (TensorFlow's convolution) when a GPU is visible, else 'fourier'.

  The Fourier convolution was measured faster on CPUs only (`python -m
  benchmarks.ablation`, docs/speed.md); on a GPU cuDNN's convolutions are
  the tuned ones, with FFT and Winograd algorithms of their own.
  """
  gpus = _gpus_in_use() if gpus is None else gpus
  return 'native' if gpus else 'fourier'


def _cpu_flags(cpuinfo: str = '/proc/cpuinfo') -> List[str]:
  try:
    with open(cpuinfo) as info:
      for line in info:
        if line.startswith('flags'):
          return line.partition(':')[2].split()
  except OSError:
    pass
  return []


def mixed_precision_dtype(cpuinfo: str = '/proc/cpuinfo', *,
                          num_gpus: Optional[int] = None) -> str:
  """The compute dtype of mixed precision on the devices in use.

  bfloat16 on GPUs of compute capability 8.0 and newer and on CPUs with
  bfloat16 instructions; float16 (with loss scaling) on older GPUs, which
  have fast float16 but no fast bfloat16; float32 on other CPUs, where
  narrower types only add conversions. The slowest GPU in use (the first
  num_gpus visible ones; None: all) decides.
  """
  gpus = _gpus_in_use(num_gpus)
  if gpus:
    capabilities = [tf.config.experimental.get_device_details(gpu).get(
        'compute_capability', (0, 0)) for gpu in gpus]
    if min(capabilities) >= BFLOAT16_COMPUTE_CAPABILITY:
      return 'bfloat16'
    return 'float16'
  if set(BFLOAT16_CPU_FLAGS) & set(_cpu_flags(cpuinfo)):
    return 'bfloat16'
  return 'float32'


def resolve_run_config(*, compute_dtype: str = 'float32',
                       num_gpus: Optional[int] = None, xla: bool = True,
                       **settings) -> run_config_lib.RunConfig:
  """The run's configuration on this machine; `setup` says what it holds.

  Raises:
    errors.ConfigError: an unknown compute_dtype.
  """
  if compute_dtype not in COMPUTE_DTYPE_NAMES:
    raise errors.ConfigError(f'compute_dtype={compute_dtype!r}: use one of '
                             f'{", ".join(COMPUTE_DTYPE_NAMES)}')
  gpus = _gpus_in_use(num_gpus)
  if compute_dtype == 'mixed':
    compute_dtype = mixed_precision_dtype(num_gpus=num_gpus)
  settings.setdefault('tf32', compute_dtype == 'tf32')
  model = model_lib.ModelConfig(
      compute_dtype='float32' if compute_dtype == 'tf32' else compute_dtype,
      conv_implementation=settings.pop('conv_implementation',
                                       conv_implementation(gpus)),
      xla_routing=settings.pop('xla_routing', xla))
  settings.setdefault('xla_step', xla and bool(gpus))
  if gpus:
    settings.setdefault('summary_every_steps', settings.get(
        'log_every_steps', run_config_lib.LOG_EVERY_STEPS))
    if len(gpus) == 1:
      settings.setdefault('prefetch_to_device', '/gpu:0')
  return run_config_lib.RunConfig(model=model, **settings)


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
  else the default strategy (one device; num_gpus=0 hides the GPUs).
  Raises errors.ConfigError for num_gpus this machine cannot give or that
  do not divide the global batch (checked first: on any machine).
  """
  if num_gpus < 0:
    raise errors.ConfigError(f'num_gpus={num_gpus}: use 0 for the CPU, or '
                             f'the number of GPUs per machine')
  gpus = tf.config.list_physical_devices('GPU')
  if num_gpus == 0:
    tf.config.set_visible_devices([], 'GPU')
    return tf.distribute.get_strategy()
  check_replicas(num_gpus, global_batch_size)
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


def setup(*, num_gpus: int = 1, compute_dtype: str = 'float32',
          xla: bool = True, seed: Optional[int] = None,
          distribute: bool = False, quiet: bool = False,
          **settings) -> Setup:
  """Prepares TensorFlow for a command: returns its strategy and RunConfig.

  In the one order that works: GPU memory as needed (before TensorFlow
  first touches a GPU); the strategy (before anything else starts the
  runtime: a multi-worker strategy configures its collectives then, and
  num_gpus=0 hides the GPUs); the configuration of the GPUs then in use;
  float32 precision (TensorFlow's default TF32 on Ampere GPUs is about 1e-3
  relative off, past the reference's tolerances; the switch is
  process-wide); the seeds; the `Devices:` line (unless quiet).

  Args:
    num_gpus: GPUs (replicas) per worker; 0: the CPU, with the GPUs hidden.
    compute_dtype: of COMPUTE_DTYPE_NAMES: 'mixed' is the dtype the GPUs in
      use run fast (`mixed_precision_dtype`), 'tf32' float32 in TF32.
    xla: compile with XLA (the routing; on GPUs each replica's whole step);
      False where XLA cannot compile.
    seed: seeds Python, NumPy, TensorFlow and Keras, with deterministic ops.
    distribute: the strategy of num_gpus replicas (`make_strategy`), to
      train; False: the default strategy (one device).
    **settings: `RunConfig` and `ModelConfig` fields; by default the
      devices' (their convolution; on GPUs the XLA step, summaries once per
      log interval and, for one GPU, the input copied to it ahead).

  Raises:
    errors.ConfigError: an unknown compute_dtype, or num_gpus this machine
      cannot give.
  """
  allow_gpu_memory_growth()
  strategy = tf.distribute.get_strategy()
  if distribute or num_gpus == 0:
    strategy = make_strategy(num_gpus, global_batch_size=settings.get(
        'train_batch_size', run_config_lib.TRAIN_BATCH_SIZE))
  config = resolve_run_config(compute_dtype=compute_dtype, num_gpus=num_gpus,
                              xla=xla, **settings)
  tf.config.experimental.enable_tensor_float_32_execution(config.tf32)
  if seed is not None:
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
  if not quiet:
    print(describe(config, num_replicas=num_gpus), flush=True)
  return Setup(strategy, config)


def _no_gpu_reason() -> str:
  """Why a run sees no GPU, as far as this process can tell."""
  if tf.config.list_physical_devices('GPU'):
    return 'GPUs hidden (--num_gpus=0)'
  build = tf.sysconfig.get_build_info()
  if build.get('is_cuda_build'):
    return (f'no GPU visible: this TensorFlow is built for CUDA '
            f'{build.get("cuda_version", "")} but found no GPU (no NVIDIA '
            f'driver, or its CUDA libraries are not installed: pip install '
            f'-r {GPU_REQUIREMENTS})').replace('CUDA  ', 'CUDA ')
  return 'no GPU visible (this TensorFlow is built without CUDA)'


def gpu_names(gpus: Optional[List] = None) -> str:
  """The GPUs' model names, each once, e.g. 'NVIDIA A100-SXM4-40GB'."""
  gpus = _gpus_in_use() if gpus is None else gpus
  names = [tf.config.experimental.get_device_details(gpu).get(
      'device_name', gpu.name) for gpu in gpus]
  return ', '.join(sorted(set(names), key=names.index))


def describe(config: run_config_lib.RunConfig, *,
             num_replicas: int = 1) -> str:
  """The `Devices: ...` line: what the run computes on, and how.

  E.g. `Devices: 2 GPUs (NVIDIA A100-SXM4-40GB), bfloat16, cuDNN
  convolution, XLA step` or `Devices: CPU (2 cores), no GPU visible: ...,
  float32, Fourier convolution, XLA routing`; num_replicas: the GPUs this
  machine runs on.
  """
  gpus = _gpus_in_use(num_replicas)
  if gpus:
    where = (f'{len(gpus)} GPU{"s" if len(gpus) > 1 else ""} '
             f'({gpu_names(gpus)})')
  else:
    where = f'CPU ({os.cpu_count()} cores), {_no_gpu_reason()}'
  model = config.model
  dtype = {'float32': 'float32' + (' (TF32 allowed)' if config.tf32 else ''),
           'bfloat16': 'bfloat16 mixed precision',
           'float16': 'float16 mixed precision (loss scaling)',
           }[model.compute_dtype]
  conv = {'fourier': 'Fourier convolution',
          'native': 'cuDNN convolution' if gpus else 'TensorFlow convolution',
          }[model.conv_implementation]
  xla = ('XLA step' if config.xla_step else
         'XLA routing' if model.xla_routing else 'no XLA')
  return f'Devices: {where}, {dtype}, {conv}, {xla}'
