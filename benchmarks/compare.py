r"""The speed of this checkout against another commit, timed alternately.

A machine's speed drifts by tens of percent over minutes, and the same code
shows a different share of the peak on machines of another matmul peak, so a
speed-up is only measured against another commit on the same machine at the
same time. This script exports the other commit (`git archive`) to a
temporary folder and, round after round, times both trees alternately, each
in a fresh Python. It prints each round's figures and, at the end, the
median over rounds with the ratio.

Two things can be timed:
- the steps (default): the full MNIST CapsNet's training step (batch 128)
  and evaluation step (batch 100) on random data, float32 or bfloat16, in
  the tree's own code, timed by the tree's own `benchmarks.benchmark`;
- the command (`--command --data_dir=D`): training as users run it,
  `experiment.py` on the MNIST files in D for 300 steps, the examples per
  second its progress lines print for steps 101-300.

  python -m benchmarks.compare --against=ea7cf31
  python -m benchmarks.compare --against=22f4d69 --compute_dtype=bfloat16 \
      --rounds=5 --repeats=10
  python -m benchmarks.compare --against=d43a75f --command \
      --data_dir=/tmp/real_mnist --rounds=3
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
# The command's progress lines of these steps time steps 101-300.
COMMAND_STEPS = (200, 300)


def probe(compute_dtype: str, repeats: int) -> Dict[str, float]:
  """Median seconds of the MNIST CapsNet steps of the tree on sys.path."""
  from benchmarks import benchmark  # pylint: disable=g-import-not-at-top
  return {timing.step: timing.median for timing in benchmark.benchmark(
      benchmark.CONFIGS['mnist'], compute_dtype=compute_dtype,
      repeats=repeats)}


def _export(commit: str, directory: str) -> None:
  """The files of `commit` into directory."""
  archive = subprocess.run(['git', 'archive', commit], cwd=_ROOT,
                           check=True, capture_output=True).stdout
  subprocess.run(['tar', '-x', '-C', directory], input=archive, check=True)


def _probe_in(tree: str, compute_dtype: str, repeats: int) -> Dict[str, float]:
  """`probe` in a fresh Python that imports the tree's code."""
  env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL='2')
  output = subprocess.run(
      [sys.executable, os.path.abspath(__file__), '--probe',
       '--compute_dtype', compute_dtype, '--repeats', str(repeats)],
      cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
  return json.loads(output.strip().splitlines()[-1])


def _command_in(tree: str, data_dir: str) -> Dict[str, float]:
  """experiment.py's examples/s over steps 101-300, run from tree."""
  with tempfile.TemporaryDirectory() as summary_dir:
    output = subprocess.run(
        [sys.executable, 'experiment.py', f'--data_dir={data_dir}',
         f'--summary_dir={summary_dir}', f'--max_steps={COMMAND_STEPS[-1]}',
         '--save_step=100000', '--evaluate_after_training=false'],
        cwd=tree, env=dict(os.environ, PYTHONPATH=tree), check=True,
        capture_output=True, text=True).stdout
  rates = {int(step): float(rate) for step, rate in re.findall(
      r'^step (\d+): .*, ([\d.]+) examples/s', output, re.M)}
  return {'examples/s': statistics.mean(rates[step]
                                        for step in COMMAND_STEPS)}


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--against', default='ea7cf31',
                      help='the commit to compare with')
  parser.add_argument('--compute_dtype', default='float32',
                      choices=('float32', 'bfloat16'))
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=10,
                      help='timed steps per step kind and round')
  parser.add_argument('--command', action='store_true',
                      help='time experiment.py\'s training as users run it '
                      '(needs --data_dir)')
  parser.add_argument('--data_dir',
                      help='MNIST files for --command (the four idx files, '
                      'or the prepared records)')
  parser.add_argument('--probe', action='store_true', help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
  args = _parse_args(argv)
  if args.probe:
    # The tree to time first; not this script's folder, whose modules would
    # shadow any standard module of the same name.
    sys.path[:] = [os.getcwd()] + [path for path in sys.path if path != _HERE]
    print(json.dumps(probe(args.compute_dtype, args.repeats)))
    return
  if args.command and not args.data_dir:
    raise SystemExit('--command needs --data_dir=<folder of the MNIST files>')
  print('$ python -m benchmarks.compare ' + shlex.join(sys.argv[1:]))
  if args.command:
    measure = lambda tree: _command_in(tree, os.path.abspath(args.data_dir))
  else:
    measure = lambda tree: _probe_in(tree, args.compute_dtype, args.repeats)
  with tempfile.TemporaryDirectory() as other:
    _export(args.against, other)
    trees = {'this checkout': _ROOT, args.against: other}
    values = {name: {} for name in trees}
    for round_index in range(args.rounds):
      for name, tree in trees.items():
        for kind, value in measure(tree).items():
          values[name].setdefault(kind, []).append(value)
      print(f'round {round_index + 1}: ' + ', '.join(
          f'{name} {kind} {figures[-1]:.3f}'
          for name, measured in values.items()
          for kind, figures in measured.items()) +
            f' (load {os.getloadavg()[0]:.2f})', flush=True)
  print(f'median over {args.rounds} rounds' + (
      '' if args.command else
      f' of {args.repeats} steps, {args.compute_dtype}, seconds per step') +
        ':')
  for kind, figures in values['this checkout'].items():
    ours = statistics.median(figures)
    theirs = statistics.median(values[args.against][kind])
    # Seconds: lower is faster; examples/s: higher is.
    speed_up = ours / theirs if kind == 'examples/s' else theirs / ours
    print(f'{kind:10s} this checkout {ours:.3f}  {args.against} '
          f'{theirs:.3f}  speed-up {speed_up:.3f}x')


if __name__ == '__main__':
  main()
