"""Command-line plumbing shared by experiment.py and the stand-alone tools.

Every tool's `__main__` block calls `quiet_tensorflow_start()` before anything
imports TensorFlow, then `run(main, program=..., define_flags=...)`. A user of
the command line then sees neither TensorFlow's start-up notices nor a
traceback for a mistake of theirs: every such error (a flag absl refuses, an
`errors.UserError` from the code, a record file TensorFlow finds truncated)
is one line `<program>: error: <what to do>` on stderr with exit code 1.
Anything else is a bug, in this code or in a researcher's new layer, and
keeps its traceback; `CAPSULES_TRACEBACK=1` shows the traceback of the
user's mistakes too.

This module imports no TensorFlow at import time.
"""

import os
import sys
from typing import Callable, List, Sequence

from absl import app
from absl import flags
from absl import logging

import errors

# Set to 1: the user's mistakes keep their traceback too.
TRACEBACK_VARIABLE = 'CAPSULES_TRACEBACK'


def quiet_tensorflow_start() -> None:
  """Imports TensorFlow and finds its devices with stderr closed.

  TensorFlow 2.21 prints its start-up notices (CUDA stubs, oneDNN, CPU
  features) whatever TF_CPP_MIN_LOG_LEVEL says, so the file descriptor itself
  is closed while TensorFlow loads; TF_CPP_MIN_LOG_LEVEL=2 silences the
  rest. TF_CPP_MIN_LOG_LEVEL=0 shows everything.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  if os.environ['TF_CPP_MIN_LOG_LEVEL'] == '0':
    return
  saved = os.dup(2)
  with open(os.devnull, 'w') as devnull:
    os.dup2(devnull.fileno(), 2)
  try:
    import tensorflow  # pylint: disable=g-import-not-at-top
    tensorflow.config.list_physical_devices()
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def user_errors() -> tuple:
  """The exceptions that are the user's mistakes, reported in one line.

  The project's own `errors.UserError`, and TensorFlow's `DataLossError`,
  which its record readers raise, mid-run, for a truncated or corrupt file.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return (errors.UserError, tf.errors.DataLossError)


def _one_line(program: str, error: object) -> str:
  return f'{program}: error: ' + ' '.join(str(error).split())


def parse_flags(argv: Sequence[str], *, program: str) -> List[str]:
  """absl's flag parsing into `flags.FLAGS`, its errors in one line.

  Raises:
    SystemExit: a flag absl refuses, with the one-line message.
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    sys.exit(_one_line(program, f'{error}; see --helpshort'))


def call_main(main: Callable[[List[str]], None], argv: List[str], *,
              program: str) -> None:
  """Runs main on parsed flags, the user's mistakes as one line.

  Libraries' warnings (tfds' among them) are hidden unless --verbosity is
  given.

  Raises:
    SystemExit: one of `user_errors()`, with the one-line message (unless
      CAPSULES_TRACEBACK=1).
  """
  if len(argv) > 1:
    sys.exit(_one_line(program, f'unexpected arguments: {" ".join(argv[1:])}'))
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.ERROR)
  if os.environ.get(TRACEBACK_VARIABLE) == '1':
    main(argv)
    return
  try:
    main(argv)
  except user_errors() as error:
    sys.exit(_one_line(program, error))


def run(main: Callable[[List[str]], None], *, program: str,
        define_flags: Callable[[], None]) -> None:
  """Defines the tool's flags and runs main as `absl.app.run` does."""
  define_flags()
  app.run(lambda argv: call_main(main, argv, program=program),
          flags_parser=lambda argv: parse_flags(argv, program=program))
