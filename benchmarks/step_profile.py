r"""Where the time of a full MNIST CapsNet training step goes.

Runs `benchmarks.benchmark.train_step` (the step training runs, batch 128,
random data) under TensorFlow's profiler, one op at a time (inter-op
threads 1, so that each op's time is its own), and prints the ops' self time
per step in groups. XLA's compiled routing shows as no TensorFlow op, so it
is then timed alone at the step's shapes.

  python -m benchmarks.step_profile
  python -m benchmarks.step_profile --compute_dtype bfloat16

The op statistics come through TensorFlow's internal
`_pywrap_profiler_plugin` (benchmark_test.py runs `profile`, so a
TensorFlow that moves it fails there).
"""

import argparse
import collections
import glob
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional

import tensorflow as tf
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin  # pylint: disable=g-direct-tensorflow-import

from benchmarks import benchmark
from layers import layers
from models import devices

PROFILED_STEPS = 3
# (group, test on the op's type and name), the first that matches counts.
GROUPS = (
    ('primary capsules: frequency products',
     lambda kind, name: 'frequency_products' in name),
    ('primary capsules: DFTs (matmuls)',
     lambda kind, name: 'fourier_conv2d' in name and 'MatMul' in kind),
    ('primary capsules: transposes, casts, reshapes',
     lambda kind, name: 'fourier_conv2d' in name),
    ('class capsules: votes',
     lambda kind, name: 'capsule2' in name and 'MatMul' in kind),
    ('conv1', lambda kind, name: 'conv1' in name),
    ('decoder', lambda kind, name: 'recons' in name),
    ('Adam', lambda kind, name: '/adam/' in f'/{name}'),
)


def _op_times(logdir: str) -> Dict[str, float]:
  """Self time in seconds of each (type, name) op in the profile."""
  [path] = glob.glob(os.path.join(logdir, '**', '*.xplane.pb'),
                     recursive=True)
  data, _ = _pywrap_profiler_plugin.xspace_to_tools_data(
      [path], 'framework_op_stats', {})
  table = json.loads(data)[0]
  columns = {column['id']: i for i, column in enumerate(table['cols'])}
  times = {}
  for row in table['rows']:
    cells = [(cell or {}).get('v') for cell in row['c']]
    kind = cells[columns['type']]
    if kind != 'IDLE':
      times[(kind, cells[columns['operation']])] = (
          cells[columns['total_self_time']] * 1e-6)
  return times


def grouped(times: Dict, steps: int) -> Dict[str, float]:
  """Seconds per step of each group of `GROUPS`, the rest by op type."""
  seconds = collections.Counter()
  for (kind, name), total in times.items():
    group = next((group for group, matches in GROUPS
                  if matches(kind, name)), f'other: {kind}')
    seconds[group] += total / steps
  return dict(seconds)


def xla_parts(compute_dtype: str, *, batch: int = 128) -> Dict[str, float]:
  """Seconds per training step of the XLA-compiled parts, timed alone."""
  votes = tf.random.stateless_normal(  # Input capsules first, as Capsule's.
      [1152, batch, 10, 16], [0, 1], stddev=0.05,
      dtype=tf.as_dtype(compute_dtype))
  biases = tf.fill([10, 16], 0.1)
  weights = tf.random.stateless_normal([batch, 10, 16], [0, 2])

  @tf.function
  def routing_forward_and_backward():
    with tf.GradientTape() as tape:
      tape.watch(votes)
      loss = tf.reduce_sum(weights * layers._update_routing(
          votes, biases, 3, False, input_axis=0, xla=True))
    return tape.gradient(loss, votes)

  return {'class capsules: routing, forward and backward (XLA)':
              statistics.median(benchmark.time_calls(
                  routing_forward_and_backward, repeats=10))}


def profile(config: benchmark.Config, *, compute_dtype: str,
            batch: int) -> Dict[str, float]:
  """Seconds per training step: the wall time, and the groups of its ops."""
  step = benchmark.train_step(config, compute_dtype=compute_dtype,
                              train_batch_size=batch)
  benchmark.time_calls(step, repeats=1)
  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(PROFILED_STEPS):
      benchmark.run(step)
    wall = (time.perf_counter() - start) / PROFILED_STEPS
    tf.profiler.experimental.stop()
    seconds = grouped(_op_times(logdir), PROFILED_STEPS)
  return dict(seconds, wall=wall)


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--compute_dtype', default='float32',
                      choices=('float32', 'bfloat16'))
  return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
  args = _parse_args(argv)
  devices.allow_gpu_memory_growth()
  # One op at a time: each op's self time is then its own.
  tf.config.threading.set_inter_op_parallelism_threads(1)
  print('$ python -m benchmarks.step_profile ' + ' '.join(sys.argv[1:]))
  print(devices.describe(devices.resolve_run_config(
      compute_dtype=args.compute_dtype)))
  seconds = profile(benchmark.CONFIGS['mnist'],
                    compute_dtype=args.compute_dtype, batch=128)
  wall = seconds.pop('wall')
  print(f'full MNIST CapsNet training step, {args.compute_dtype}, batch 128: '
        f'{wall:.3f} s per step under the profiler (load '
        f'{os.getloadavg()[0]:.2f})')
  print('TensorFlow ops, self time per step:')
  for group, value in sorted(seconds.items(), key=lambda item: -item[1]):
    if value >= 0.0005:
      print(f'  {value * 1e3:7.1f} ms  {group}')
  print(f'  {(wall - sum(seconds.values())) * 1e3:7.1f} ms  not in TensorFlow '
        f'ops: XLA (below), waits')
  print('XLA-compiled parts, timed alone at the step\'s shapes:')
  for part, value in xla_parts(args.compute_dtype).items():
    print(f'  {value * 1e3:7.1f} ms  {part}')


if __name__ == '__main__':
  main()
