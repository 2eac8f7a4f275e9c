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


def test_a_process_says_nothing_after_its_interruption_line():
  """What TensorFlow's teardown writes after the line is dropped (a worker
  that outlives the chief logs its lost coordination service)."""
  script = textwrap.dedent('''
      import atexit, os, signal, sys, types
      # The tool has TensorFlow loaded; its import is not what is tested.
      sys.modules['tensorflow'] = types.SimpleNamespace(
          errors=types.SimpleNamespace(DataLossError=EOFError))
      import cli, errors

      def main(argv):
        atexit.register(os.write, 2, b'teardown noise\\n')
        raise errors.Interrupted('interrupted at step 3',
                                 signum=signal.SIGTERM)

      cli.run(main, program='tool', define_flags=lambda: None)
      ''')
  result = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, cwd=os.path.dirname(cli.__file__),
                          timeout=60)
  assert (result.returncode, result.stderr) == (
      143, 'tool: interrupted at step 3\n')
