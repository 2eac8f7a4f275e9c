"""Tests for the device choices, each branch forced on this CPU."""

import contextlib
import pathlib
import re
from unittest import mock

import keras
import pytest
import tensorflow as tf

from benchmarks import device_check
from models import devices

_GPUS = [tf.config.PhysicalDevice(f'/physical_device:GPU:{i}', 'GPU')
         for i in range(2)]
# TensorFlow 2.21's wheel.
_BUILD = {'is_cuda_build': True, 'cuda_version': '12.5.1',
          'cuda_compute_capabilities': ['sm_60', 'sm_70', 'sm_80', 'sm_89',
                                        'compute_90']}


@pytest.fixture(autouse=True)
def nvidia_proc(tmp_path, monkeypatch):
  """A stand-in for /proc/driver/nvidia, without a driver until `install`."""
  monkeypatch.setattr(devices, 'NVIDIA_PROC', str(tmp_path / 'nvidia'),
                      raising=False)
  monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)

  def install(version, models=(), *, open_module=False):
    root = tmp_path / 'nvidia'
    root.mkdir()
    module = ('Open Kernel Module for x86_64' if open_module else
              'Kernel Module')
    (root / 'version').write_text(
        f'NVRM version: NVIDIA UNIX x86_64 {module}  {version}  Release '
        f'Build  (dvs-builder@U16)  Wed Feb 28 2024\nGCC version:  gcc 12\n')
    for i, model in enumerate(models):
      gpu = root / 'gpus' / f'0000:0{i}:00.0'
      gpu.mkdir(parents=True)
      (gpu / 'information').write_text(f'Model: \t\t {model}\nIRQ: \t\t 35\n')

  return install


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
    (_GPUS, [(7, 5), (6, 1)], 'float32'),    # Pascal: slow float16.
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
def test_devices_line_of_a_cnn_names_no_capsule_choices(gpus, capsys):
  del gpus  # None.
  config = devices.resolve_run_config()
  assert devices.describe(config).endswith(
      ', float32, Fourier convolution, XLA routing')
  assert devices.describe(config, model_type='baseline_paper').endswith(
      ', float32, no XLA')
  devices.setup(model_type='baseline')
  assert capsys.readouterr().out.endswith(', float32, no XLA\n')
  with _with_gpus(_GPUS), _details([('NVIDIA A100-SXM4-40GB', (8, 0))]):
    assert devices.describe(devices.resolve_run_config(),
                            model_type='baseline').endswith(
                                '(NVIDIA A100-SXM4-40GB), float32, XLA step')


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
    strategy = devices._make_strategy(0, global_batch_size=128)
  assert hidden == [([], 'GPU')]
  assert strategy is tf.distribute.get_strategy()
  with pytest.raises(ValueError, match='num_gpus=-1: use 0 for the CPU'):
    devices._make_strategy(-1, global_batch_size=128)
  with _with_gpus(_GPUS), mock.patch.object(tf.config, 'get_visible_devices',
                                            lambda kind=None: []):
    assert 'GPUs hidden (--num_gpus=0)' in devices.describe(
        devices.resolve_run_config(num_gpus=0), num_replicas=0)


def _all_reduce(all_reduce, strategy_name):
  """The arguments setup(all_reduce=...) builds strategy_name with, on two
  stand-in GPUs."""
  with _with_gpus(_GPUS), \
       mock.patch.object(tf.config.experimental, 'set_memory_growth'), \
       mock.patch.object(tf.config, 'set_visible_devices'), \
       mock.patch.object(tf.distribute, strategy_name,
                         autospec=True) as strategy:
    devices.setup(num_gpus=2, distribute=True, all_reduce=all_reduce,
                  quiet=True)
  return strategy.call_args


@pytest.mark.parametrize('all_reduce, cross_device_ops', [
    ('auto', type(None)), ('nccl', tf.distribute.NcclAllReduce),
    ('hierarchical_copy', tf.distribute.HierarchicalCopyAllReduce)])
def test_all_reduce_on_one_machine(all_reduce, cross_device_ops,
                                   monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  called = _all_reduce(all_reduce, 'MirroredStrategy')
  assert called.args == (['/gpu:0', '/gpu:1'],)
  assert type(called.kwargs['cross_device_ops']) is cross_device_ops
  with pytest.raises(ValueError, match='all_reduce=ring: use one of auto, '
                     'nccl, hierarchical_copy without TF_CONFIG'):
    _all_reduce('ring', 'MirroredStrategy')


@pytest.mark.parametrize('all_reduce', ['auto', 'nccl', 'ring'])
def test_all_reduce_over_several_machines(all_reduce, monkeypatch):
  monkeypatch.setenv('TF_CONFIG', '{}')
  called = _all_reduce(all_reduce, 'MultiWorkerMirroredStrategy')
  assert called.kwargs['communication_options'].implementation == getattr(
      tf.distribute.experimental.CommunicationImplementation,
      all_reduce.upper())
  with pytest.raises(ValueError, match='use one of auto, nccl, ring with'):
    _all_reduce('hierarchical_copy', 'MultiWorkerMirroredStrategy')


@pytest.mark.parametrize('open_module', [False, True])
def test_driver_version_of_either_kernel_module(nvidia_proc, open_module):
  assert devices.driver_version() is None
  nvidia_proc('550.54.15', open_module=open_module)
  assert devices.driver_version() == (550, 54, 15)


@pytest.mark.parametrize('gpu, version, expected', [
    (('NVIDIA A100-SXM4-40GB', (8, 0)), '535.104.05',
     'NVIDIA driver 535.104.05, '),
    (('NVIDIA H100 80GB HBM3', (9, 0)), '550.54.15',
     "NVIDIA driver 550.54.15 (too old: CUDA 12.5.1 needs 555.42.06 or newer "
     "for these GPUs' PTX, upgrade it), "),
    (('NVIDIA H100 80GB HBM3', (9, 0)), '555.42.06',
     'NVIDIA driver 555.42.06, '),
])
def test_devices_line_names_the_driver_against_what_the_gpus_need(
    nvidia_proc, gpu, version, expected):
  nvidia_proc(version, [gpu[0]])
  with _with_gpus(_GPUS[:1]), _details([gpu]), mock.patch.object(
      tf.sysconfig, 'get_build_info', return_value=_BUILD):
    line = devices.describe(devices.resolve_run_config())
    row = device_check.driver_check()
  assert line.startswith(f'Devices: 1 GPU ({gpu[0]}), {expected}float32')
  assert (row.value, row.limit, row.passed) == (
      version, f'>= {"555.42.06" if "H100" in gpu[0] else "525.60.13"} '
      '(CUDA 12.5.1)', 'too old' not in expected)


def test_devices_line_names_a_driver_too_old_for_any_gpu(nvidia_proc):
  nvidia_proc('470.82.01', ['Tesla T4'])
  with _with_gpus([]), mock.patch.object(tf.sysconfig, 'get_build_info',
                                         return_value=_BUILD):
    line = devices.describe(devices.resolve_run_config())
    row = device_check.driver_check()
  assert ('found no GPU (NVIDIA driver 470.82.01 (too old: CUDA 12.5.1 needs '
          '525.60.13 or newer, upgrade it); TensorFlow leaves out Tesla T4: '
          'it needs compute capability 6.0 or newer, or its CUDA libraries '
          'are not installed') in line
  assert (row.value, row.passed) == ('470.82.01', False)


def test_devices_line_names_the_gpus_tensorflow_leaves_out(nvidia_proc):
  nvidia_proc('560.35.03', ['NVIDIA A100-SXM4-40GB', 'Tesla K80',
                            'NVIDIA A100-SXM4-40GB'])
  with _with_gpus(_GPUS), _details([('NVIDIA A100-SXM4-40GB', (8, 0))] * 2), \
       mock.patch.object(tf.sysconfig, 'get_build_info', return_value=_BUILD):
    line = devices.describe(devices.resolve_run_config(num_gpus=2),
                            num_replicas=2)
  assert line.startswith(
      'Devices: 2 GPUs (NVIDIA A100-SXM4-40GB), NVIDIA driver 560.35.03; '
      'TensorFlow leaves out Tesla K80: it needs compute capability 6.0 or '
      'newer, float32')


def test_a_ptx_error_names_the_driver_to_upgrade_to(nvidia_proc):
  nvidia_proc('535.104.05')
  error = tf.errors.InternalError(
      None, None, "'cuModuleLoadData(&module, data)' failed with "
      "'CUDA_ERROR_UNSUPPORTED_PTX_VERSION'")
  with mock.patch.object(tf.sysconfig, 'get_build_info', return_value=_BUILD):
    assert str(devices.driver_error(error)) == (
        "NVIDIA driver 535.104.05 cannot compile the PTX of TensorFlow's GPU "
        'kernels (UNSUPPORTED_PTX_VERSION): upgrade it to 555.42.06 or newer, '
        'the driver of CUDA 12.5.1')
  assert devices.driver_error(tf.errors.InternalError(
      None, None, 'Failed to allocate memory')) is None


def test_every_command_lets_gpu_memory_grow():
  """Every tool (each module run as a script) starts as `setup` does, so a
  converter or a benchmark shares a GPU with a training run."""
  root = pathlib.Path(devices.__file__).parents[1]
  scripts = {str(path.relative_to(root)): path.read_text()
             for path in root.rglob('*.py')
             if not path.name.endswith('_test.py') and
             "if __name__ == '__main__':" in path.read_text()}
  assert {'experiment.py', 'benchmarks/compare.py',
          'input_data/norb/norb_convert.py'} <= set(scripts)
  # compare.py's timed processes may run another commit's code.
  assert [path for path, text in scripts.items() if not re.search(
      r'devices\.(setup|allow_gpu_memory_growth)\(|'
      r"TF_FORCE_GPU_ALLOW_GROWTH='true'", text)] == []
