"""Tests for progress: its lines off a terminal, its bar on one."""

import sys

import progress


def _clock(*times):
  """A clock that reads times, one per call."""
  return iter(times).__next__


def test_lines_at_most_every_line_seconds(capsys):
  # Read when made, then as each item goes.
  clock = _clock(0, 10, 61, 80, 121, 122)
  items = progress.Progress('Evaluating', total=5, unit='batches',
                            clock=clock).each('abcde')
  assert list(items) == list('abcde')
  assert capsys.readouterr().out.splitlines() == [
      'Evaluating: 2/5 batches, 61 s', 'Evaluating: 4/5 batches, 121 s']


def test_short_run_prints_nothing(capsys):
  clock = _clock(0, 1, 2, 59)
  assert list(progress.Progress('Writing', total=3, unit='records',
                                clock=clock).each(range(3))) == [0, 1, 2]
  assert capsys.readouterr().out == ''


def test_counts_over_several_loops(capsys, monkeypatch):
  monkeypatch.setattr(progress, 'LINE_SECONDS', 0)
  members = progress.Progress('Evaluating the ensemble', total=4,
                              unit='batches', clock=_clock(*range(5)))
  for _ in range(2):
    list(members.each('ab'))
  assert capsys.readouterr().out.splitlines() == [
      f'Evaluating the ensemble: {done}/4 batches, {done} s'
      for done in range(1, 5)]


def test_bar_on_a_terminal(capsys, monkeypatch):
  monkeypatch.setattr(sys.stdout, 'isatty', lambda: True)
  # Too soon for a redraw but the last, which completes the bar.
  clock = _clock(0, 0.01, 0.02, 0.03)
  list(progress.Progress('Evaluating', total=3, unit='batches',
                         clock=clock).each(range(3)))
  out = capsys.readouterr().out
  assert '3/3' in out and out.endswith('\n')
  assert '1/3' not in out and 'Evaluating:' not in out
