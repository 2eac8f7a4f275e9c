"""The devices a run uses, and how the model computes on them.

Every command starts with `setup`, and every choice that depends on the
hardware is made here: the convolution (by DFT matrix products on CPUs,
cuDNN's on GPUs), what mixed precision means on the devices in use, XLA, the
strategy that places the replicas, the `Devices: ...` line.

No GPU was available to this project: the GPU branches follow the libraries'
documentation and are tested on CPU by forcing each one (docs/gpu.md).
"""

import collections
import glob
import importlib.util
import os
import re
from typing import List, Optional, Tuple

import keras
import tensorflow as tf

import errors
from layers import variables
from models import capsule_model
from models import model as model_lib
from models import registry
from models import run_config as run_config_lib

# `--compute_dtype`'s values: a compute dtype, 'tf32' (float32 that may run
# in TF32 on GPUs) or 'mixed' for the dtype the GPUs in use run fast.
COMPUTE_DTYPE_NAMES = variables.COMPUTE_DTYPES + ('tf32', 'mixed')
# GPUs of this compute capability and newer (Ampere) multiply bfloat16 fast;
# from Volta on, float16 (tensor cores). Older GPUs gain nothing from either.
BFLOAT16_COMPUTE_CAPABILITY = (8, 0)
FLOAT16_COMPUTE_CAPABILITY = (7, 0)
# CPU features (Linux /proc/cpuinfo flags) that multiply bfloat16 natively.
BFLOAT16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')
GPU_REQUIREMENTS = 'requirements-gpu.txt'
# NVIDIA's driver files: `version`, and `gpus/*/information` of every GPU.
NVIDIA_PROC = '/proc/driver/nvidia'
# The oldest drivers for TensorFlow's CUDA 12.5.1 (NVIDIA's CUDA compatibility
# tables): any CUDA 12 driver, by minor version compatibility; CUDA 12.5.1's
# own to compile the PTX that GPUs without machine code in the build run.
OLDEST_DRIVER = (525, 60, 13)
PTX_DRIVER = (555, 42, 6)
# `--all_reduce`: TensorFlow's choice, or a named implementation.
ALL_REDUCE_NAMES = ('auto', 'nccl', 'hierarchical_copy', 'ring')

# What `setup` gives a command.
Setup = collections.namedtuple('Setup', ('strategy', 'config'))


class DriverError(errors.UserError, RuntimeError):
  """The NVIDIA driver is too old for TensorFlow's GPU kernels."""


def _capability(gpu) -> Tuple[int, int]:
  return tf.config.experimental.get_device_details(gpu).get(
      'compute_capability', (0, 0))


def _gpus_in_use(num_gpus: Optional[int] = None) -> List:
  """The visible GPUs a run of num_gpus replicas uses (None: all)."""
  gpus = tf.config.get_visible_devices('GPU')
  return gpus if num_gpus is None else gpus[:num_gpus]


def conv_implementation(gpus: Optional[List] = None) -> str:
  """'native' (TensorFlow's convolution) when a GPU is visible, else 'fourier':
  the Fourier one was measured faster on CPUs only (docs/speed.md); on a GPU
  cuDNN's are the tuned ones, with FFT and Winograd algorithms of their own.
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
  """The compute dtype of mixed precision on the devices in use (see the
  constants); the slowest GPU in use (the first num_gpus visible ones; None:
  all) decides. On CPUs without bfloat16 instructions narrower types only
  add conversions."""
  gpus = _gpus_in_use(num_gpus)
  if gpus:
    slowest = min(_capability(gpu) for gpu in gpus)
    if slowest >= BFLOAT16_COMPUTE_CAPABILITY:
      return 'bfloat16'
    return 'float16' if slowest >= FLOAT16_COMPUTE_CAPABILITY else 'float32'
  if set(BFLOAT16_CPU_FLAGS) & set(_cpu_flags(cpuinfo)):
    return 'bfloat16'
  return 'float32'


def resolve_run_config(*, compute_dtype: str = 'float32',
                       num_gpus: Optional[int] = None, xla: bool = True,
                       **settings) -> run_config_lib.RunConfig:
  """The run's configuration on this machine; see `setup`."""
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
  """Lets TensorFlow take GPU memory as it needs it, not all at start, so a
  training and an evaluation process share one GPU (the reference needed a
  second GPU or a memory cap for that). Must run before TensorFlow first
  touches a GPU. Returns the GPUs' names (none: a no-op)."""
  gpus = tf.config.list_physical_devices('GPU')
  for gpu in gpus:
    tf.config.experimental.set_memory_growth(gpu, True)
  return [gpu.name for gpu in gpus]


def _make_strategy(num_gpus: int, *, global_batch_size: int,
                   all_reduce: str = 'auto') -> tf.distribute.Strategy:
  """`setup`'s strategy: multi-worker with TF_CONFIG, else mirrored or one;
  all_reduce: those of `ALL_REDUCE_NAMES` that strategy knows."""
  multi_worker = 'TF_CONFIG' in os.environ
  collective = tf.distribute.experimental.CommunicationImplementation
  choices = ({'auto': collective.AUTO, 'nccl': collective.NCCL,
              'ring': collective.RING} if multi_worker else
             {'auto': None, 'nccl': tf.distribute.NcclAllReduce,
              'hierarchical_copy': tf.distribute.HierarchicalCopyAllReduce})
  if all_reduce not in choices:
    raise errors.ConfigError(
        f'all_reduce={all_reduce}: use one of {", ".join(choices)} '
        f'{"with" if multi_worker else "without"} TF_CONFIG')
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
  if multi_worker:
    if gpus:
      tf.config.set_visible_devices(gpus[:num_gpus], 'GPU')
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=choices[all_reduce]))
  if num_gpus > 1:
    cross_device_ops = choices[all_reduce]
    return tf.distribute.MirroredStrategy(
        [f'/gpu:{i}' for i in range(num_gpus)],
        cross_device_ops=cross_device_ops and cross_device_ops())
  return tf.distribute.get_strategy()


def setup(*, num_gpus: int = 1, compute_dtype: str = 'float32',
          xla: bool = True, seed: Optional[int] = None,
          distribute: bool = False, quiet: bool = False,
          model_type: str = 'capsule', all_reduce: str = 'auto',
          **settings) -> Setup:
  """Prepares TensorFlow for a command: returns its strategy and RunConfig.

  In the one order that works: GPU memory as needed (before TensorFlow
  first touches a GPU); the strategy (before anything else starts the
  runtime: a multi-worker strategy configures its collectives then, and
  num_gpus=0 hides the GPUs); the configuration of the GPUs then in use;
  float32 precision (TensorFlow's default TF32 on Ampere GPUs is about 1e-3
  relative off, past the reference's tolerances; the switch is
  process-wide); the seeds; the `Devices:` line (unless quiet).

  The arguments are experiment.py's flags of those names, and: distribute:
  to train, on `_make_strategy`'s strategy (False: the default one);
  model_type: for the `Devices:` line.
  **settings: `RunConfig` and `ModelConfig` fields; by default the devices'
  (their convolution; on GPUs the XLA step, summaries once per log interval
  and, for one GPU, the input copied to it ahead).
  """
  allow_gpu_memory_growth()
  strategy = tf.distribute.get_strategy()
  if distribute or num_gpus == 0:
    strategy = _make_strategy(num_gpus, all_reduce=all_reduce,
                              global_batch_size=settings.get(
                                  'train_batch_size',
                                  run_config_lib.TRAIN_BATCH_SIZE))
  config = resolve_run_config(compute_dtype=compute_dtype, num_gpus=num_gpus,
                              xla=xla, **settings)
  tf.config.experimental.enable_tensor_float_32_execution(config.tf32)
  if seed is not None:
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
  if not quiet:
    print(describe(config, num_replicas=num_gpus, model_type=model_type),
          flush=True)
  return Setup(strategy, config)


def driver_version() -> Optional[Tuple[int, ...]]:
  """The NVIDIA kernel driver's version, e.g. (550, 54, 15); None: none."""
  try:
    with open(os.path.join(NVIDIA_PROC, 'version')) as version:
      found = re.search(r'Kernel Module.*?\s(\d+)\.(\d+)\.?(\d*)\s',
                        version.readline())
  except OSError:
    return None
  return found and tuple(int(part) for part in found.groups() if part)


def dotted(version: Tuple[int, ...]) -> str:
  """As NVIDIA spells it: '555.42.06'."""
  return '.'.join(f'{part:02d}' for part in version)


def _machine_code() -> List[Tuple[int, int]]:
  """The compute capabilities this TensorFlow has machine code for (2.21:
  sm_60, sm_70, sm_80, sm_89; Hopper runs its compute_90 PTX)."""
  return [(int(major), int(minor)) for major, minor in re.findall(
      r'sm_(\d+)(\d)', ' '.join(tf.sysconfig.get_build_info().get(
          'cuda_compute_capabilities', [])))]


def driver_needed(gpus: List) -> Tuple[int, ...]:
  """The oldest driver for gpus: `PTX_DRIVER` if one of them runs PTX."""
  built = _machine_code()
  for gpu in gpus:
    major, minor = _capability(gpu)
    if not any(code[0] == major and code[1] <= minor for code in built):
      return PTX_DRIVER
  return OLDEST_DRIVER


def cuda_data_dir() -> str:
  """XLA's `--xla_gpu_cuda_data_dir` (libdevice, ptxas): pip's
  nvidia-cuda-nvcc (requirements-gpu.txt), else /usr/local/cuda."""
  try:
    return importlib.util.find_spec(
        'nvidia.cuda_nvcc').submodule_search_locations[0]
  except (ImportError, AttributeError, TypeError):
    return '/usr/local/cuda'


def driver_error(error: Exception) -> Optional[DriverError]:
  """What to upgrade, for CUDA's error of PTX newer than the driver (before
  `PTX_DRIVER`, on Hopper); None for any other error."""
  if 'UNSUPPORTEDPTXVERSION' not in str(error).upper().replace('_', ''):
    return None
  version = driver_version()
  return DriverError(
      f'NVIDIA driver{" " + dotted(version) if version else ""} cannot compile '
      f'the PTX of TensorFlow\'s GPU kernels (UNSUPPORTED_PTX_VERSION): '
      f'upgrade it to {dotted(PTX_DRIVER)} or newer, the driver of CUDA '
      f'{tf.sysconfig.get_build_info().get("cuda_version")}')


def _driver_note(gpus: List) -> str:
  """The NVIDIA driver, what to upgrade if too old for gpus, and the GPUs it
  lists that TensorFlow leaves out; '' without a driver."""
  version, needed = driver_version(), driver_needed(gpus)
  if version is None:
    return ''
  note = f'NVIDIA driver {dotted(version)}'
  if version < needed:
    note += (f' (too old: CUDA '
             f'{tf.sysconfig.get_build_info().get("cuda_version")} needs '
             f'{dotted(needed)} or newer' +
             (" for these GPUs' PTX" if needed == PTX_DRIVER else '') +
             ', upgrade it)')
  listed = collections.Counter()
  for path in glob.glob(os.path.join(NVIDIA_PROC, 'gpus', '*', 'information')):
    with open(path) as information:
      listed.update(line.split(':', 1)[1].strip() for line in information
                    if line.startswith('Model:'))
  found = tf.config.list_physical_devices('GPU')
  if sum(listed.values()) > len(found) and (
      'CUDA_VISIBLE_DEVICES' not in os.environ):
    listed.subtract(tf.config.experimental.get_device_details(gpu).get(
        'device_name') for gpu in found)
    major, minor = min(_machine_code())
    note += (f'; TensorFlow leaves out {", ".join(listed.elements())}: it '
             f'needs compute capability {major}.{minor} or newer')
  return note


def _no_gpu_reason() -> str:
  """Why a run sees no GPU, as far as this process can tell."""
  if tf.config.list_physical_devices('GPU'):
    return 'GPUs hidden (--num_gpus=0)'
  build = tf.sysconfig.get_build_info()
  if build.get('is_cuda_build'):
    return (f'no GPU visible: this TensorFlow is built for CUDA '
            f'{build.get("cuda_version", "")} but found no GPU ('
            f'{_driver_note([]) or "no NVIDIA driver"}, or its CUDA '
            f'libraries are not installed: pip install -r {GPU_REQUIREMENTS})'
            ).replace('CUDA  ', 'CUDA ')
  return 'no GPU visible (this TensorFlow is built without CUDA)'


def describe(config: run_config_lib.RunConfig, *, num_replicas: int = 1,
             model_type: str = 'capsule') -> str:
  """The `Devices: ...` line: what the run computes on, and how, e.g.
  `Devices: 2 GPUs (NVIDIA A100-SXM4-40GB), bfloat16, cuDNN convolution, XLA
  step`; num_replicas: the GPUs this machine runs on. The convolution and
  the routing are named for capsule models only (the CNNs' layers always use
  TensorFlow's convolution)."""
  gpus = _gpus_in_use(num_replicas)
  if gpus:
    names = [tf.config.experimental.get_device_details(gpu).get(
        'device_name', gpu.name) for gpu in gpus]
    driver = _driver_note(gpus)
    where = (f'{len(gpus)} GPU{"s" if len(gpus) > 1 else ""} '
             f'({", ".join(sorted(set(names), key=names.index))})' +
             (f', {driver}' if driver else ''))
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
  capsules = issubclass(registry.MODELS[model_type],
                        capsule_model.CapsuleModel)
  xla = ('XLA step' if config.xla_step else
         'XLA routing' if capsules and model.xla_routing else 'no XLA')
  return ', '.join([f'Devices: {where}', dtype] + [conv] * capsules + [xla])
