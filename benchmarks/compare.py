r"""Speed timed alternately: against another commit, or variant against variant.

Round after round, each contender runs in a fresh Python, one after the
other (docs/speed.md says why): this checkout and `--against=REV` (`git
archive`), or this checkout's `--variants` of the primary capsules'
convolution. Timed: the MNIST CapsNet's steps by each tree's own
`benchmarks.benchmark`, or with `--command`, `experiment.py` as users train
it.

  python -m benchmarks.compare --against=ea7cf31
  python -m benchmarks.compare --against=22f4d69 --compute_dtype=bfloat16 \
      --rounds=5 --repeats=10
  python -m benchmarks.compare --against=d43a75f --command \
      --data_dir=/tmp/real_mnist --rounds=3
  python -m benchmarks.compare --variants=native,fourier --rounds=5 --memory
"""

import argparse
import functools
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, Mapping, Optional, Sequence

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
BASELINE = 'native'  # The variant the others are compared with.
# The command's progress lines of these steps time steps 101-300.
COMMAND_STEPS = (200, 300)

Results = Dict[str, Dict[str, List[float]]]


def subset(text: str, allowed: Sequence[str]) -> List[str]:
  """The comma separated values of text, each of allowed."""
  values = [value for value in text.split(',') if value]
  unknown = sorted(set(values) - set(allowed))
  if unknown:
    raise argparse.ArgumentTypeError(
        f'unknown {", ".join(unknown)}; use {", ".join(allowed)}')
  return values


def add_subset(parser: argparse.ArgumentParser, flag: str,
               allowed: Sequence[str], what: str = '') -> None:
  """A flag of a comma separated subset of allowed (default: all), a list."""
  parser.add_argument(flag, default=','.join(allowed),
                      type=lambda text: subset(text, allowed),
                      help=f'comma separated, of {", ".join(allowed)}' +
                      (f': {what}' if what else ''))


def json_line(command: List[str], **kwargs) -> Dict:
  """Runs command (kwargs for `subprocess.run`); its last line as JSON."""
  output = subprocess.run(command, check=True, capture_output=True,
                          text=True, **kwargs).stdout
  return json.loads(output.strip().splitlines()[-1])


def probe(compute_dtype: str, repeats: int, variant: Optional[str],
          memory: bool) -> Dict[str, float]:
  """Median seconds of the MNIST CapsNet steps of the tree on sys.path."""
  from benchmarks import benchmark  # pylint: disable=g-import-not-at-top
  settings = dict(conv_implementation=variant) if variant else {}
  result = {timing.step: timing.median for timing in benchmark.benchmark(
      benchmark.CONFIGS['mnist'], compute_dtype=compute_dtype,
      repeats=repeats, **settings)}
  if memory:  # Of this fresh process: the training step's peak.
    result['GiB'] = benchmark.peak_rss() / 2**30
  return result


def _probe_in(tree: str, args: argparse.Namespace,
              variant: Optional[str] = None) -> Dict[str, float]:
  """`probe` in a fresh Python that imports the tree's code."""
  return json_line(
      [sys.executable, os.path.abspath(__file__), '--probe',
       f'--compute_dtype={args.compute_dtype}', f'--repeats={args.repeats}']
      + ([f'--variants={variant}'] if variant else [])
      + (['--memory'] if args.memory else []),
      # GPU memory as needed, as in every command, for any commit's tree.
      cwd=tree, env=dict(os.environ, PYTHONPATH=tree,
                         TF_CPP_MIN_LOG_LEVEL='2',
                         TF_FORCE_GPU_ALLOW_GROWTH='true'))


def _command_in(tree: str, args: argparse.Namespace) -> Dict[str, float]:
  """experiment.py's examples/s over steps 101-300, run from tree."""
  data_dir = os.path.abspath(args.data_dir)
  with tempfile.TemporaryDirectory() as summary_dir:
    output = subprocess.run(
        [sys.executable, 'experiment.py', f'--data_dir={data_dir}',
         f'--summary_dir={summary_dir}', f'--max_steps={COMMAND_STEPS[-1]}',
         '--save_step=100000', '--evaluate_after_training=false'],
        cwd=tree, env=dict(os.environ, PYTHONPATH=tree), check=True,
        capture_output=True, text=True).stdout
  # Another commit's printed lines: its `train` may return no timings.
  rates = {int(step): float(rate) for step, rate in re.findall(
      r'^step (\d+): .*, ([\d.]+) examples/s', output, re.M)}
  return {'examples/s': statistics.mean(rates[step]
                                        for step in COMMAND_STEPS)}


def alternate(measures: Mapping[str, Callable[[], Dict[str, float]]], *,
              rounds: int) -> Results:
  """Each round, every measure once in turn; {contender: {kind: values}}."""
  results = {name: {} for name in measures}
  for round_index in range(rounds):
    for name, measure in measures.items():
      for kind, value in measure().items():
        results[name].setdefault(kind, []).append(value)
    print(f'round {round_index + 1}: ' + ', '.join(
        f'{name} {kind} {values[-1]:.3f}' for name, measured in results.items()
        for kind, values in measured.items()) +
          f' (load {os.getloadavg()[0]:.2f})', flush=True)
  return results


def table(results: Results, *, reference: str) -> List[str]:
  """Per contender and kind: the median, [range], and / the reference's."""
  width = max(map(len, results))
  kinds = list(results[reference])
  lines = [' ' * width + ''.join(
      f' {kind:>10s} {"range":>17s} {"/ " + reference:>10s}'
      for kind in kinds)]
  for name, measured in results.items():
    line = f'{name:{width}s}'
    for kind in kinds:
      values, median = measured[kind], statistics.median(measured[kind])
      ratio = median / statistics.median(results[reference][kind])
      line += (f' {median:10.3f} [{min(values):7.3f}, {max(values):7.3f}] '
               f'{ratio:10.3f}')
    lines.append(line)
  return lines


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--against', default='ea7cf31',
                      help='the commit to compare with')
  parser.add_argument('--variants',
                      help='instead: comma separated convolutions of this '
                      'checkout, e.g. native,fourier')
  parser.add_argument('--compute_dtype', default='float32',
                      choices=('float32', 'bfloat16'))
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=10,
                      help='timed steps per step kind and round')
  parser.add_argument('--memory', action='store_true',
                      help='also the peak memory of each process')
  parser.add_argument('--command', action='store_true',
                      help='time experiment.py\'s training as users run it '
                      '(needs --data_dir; not with --variants)')
  parser.add_argument('--data_dir',
                      help='MNIST files for --command (the four idx files, '
                      'or the prepared records)')
  parser.add_argument('--probe', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.command and (args.variants or not args.data_dir):
    parser.error('--command needs --data_dir=<folder of the MNIST files> '
                 'and no --variants')
  if args.variants and not args.probe:
    from layers import layers  # pylint: disable=g-import-not-at-top
    try:
      subset(args.variants, layers.CONV_IMPLEMENTATIONS)
    except argparse.ArgumentTypeError as error:
      parser.error(f'--variants: {error}')
  return args


def main(argv: Optional[List[str]] = None) -> None:
  args = _parse_args(argv)
  if args.probe:
    # The tree to time first; not this script's folder, whose modules would
    # shadow any standard module of the same name.
    sys.path[:] = [os.getcwd()] + [path for path in sys.path if path != _HERE]
    print(json.dumps(probe(args.compute_dtype, args.repeats, args.variants,
                           args.memory)))
    return
  print('$ python -m benchmarks.compare ' + shlex.join(sys.argv[1:]))
  print(f'{args.repeats} timed steps, {args.compute_dtype}, seconds per step'
        if not args.command else 'experiment.py, examples/s')
  with tempfile.TemporaryDirectory() as other:
    if args.variants:
      variants = args.variants.split(',')
      reference = BASELINE if BASELINE in variants else variants[0]
      measures = {variant: functools.partial(_probe_in, _ROOT, args, variant)
                  for variant in variants}
    else:
      archive = subprocess.run(['git', 'archive', args.against], cwd=_ROOT,
                               check=True, capture_output=True).stdout
      subprocess.run(['tar', '-x', '-C', other], input=archive, check=True)
      reference = args.against
      measure = _command_in if args.command else _probe_in
      measures = {name: functools.partial(measure, tree, args) for name, tree
                  in (('this checkout', _ROOT), (args.against, other))}
    results = alternate(measures, rounds=args.rounds)
  print(f'median over {args.rounds} rounds, [range], and its ratio to '
        f'{reference}\'s:')
  print('\n'.join(table(results, reference=reference)))


if __name__ == '__main__':
  main()
