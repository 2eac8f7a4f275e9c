"""Command-line plumbing shared by experiment.py and the stand-alone tools.

Every tool's `__main__` block calls `quiet_tensorflow_start()` before anything
imports TensorFlow, then `run(main, program=..., define_flags=...)`. A user of
the command line then sees neither TensorFlow's start-up notices nor a
traceback for a mistake of theirs: every such error (a flag absl refuses, an
`errors.UserError` from the code, a record file TensorFlow finds truncated,
an NVIDIA driver too old for TensorFlow's kernels) is one line
`<program>: error: <what to do>` on stderr with exit code 1. Anything else
is a bug, in this code or in a researcher's new layer, and keeps its
traceback; `CAPSULES_TRACEBACK=1` shows the traceback of the
user's mistakes too. Ctrl-C (SIGINT) and SIGTERM end a command with one
line `<program>: interrupted ...` and the shell's exit code for the signal,
130 or 143; training saves the step it reached first (`models.interrupts`).
This module imports no TensorFlow at import time.
"""

import os
import signal
import sys
import tempfile
from typing import Callable, List, Sequence

from absl import app
from absl import flags
from absl import logging

import errors

# Set to 1: the user's mistakes keep their traceback too.
TRACEBACK_VARIABLE = 'CAPSULES_TRACEBACK'


def quiet_tensorflow_start() -> None:
  """Imports TensorFlow and finds its devices with stderr diverted.

  TensorFlow 2.21 prints its start-up notices (CUDA stubs, oneDNN, CPU
  features) whatever TF_CPP_MIN_LOG_LEVEL says, so the file descriptor itself
  goes to a temporary file while TensorFlow loads; TF_CPP_MIN_LOG_LEVEL=2
  silences the rest. TF_CPP_MIN_LOG_LEVEL=0 shows everything. Where an
  NVIDIA driver is installed, CUDA's reason for finding no GPU (the cuInit
  failure) is shown: the `Devices:` line names the driver.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  if os.environ['TF_CPP_MIN_LOG_LEVEL'] == '0':
    return
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=g-import-not-at-top
      tensorflow.config.list_physical_devices()
    finally:
      os.dup2(saved, 2)
      os.close(saved)
    captured.seek(0)
    kept = [line.split('] ', 1)[-1] for line in
            captured.read().decode(errors='replace').splitlines()
            if 'failed call to cuInit' in line]
  if kept:
    from models import devices  # pylint: disable=g-import-not-at-top
    if devices.driver_version():
      print('\n'.join(f'TensorFlow: {line}' for line in kept),
            file=sys.stderr, flush=True)


def _one_line(program: str, error: object) -> str:
  return f'{program}: error: ' + ' '.join(str(error).split())


def parse_flags(argv: Sequence[str], *, program: str) -> List[str]:
  """absl's flag parsing into `flags.FLAGS`, its errors in one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    sys.exit(_one_line(program, f'{error}; see --helpshort'))


def _raise_interrupted(signum: int, unused_frame) -> None:
  raise errors.Interrupted(
      f'interrupted by {signal.Signals(signum).name}', signum=signum)


def call_main(main: Callable[[List[str]], None], argv: List[str], *,
              program: str, arguments: bool = False,
              process_ends: bool = False) -> None:
  """Runs main(argv) on parsed flags, as the module docstring says.

  Libraries' warnings (tfds' among them) are hidden unless --verbosity is
  given. arguments: the tool takes positional arguments. process_ends: the
  process ends when main does (`run`); once main has ended, or an
  interruption's line is printed, what TensorFlow's teardown writes to
  stderr is dropped (a worker that leaves after the chief would otherwise
  log the lost connection to the chief's service).
  """
  if len(argv) > 1 and not arguments:
    sys.exit(_one_line(program, f'unexpected arguments: {" ".join(argv[1:])}'))
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.ERROR)
  previous = {signum: signal.signal(signum, _raise_interrupted)
              for signum in (signal.SIGINT, signal.SIGTERM)}
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # The user's mistakes: also the DataLossError of a truncated record file.
  caught = (() if os.environ.get(TRACEBACK_VARIABLE) == '1' else
            (errors.UserError, tf.errors.DataLossError))
  try:
    try:
      main(argv)
    except caught as error:
      sys.exit(_one_line(program, error))
    except Exception as error:  # pylint: disable=broad-except
      if not caught or not type(error).__module__.startswith('tensorflow'):
        raise
      from models import devices  # pylint: disable=g-import-not-at-top
      driver_error = devices.driver_error(error)
      if driver_error is None:
        raise
      sys.exit(_one_line(program, driver_error))
  except errors.Interrupted as interruption:
    print(f'{program}: {interruption}', file=sys.stderr, flush=True)
    _end_quietly(process_ends)
    sys.exit(interruption.exit_code)
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
  _end_quietly(process_ends)


def _end_quietly(process_ends: bool) -> None:
  if process_ends:  # Stderr to /dev/null for the rest of the process.
    with open(os.devnull, 'w') as devnull:
      os.dup2(devnull.fileno(), 2)


def run(main: Callable[[List[str]], None], *, program: str,
        define_flags: Callable[[], None], arguments: bool = False) -> None:
  """Defines the tool's flags and runs main as `absl.app.run` does; with
  arguments, main gets the positional arguments in argv[1:]."""
  define_flags()
  app.run(lambda argv: call_main(main, argv, program=program,
                                 arguments=arguments, process_ends=True),
          flags_parser=lambda argv: parse_flags(argv, program=program))
