r"""The speed of this checkout against another commit, timed alternately.

A machine's speed drifts by tens of percent over minutes, and the same code
shows a different share of the peak on machines of another matmul peak, so a
speed-up is only measured against another commit on the same machine at the
same time. This script exports the other commit (`git archive`) to a
temporary folder and, round after round, times the full MNIST CapsNet steps
(float32 or bfloat16, batch 128 for training and 100 for evaluation, random
data) in a fresh Python for each of the two trees, alternating. It prints
each round's medians and, at the end, the median over rounds with the ratio.

  python -m benchmarks.compare --against=ea7cf31
  python -m benchmarks.compare --against=22f4d69 --compute_dtype=bfloat16 \
      --rounds=5 --repeats=10

The timed code is the tree's own `experiment.models`, `model.train_step` and
`model.compute_loss`, traced once in a `tf.function` and warmed up, as
`benchmarks.benchmark` times them; only the API every commit of this project
shares is used (`default_hparams`, the model classes, `build`, the feature
dict of tensors and shape ints).
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
WARMUP_STEPS = 2
STEPS = (('train', 128), ('eval', 100))


def probe(compute_dtype: str, repeats: int) -> Dict[str, float]:
  """Median seconds of the MNIST CapsNet steps of the tree on sys.path."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import experiment  # pylint: disable=g-import-not-at-top

  model = experiment.models['capsule'](experiment.default_hparams(),
                                       compute_dtype)
  model.build(28, 1, 10, 1)
  medians = {}
  for step, batch in STEPS:
    images = tf.random.stateless_uniform([batch, 1, 28, 28], [0, 0])
    labels = tf.random.stateless_uniform([batch], [0, 1], maxval=10,
                                         dtype=tf.int32)
    features = dict(images=images, labels=tf.one_hot(labels, 10),
                    recons_image=images, recons_label=labels, height=28,
                    depth=1, num_classes=10, num_targets=1)
    function = tf.function(model.train_step if step == 'train'
                           else model.compute_loss)
    seconds = []
    for i in range(WARMUP_STEPS + repeats):
      start = time.perf_counter()
      for tensor in tf.nest.flatten(function(features)):
        tensor.numpy()
      if i >= WARMUP_STEPS:
        seconds.append(time.perf_counter() - start)
    medians[step] = statistics.median(seconds)
  return medians


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


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--against', default='ea7cf31',
                      help='the commit to compare with')
  parser.add_argument('--compute_dtype', default='float32',
                      choices=('float32', 'bfloat16'))
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=10,
                      help='timed steps per step kind and round')
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
  print('$ python -m benchmarks.compare ' + shlex.join(sys.argv[1:]))
  with tempfile.TemporaryDirectory() as other:
    _export(args.against, other)
    trees = {'this checkout': _ROOT, args.against: other}
    seconds = {name: {step: [] for step, _ in STEPS} for name in trees}
    for round_index in range(args.rounds):
      for name, tree in trees.items():
        for step, value in _probe_in(tree, args.compute_dtype,
                                     args.repeats).items():
          seconds[name][step].append(value)
      print(f'round {round_index + 1}: ' + ', '.join(
          f'{name} {step} {values[step][-1]:.3f} s'
          for name, values in seconds.items() for step, _ in STEPS) +
            f' (load {os.getloadavg()[0]:.2f})', flush=True)
  print(f'{args.compute_dtype}, median over {args.rounds} rounds of '
        f'{args.repeats} steps, seconds per step:')
  for step, _ in STEPS:
    ours = statistics.median(seconds['this checkout'][step])
    theirs = statistics.median(seconds[args.against][step])
    print(f'{step:5s} this checkout {ours:.3f}  {args.against} {theirs:.3f}  '
          f'speed-up {theirs / ours:.2f}x')


if __name__ == '__main__':
  main()
