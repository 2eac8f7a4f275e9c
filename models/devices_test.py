"""Tests for the device choices, each branch forced on this CPU."""

import contextlib
from unittest import mock

import keras
import pytest
import tensorflow as tf

from models import devices

_GPUS = [tf.config.PhysicalDevice(f'/physical_device:GPU:{i}', 'GPU')
         for i in range(2)]


@contextlib.contextmanager
def _with_gpus(gpus):
  """Within the block TensorFlow sees these stand-in GPUs (and no others)."""
  listed = lambda kind=None: list(gpus) if kind == 'GPU' else []
  with mock.patch.object(tf.config, 'list_physical_devices', listed), \
       mock.patch.object(tf.config, 'list_logical_devices', listed), \
       mock.patch.object(tf.config, 'get_visible_devices', listed):
    yield


@pytest.fixture
def gpus(request):
  with _with_gpus(request.param):
    yield request.param


@pytest.mark.parametrize('gpus, expected', [(_GPUS, 'native'), ([], 'fourier')],
                         indirect=['gpus'])
def test_conv_implementation(gpus, expected):
  del gpus  # Patched in.
  assert devices.conv_implementation() == expected


@pytest.mark.parametrize('gpus, capabilities, expected', [
    (_GPUS, [(8, 0), (9, 0)], 'bfloat16'),   # Ampere and Hopper.
    (_GPUS, [(8, 6), (7, 0)], 'float16'),    # One Volta: the slowest decides.
], indirect=['gpus'])
def test_mixed_precision_on_gpus(gpus, capabilities, expected):
  details = dict(zip((gpu.name for gpu in gpus), capabilities))
  with mock.patch.object(
      tf.config.experimental, 'get_device_details',
      lambda gpu: {'compute_capability': details[gpu.name]}):
    assert devices.mixed_precision_dtype() == expected


@pytest.mark.parametrize('gpus', [[]], indirect=True)
@pytest.mark.parametrize('flags, expected', [
    ('fpu sse avx2 avx512f avx512_bf16 avx_vnni', 'bfloat16'),
    ('fpu sse avx2 amx_bf16 amx_tile', 'bfloat16'),
    ('fpu sse avx2 avx512f', 'float32'),
])
def test_mixed_precision_on_cpus(gpus, flags, expected, tmp_path):
  del gpus  # None.
  cpuinfo = tmp_path / 'cpuinfo'
  cpuinfo.write_text(f'processor\t: 0\nflags\t\t: {flags}\n')
  assert devices.mixed_precision_dtype(str(cpuinfo)) == expected
  assert devices.mixed_precision_dtype(str(tmp_path / 'none')) == 'float32'


def test_compute_dtype_names():
  assert devices.resolve_run_config(
      compute_dtype='float16').model.compute_dtype == 'float16'
  with mock.patch.object(devices, 'mixed_precision_dtype',
                         return_value='bfloat16'):
    assert devices.resolve_run_config(
        compute_dtype='mixed').model.compute_dtype == 'bfloat16'


def test_gpu_memory_grows_on_demand():
  """No GPU here: the configuration call is checked on stand-in devices."""
  calls = []
  with _with_gpus(_GPUS), mock.patch.object(
      tf.config.experimental, 'set_memory_growth',
      lambda device, enable: calls.append((device.name, enable))):
    assert devices.allow_gpu_memory_growth() == [gpu.name for gpu in _GPUS]
  assert calls == [(gpu.name, True) for gpu in _GPUS]


def _details(names_and_capabilities):
  """A stand-in for get_device_details of the stand-in GPUs."""
  details = {gpu.name: dict(device_name=name, compute_capability=capability)
             for gpu, (name, capability) in zip(_GPUS, names_and_capabilities)}
  return mock.patch.object(tf.config.experimental, 'get_device_details',
                           lambda gpu: details[gpu.name])


def test_mixed_precision_looks_at_the_gpus_in_use_only():
  with _with_gpus(_GPUS), _details([('A100', (8, 0)), ('V100', (7, 0))]):
    assert devices.mixed_precision_dtype(num_gpus=1) == 'bfloat16'
    assert devices.mixed_precision_dtype(num_gpus=2) == 'float16'
    assert devices.resolve_run_config(
        compute_dtype='mixed', num_gpus=1).model.compute_dtype == 'bfloat16'


@pytest.mark.parametrize('gpus', [[]], indirect=True)
def test_cpu_run_configuration(gpus):
  del gpus  # None.
  config = devices.resolve_run_config()
  assert (config.model.conv_implementation, config.model.xla_routing,
          config.xla_step, config.summary_every_steps,
          config.prefetch_to_device) == ('fourier', True, False, 1, None)
  assert not devices.resolve_run_config(xla=False).model.xla_routing


def test_gpu_run_configuration():
  with _with_gpus(_GPUS[:1]):
    config = devices.resolve_run_config(num_gpus=1)
  # Each replica's whole step compiled, summaries once per log interval,
  # the input copied to the GPU ahead.
  assert (config.model.conv_implementation, config.xla_step,
          config.summary_every_steps, config.prefetch_to_device) == (
              'native', True, config.log_every_steps, '/gpu:0')
  with _with_gpus(_GPUS):
    config = devices.resolve_run_config(num_gpus=2, xla=False)
  assert (config.model.xla_routing, config.xla_step,
          config.prefetch_to_device) == (
      False, False, None)


def test_setup_float32_means_float32_and_seeds(capsys):
  """TensorFlow allows TF32 by default; a float32 run turns it off."""
  try:
    tf.config.experimental.enable_tensor_float_32_execution(True)
    with mock.patch.object(keras.utils, 'set_random_seed') as seeding, \
         mock.patch.object(tf.config.experimental,
                           'enable_op_determinism') as determinism:
      strategy, config = devices.setup(seed=5, save_step=7)
      seeding.assert_called_once_with(5)
      determinism.assert_called_once_with()
      _, tf32 = devices.setup(compute_dtype='tf32', quiet=True)
      assert seeding.call_count == determinism.call_count == 1
    assert strategy is tf.distribute.get_strategy()
    assert (config.save_step, config.model.compute_dtype) == (7, 'float32')
    assert capsys.readouterr().out.startswith('Devices: CPU')
    assert (tf32.model.compute_dtype, tf32.tf32) == ('float32', True)
    assert tf.config.experimental.tensor_float_32_execution_enabled()
    devices.setup(quiet=True)
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    assert not capsys.readouterr().out
  finally:
    tf.config.experimental.enable_tensor_float_32_execution(False)


def test_devices_line_names_the_gpus_dtype_and_convolution():
  with _with_gpus(_GPUS), _details([('NVIDIA A100-SXM4-40GB', (8, 0))] * 2):
    config = devices.resolve_run_config(compute_dtype='bfloat16', num_gpus=2)
    assert devices.describe(config, num_replicas=2) == (
        'Devices: 2 GPUs (NVIDIA A100-SXM4-40GB), bfloat16 mixed precision, '
        'cuDNN convolution, XLA step')


@pytest.mark.parametrize('gpus', [[]], indirect=True)
def test_devices_line_says_why_a_cuda_build_sees_no_gpu(gpus):
  del gpus  # None.
  config = devices.resolve_run_config()
  with mock.patch.object(tf.sysconfig, 'get_build_info',
                         return_value={'is_cuda_build': True,
                                       'cuda_version': '12.5.1'}):
    line = devices.describe(config)
  assert line.startswith('Devices: CPU (')
  assert ('no GPU visible: this TensorFlow is built for CUDA 12.5.1 but '
          'found no GPU (no NVIDIA driver, or its CUDA libraries are not '
          'installed: pip install -r requirements-gpu.txt), float32, Fourier '
          'convolution, XLA routing') in line
  with mock.patch.object(tf.sysconfig, 'get_build_info',
                         return_value={'is_cuda_build': False}):
    assert 'built without CUDA' in devices.describe(config)


def test_num_gpus_zero_hides_the_gpus():
  hidden = []
  with _with_gpus(_GPUS), mock.patch.object(
      tf.config, 'set_visible_devices',
      lambda found, kind: hidden.append((found, kind))):
    strategy = devices.make_strategy(0, global_batch_size=128)
  assert hidden == [([], 'GPU')]
  assert strategy is tf.distribute.get_strategy()
  with pytest.raises(ValueError, match='num_gpus=-1: use 0 for the CPU'):
    devices.make_strategy(-1, global_batch_size=128)
  with _with_gpus(_GPUS), mock.patch.object(tf.config, 'get_visible_devices',
                                            lambda kind=None: []):
    assert 'GPUs hidden (--num_gpus=0)' in devices.describe(
        devices.resolve_run_config(num_gpus=0), num_replicas=0)
