"""Tests for the one-line XlaError of `Trainer.run`: XLA's compile failures
only, each naming the way around; any other error keeps its traceback."""

import types
from unittest import mock

import pytest
import tensorflow as tf

from models import devices
from models import training


def _run_failing_with(error):
  """Trainer.run of a trainer whose compiled steps raise error."""

  def fails(*unused):
    raise error

  return training.Trainer.run(types.SimpleNamespace(_run=fails), None, 1)


@pytest.mark.parametrize('error', [
    tf.errors.InternalError(None, None, 'libdevice not found at '
                            './libdevice.10.bc\nmore'),
    tf.errors.NotFoundError(None, None, "Couldn't find a suitable version of "
                            'ptxas. The following locations were considered'),
    tf.errors.InternalError(None, None, 'ptxas exited with non-zero error '
                            'code 65280, output: ptxas fatal'),
], ids=['libdevice', 'no ptxas', 'ptxas fails'])
def test_compile_failures_are_one_line_naming_pips_cuda_folder(error):
  folder = '/venv/lib/python3.11/site-packages/nvidia/cuda_nvcc'
  with mock.patch('importlib.util.find_spec', return_value=mock.Mock(
      submodule_search_locations=[folder])):
    with pytest.raises(training.XlaError) as raised:
      _run_failing_with(error)
  message = str(raised.value)
  assert message.startswith(
      f'XLA could not compile the training step ({str(error).splitlines()[0]}'
      '); rerun with --xla=false')
  assert message.endswith(f'XLA_FLAGS=--xla_gpu_cuda_data_dir={folder}')


def test_without_pips_cuda_the_folder_is_usr_local_cuda():
  with mock.patch('importlib.util.find_spec',
                  side_effect=ModuleNotFoundError("No module named 'nvidia'")):
    assert devices.cuda_data_dir() == '/usr/local/cuda'


def test_other_xla_errors_keep_their_traceback():
  """An XLA bug, or a GPU's runtime error, is not the machine's setup."""
  error = tf.errors.InternalError(None, None, 'XLA: during execution: '
                                  'CUDA_ERROR_ILLEGAL_ADDRESS')
  with pytest.raises(tf.errors.InternalError) as raised:
    _run_failing_with(error)
  assert raised.value is error and raised.traceback
