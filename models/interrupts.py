"""Ctrl-C and SIGTERM during training: stop at the next step, save, exit.

A Python signal handler runs only when the main thread is back in Python,
and a training call runs up to `log_every_steps` steps in TensorFlow's C++
(a minute on a CPU). So the handler does no work itself: the signal's
number reaches a watcher thread through `signal.set_wakeup_fd`, which
CPython writes from the C-level handler the moment the signal arrives, and
the watcher sets a variable that the compiled training loop reads before
every step (`training.Trainer`). The loop then ends after the step under
way, and training saves a checkpoint of that step. A second signal while
that happens ends the process at once: the checkpoint being written only
appears under its name once complete (`checkpoints.write`), so nothing
damaged is left in the next run's way.

Batch schedulers and preemptible cloud machines send SIGTERM some time
before they stop a job; Ctrl-C sends SIGINT.
"""

import contextlib
import os
import signal
import threading
import types
from typing import Iterator, Sequence

import tensorflow as tf

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(variable: tf.Variable,
                    signals: Sequence[int] = SIGNALS
                   ) -> Iterator[types.SimpleNamespace]:
  """Within the block, the first of `signals` sets the boolean `variable`.

  A second one ends the process at once with exit code 128 + its number.
  The previous handlers come back after the block. Outside the main thread
  (where Python allows no signal handlers) nothing is installed and the
  request never comes. Yields the request: its `signum` is the first
  signal's number, or None.
  """
  request = types.SimpleNamespace(signum=None)
  if threading.current_thread() is not threading.main_thread():
    yield request
    return
  read_end, write_end = os.pipe()
  os.set_blocking(write_end, False)

  def watch():
    while True:
      received = os.read(read_end, 1)
      if not received:  # The block ended: the write end is closed.
        return
      signum = received[0]
      if signum not in signals:  # Another handler's signal.
        continue
      if request.signum is not None:  # The second: stop now.
        os.write(2, b'interrupted again: stopped at once; a checkpoint being '
                 b'written is left unfinished under a temporary name, not '
                 b'used\n')
        os._exit(128 + signum)  # pylint: disable=protected-access
      request.signum = signum
      variable.assign(True)

  watcher = threading.Thread(target=watch, name='stop_on_signals',
                             daemon=True)
  watcher.start()
  # The Python-level handlers do nothing; installing them is what makes
  # CPython's own C-level handler, which writes to the wakeup fd, run.
  previous = {signum: signal.signal(signum, lambda *_: None)
              for signum in signals}
  previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
  try:
    yield request
  finally:
    signal.set_wakeup_fd(previous_fd)
    for signum, handler in previous.items():
      signal.signal(signum, handler)
    os.close(write_end)
    watcher.join()
    os.close(read_end)
