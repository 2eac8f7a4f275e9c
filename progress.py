"""How far a long loop (evaluation, writing records) has come.

On a terminal keras' Progbar draws a bar. Elsewhere (a log file, a pipe) a
line such as `Evaluating: 73/100 batches, 61 s` comes at most every
LINE_SECONDS, so that a run shorter than that prints nothing more.
"""

import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

import keras

# Seconds between two lines when stdout is not a terminal: twice the 10,000
# test examples' evaluation on a 2-core CPU, so that the README's quick start
# prints what it shows.
LINE_SECONDS = 60
# Seconds between two redraws of the bar: cheap for a loop over records.
_BAR_SECONDS = 0.1

Item = TypeVar('Item')


class Progress:
  """Counts the items of one or more loops against their total."""

  def __init__(self, what: str, *, total: int, unit: str,
               clock: Callable[[], float] = time.monotonic):
    self._what, self._total, self._unit, self._clock = what, total, unit, clock
    self._bar = (keras.utils.Progbar(total, interval=0, unit_name=unit)
                 if sys.stdout.isatty() else None)
    self._done = 0
    self._start = self._last = clock()

  def each(self, items: Iterable[Item]) -> Iterator[Item]:
    """Yields items, counting each as it goes (a consumer may stop short)."""
    for item in items:
      self._done += 1
      now = self._clock()
      due = now - self._last >= (_BAR_SECONDS if self._bar else LINE_SECONDS)
      if self._bar and (due or self._done == self._total):
        self._bar.update(self._done)
      elif due:
        print(f'{self._what}: {self._done:,}/{self._total:,} {self._unit}, '
              f'{now - self._start:.0f} s', flush=True)
      if due:
        self._last = now
      yield item
