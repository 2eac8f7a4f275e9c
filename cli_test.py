"""Tests for cli.py: one line for the user's mistakes and for interruptions,
a traceback for everything else."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import cli
import errors


def _call(main, *args, **kwargs):
  with pytest.raises(SystemExit) as exited:
    cli.call_main(main, ['tool', *args], program='tool', **kwargs)
  return exited.value.code


def _fails_with(error):
  def main(argv):
    del argv
    raise error
  return main


def test_user_errors_are_one_line(capsys):
  code = _call(_fails_with(errors.MissingDataError('no /data/x.mat;\n  get '
                                                   'it with wget')))
  assert code == 'tool: error: no /data/x.mat; get it with wget'
  assert capsys.readouterr().err == ''  # sys.exit prints the code itself.


def test_other_errors_keep_their_traceback():
  # A researcher's shape bug is a ValueError, not a mistake of the user's.
  with pytest.raises(ValueError, match='Dimensions must be equal'):
    cli.call_main(_fails_with(ValueError('Dimensions must be equal')),
                  ['tool'], program='tool')


def test_traceback_variable_shows_the_users_mistakes_too(monkeypatch):
  monkeypatch.setenv(cli.TRACEBACK_VARIABLE, '1')
  with pytest.raises(errors.ConfigError, match='bad hparam'):
    cli.call_main(_fails_with(errors.ConfigError('bad hparam')), ['tool'],
                  program='tool')


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM],
                         ids=['SIGINT', 'SIGTERM'])
def test_signal_outside_training_is_one_line_and_its_exit_code(signum,
                                                                capsys):
  def main(argv):
    del argv
    os.kill(os.getpid(), signum)
    time.sleep(10)  # Interrupted long before.

  before = signal.getsignal(signum)
  assert _call(main) == 128 + signum
  assert capsys.readouterr().err == (
      f'tool: interrupted by {signal.Signals(signum).name}\n')
  assert signal.getsignal(signum) is before


def test_positional_arguments_only_where_the_tool_takes_them():
  seen = []
  assert _call(seen.append, 'mnist') == (
      'tool: error: unexpected arguments: mnist')
  cli.call_main(seen.append, ['tool', 'mnist'], program='tool',
                arguments=True)
  assert seen == [['tool', 'mnist']]


@pytest.mark.parametrize('interrupted', [True, False])
def test_a_process_says_nothing_after_it_ends(interrupted):
  """What TensorFlow's teardown writes after main or the interruption's line
  is dropped (a worker that outlives the chief logs its lost coordination
  service)."""
  script = textwrap.dedent(f'''
      import atexit, os, signal, sys, types
      # The tool has TensorFlow loaded; its import is not what is tested.
      sys.modules['tensorflow'] = types.SimpleNamespace(
          errors=types.SimpleNamespace(DataLossError=EOFError))
      import cli, errors

      def main(argv):
        atexit.register(os.write, 2, b'teardown noise\\n')
        if {interrupted}:
          raise errors.Interrupted('interrupted at step 3',
                                   signum=signal.SIGTERM)

      cli.run(main, program='tool', define_flags=lambda: None)
      ''')
  result = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, cwd=os.path.dirname(cli.__file__),
                          timeout=60)
  assert (result.returncode, result.stderr) == (
      (143, 'tool: interrupted at step 3\n') if interrupted else (0, ''))


def test_quiet_start_shows_why_cuda_found_no_gpu_where_a_driver_is(
    monkeypatch, capfd, tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from models import devices  # pylint: disable=g-import-not-at-top

  def list_devices(*unused):  # What TensorFlow 2.21 writes as it starts.
    os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on.\n'
             b'E0000 00:00:1 cuda_platform.cc:52] failed call to cuInit: '
             b'INTERNAL: CUDA error: Failed call to cuInit: '
             b'CUDA_ERROR_SYSTEM_DRIVER_MISMATCH\n')
    return []

  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '2')
  monkeypatch.setattr(tf.config, 'list_physical_devices', list_devices)
  monkeypatch.setattr(devices, 'NVIDIA_PROC', str(tmp_path))
  cli.quiet_tensorflow_start()
  assert capfd.readouterr().err == ''  # No driver: nothing to say.
  (tmp_path / 'version').write_text(
      'NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.82.01  Fri Oct\n')
  cli.quiet_tensorflow_start()
  assert capfd.readouterr().err == (
      'TensorFlow: failed call to cuInit: INTERNAL: CUDA error: Failed call '
      'to cuInit: CUDA_ERROR_SYSTEM_DRIVER_MISMATCH\n')


def test_a_driver_too_old_for_the_kernels_is_one_line(monkeypatch, tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from models import devices  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(devices, 'NVIDIA_PROC', str(tmp_path))
  (tmp_path / 'version').write_text(
      'NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar\n')
  code = _call(_fails_with(tf.errors.InternalError(
      None, None, "'cuLaunchKernel(function, ...)' failed with "
      "'CUDA_ERROR_UNSUPPORTED_PTX_VERSION'")))
  assert code.startswith("tool: error: NVIDIA driver 550.54.15 cannot compile "
                         "the PTX of TensorFlow's GPU kernels")
  # Any other TensorFlow error is a bug: its traceback.
  with pytest.raises(tf.errors.InternalError, match='cuBLAS failed'):
    cli.call_main(_fails_with(tf.errors.InternalError(None, None,
                                                      'cuBLAS failed')),
                  ['tool'], program='tool')
