"""Tests for the device choices, each branch forced on this CPU."""

import contextlib
from unittest import mock

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
       mock.patch.object(tf.config, 'list_logical_devices', listed):
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
  assert devices.resolve_compute_dtype('float16') == 'float16'
  with mock.patch.object(devices, 'mixed_precision_dtype',
                         return_value='bfloat16'):
    assert devices.resolve_compute_dtype('mixed') == 'bfloat16'


def test_gpu_memory_grows_on_demand():
  """No GPU here: the configuration call is checked on stand-in devices."""
  calls = []
  with _with_gpus(_GPUS), mock.patch.object(
      tf.config.experimental, 'set_memory_growth',
      lambda device, enable: calls.append((device.name, enable))):
    assert devices.allow_gpu_memory_growth() == [gpu.name for gpu in _GPUS]
  assert calls == [(gpu.name, True) for gpu in _GPUS]


def test_replicas_must_split_the_batch():
  devices.check_replicas(4, 128)
  with pytest.raises(ValueError, match='3 replicas cannot split the global '
                     'batch of 128'):
    devices.check_replicas(3, 128)
