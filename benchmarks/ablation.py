"""The options the library has for speed, timed against each other.

Today one: the primary capsules' convolution, `conv_implementation` of
`CapsuleModel` (`layers.CONV_IMPLEMENTATIONS`):
  native   TensorFlow's convolution (oneDNN on CPUs), the layers' default.
  fourier  the Fourier convolution, DFTs and frequency products as matrix
           products (`layers/fourier.py`, docs/fourier.md).

Times the full MNIST CapsNet training step (batch 128) and evaluation step
(batch 100) with `benchmarks.benchmark`, the run configured with each
variant, each variant in a fresh Python process so that nothing traced or
cached by one leaks into the next. The variants compute the same numbers
(`ablation_test.py`), at different speeds. Speed changes whose old code is
gone (im2col, batch-first votes, routing without XLA, channels-first
capsules) are no variants: docs/speed.md keeps what they measured, the git
history their code.

  python -m benchmarks.ablation
  python -m benchmarks.ablation --variants native,fourier --rounds 5 --memory

The machine's speed drifts by tens of percent over minutes (other tenants,
the load of the runs themselves), so the variants are run round-robin, a few
rounds, and the median over rounds is printed with the range.
"""

import argparse
import json
import statistics
import sys
from typing import List, Optional

import tensorflow as tf

from benchmarks import benchmark
from layers import layers
from models import devices

VARIANTS = layers.CONV_IMPLEMENTATIONS
BASELINE = 'native'  # The variant the others are compared with.
STEPS = ('train', 'eval')
DEFAULT_ROUNDS = 3


def _measure(variant: str, repeats: int, memory: bool) -> dict:
  """Seconds of the MNIST steps of `variant`, in this process.

  With memory, also the peak resident set of the process (fresh, as this
  is a child's) after both steps, in bytes: the training step's peak.
  """
  timings = benchmark.benchmark(
      benchmark.CONFIGS['mnist'], compute_dtype='float32', repeats=repeats,
      conv_implementation=variant)
  result = {timing.step: {'median': timing.median,
                          'min': min(timing.seconds), 'load': timing.load}
            for timing in timings}
  if memory:
    result['memory'] = benchmark.peak_rss()
  return result


def _measure_in_subprocess(variant: str, repeats: int, memory: bool) -> dict:
  return benchmark.run_json_subprocess(
      'benchmarks.ablation', '--child', variant, '--repeats', str(repeats),
      *(['--memory'] if memory else []))


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--variants', default=','.join(VARIANTS),
                      help='comma separated subset of ' + ', '.join(VARIANTS))
  parser.add_argument('--repeats', type=int, default=benchmark.DEFAULT_REPEATS,
                      help='timed steps per measurement (after the warm-up)')
  parser.add_argument('--rounds', type=int, default=DEFAULT_ROUNDS,
                      help='runs of every variant, one after the other')
  parser.add_argument('--memory', action='store_true',
                      help='also the peak memory of a training step of each '
                      'variant (in its fresh process)')
  parser.add_argument('--child', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  unknown = sorted(set(args.variants.split(',')) - set(VARIANTS))
  if unknown:
    parser.error(f'unknown variants {", ".join(unknown)}: use '
                 f'{", ".join(VARIANTS)}')
  return args


def main(argv: Optional[List[str]] = None) -> None:
  args = _parse_args(argv)
  devices.allow_gpu_memory_growth()
  if args.child:
    print(json.dumps(_measure(args.child, args.repeats, args.memory)))
    return
  variants = args.variants.split(',')
  print('$ python -m benchmarks.ablation ' + ' '.join(sys.argv[1:]))
  print(devices.describe(benchmark.run_config('float32')))
  print(f'TensorFlow {tf.__version__}, full MNIST CapsNet float32: median '
        f'seconds per step over {args.rounds} rounds '
        f'(range in brackets) of {args.repeats} timed steps each')
  # Round-robin, so that a slow spell of the machine hits every variant.
  results = {variant: [] for variant in variants}
  for round_index in range(args.rounds):
    for variant in variants:
      results[variant].append(_measure_in_subprocess(
          variant, args.repeats, args.memory))
    print(f'round {round_index + 1} of {args.rounds} done, load '
          f'{benchmark.load():.2f}', flush=True)
  medians = {variant: {step: statistics.median(
      result[step]['median'] for result in runs) for step in STEPS}
             for variant, runs in results.items()}
  print(f'{"conv":10s}' + ''.join(
      f'{step:>9s} {"range":>13s} {"x " + BASELINE:>9s}' for step in STEPS) +
        ('  peak memory' if args.memory else ''))
  for variant, runs in results.items():
    line = f'{variant:10s}'
    for step in STEPS:
      seconds = [result[step]['median'] for result in runs]
      ratio = (f'{medians[variant][step] / medians[BASELINE][step]:.2f}'
               if BASELINE in medians else '')
      line += (f'{medians[variant][step]:9.3f} '
               f'[{min(seconds):5.3f}, {max(seconds):5.3f}] {ratio:>9s}')
    if args.memory:
      line += f'  {max(run["memory"] for run in runs) / 2**30:.2f} GiB'
    print(line)


if __name__ == '__main__':
  main()
