"""Before and after of each speed change: the benchmark with one change undone.

Each variant puts back, for one change, the straightforward code the fast
version replaced (kept below, as the record of what was measured), and times
the full MNIST CapsNet training step (batch 128) and evaluation step (batch
100) with `benchmarks.benchmark`, each variant in a fresh Python process so
that nothing traced or cached by one leaks into the next. `all` undoes every
change at once: the straightforward TensorFlow 2 version the speed work
started from. The variants compute the same numbers as the fast code
(`ablation_test.py`), only slower.

  python -m benchmarks.ablation
  python -m benchmarks.ablation --variants none,im2col --rounds 5

The machine's speed drifts by tens of percent over minutes (other tenants,
the load of the runs themselves), so the variants are run round-robin, a few
rounds, and the median over rounds is printed with the range.

Variants (the change that is undone):
  none           nothing: the code as it is.
  im2col         the primary capsules' convolution as one matrix product of
                 gathered patches; undone: `tf.nn.conv2d` and its gradients.
  xla_routing    routing compiled by XLA (`jit_compile=True`); undone: run op
                 by op.
  uniform_route  first routing iteration uses the constant uniform route;
                 undone: a softmax of all-zero logits, as the reference.
  batched_votes  class-capsule votes as one batched matmul; undone: einsum.
  channels_last  primary capsules read conv1's channels-last output; undone:
                 transposed to the reference's channels-first capsules and
                 back inside `_depthwise_conv3d`.
  fused_adam     `ResourceApplyAdam`, one kernel per variable; undone: Keras'
                 Adam, a dozen elementwise ops per variable.
  all            every change above undone together.
"""

import argparse
import contextlib
import json
import statistics
import sys
from typing import Iterator, List, Optional
from unittest import mock

import keras
import tensorflow as tf

from benchmarks import benchmark
from layers import layers
from models import model as model_lib

CHANGES = ('im2col', 'xla_routing', 'uniform_route', 'batched_votes',
           'channels_last', 'fused_adam')
VARIANTS = ('none',) + CHANGES + ('all',)
STEPS = ('train', 'eval')
DEFAULT_ROUNDS = 3


def _conv2d_op(images, kernel, stride, padding):
  """Before `im2col`: TensorFlow's (oneDNN's) convolution."""
  return tf.nn.conv2d(images, kernel, stride, padding)


def _routing_op_by_op(votes, biases, num_routing, leaky):
  """Before `xla_routing`: `_fused_routing` without XLA."""
  return layers._update_routing(tf.cast(votes, tf.float32), biases,
                                num_routing, leaky)


def _update_routing_zero_logits(votes, biases, num_routing, leaky):
  """Before `uniform_route`: every iteration takes the softmax of logits."""
  output_dim = votes.shape[2]
  logits = tf.zeros_like(votes[:, :, :, 0])                  # [b, in, out, ...]
  activation = None
  for i in range(num_routing):
    if leaky:
      route = layers._leaky_routing(logits, output_dim)
    else:
      route = tf.nn.softmax(logits, axis=2)
    preactivate = tf.reduce_sum(
        tf.expand_dims(route, 3) * votes, axis=1) + biases   # [b, out, atoms, ...]
    activation = layers._squash(preactivate)
    if i < num_routing - 1:
      logits += tf.reduce_sum(votes * tf.expand_dims(activation, 1), axis=3)
  return activation


def _capsule_call_einsum(self, input_tensor):
  """Before `batched_votes`: `layers.Capsule.call` with an einsum."""
  votes = tf.einsum('bia,iaj->bij', self._cast(input_tensor),
                    self._cast(self.kernel))          # [b, in, out * atoms]
  votes = tf.reshape(votes, [-1, self.input_dim, self.output_dim,
                             self.output_atoms])      # [b, in, out, atoms]
  return layers._fused_routing(votes, tf.convert_to_tensor(self.biases),
                               self.num_routing, self.leaky)


def _votes_channels_first(self, input_tensor):
  """Before `channels_last`: `ConvSlimCapsule._votes` on channels-first input.

  conv1's channels-last output `[b, h, w, 1, 256]` goes to the reference's
  `[b, 1, 256, h, w]`, which `_depthwise_conv3d` transposes back.
  """
  if self.data_format == 'channels_last':
    input_tensor = tf.transpose(input_tensor, [0, 3, 4, 1, 2])
  return layers._depthwise_conv3d(
      self._cast(input_tensor), self._cast(self.kernel), self.input_dim,
      self.output_dim, self.input_atoms, self.output_atoms, self.stride,
      self.padding)


@contextlib.contextmanager
def undone(variant: str) -> Iterator[None]:
  """Within the block, the code as it was before `variant`'s change(s).

  Patches module and class attributes; models must be built inside the block.

  Raises:
    ValueError: for a name not in `VARIANTS`.
  """
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r}: use one of '
                     f'{", ".join(VARIANTS)}')
  changes = CHANGES if variant == 'all' else (variant,)
  # A fresh routing function, with no traces cached, so that it is traced
  # in the block and sees the patched functions.
  routing = (_routing_op_by_op if 'xla_routing' in changes else tf.function(
      _routing_op_by_op, jit_compile=True, autograph=False))
  patches = [mock.patch.object(layers, '_fused_routing', routing)]
  if 'im2col' in changes:
    patches.append(mock.patch.object(layers, '_conv2d', _conv2d_op))
  if 'uniform_route' in changes:
    patches.append(mock.patch.object(layers, '_update_routing',
                                     _update_routing_zero_logits))
  if 'batched_votes' in changes:
    patches.append(mock.patch.object(layers.Capsule, 'call',
                                     _capsule_call_einsum))
  if 'channels_last' in changes:
    patches.append(mock.patch.object(layers.ConvSlimCapsule, '_votes',
                                     _votes_channels_first))
  if 'fused_adam' in changes:
    patches.append(mock.patch.object(model_lib, 'FusedAdam',
                                     keras.optimizers.Adam))
  with contextlib.ExitStack() as stack:
    for patch in patches:
      stack.enter_context(patch)
    yield


def _measure(variant: str, repeats: int) -> dict:
  """Seconds of the MNIST steps with `variant` undone, in this process."""
  with undone(variant):
    timings = benchmark.benchmark(benchmark.CONFIGS['mnist'], 'float32',
                                  repeats)
  return {timing.step: {'median': timing.median, 'min': min(timing.seconds),
                        'load': timing.load} for timing in timings}


def _measure_in_subprocess(variant: str, repeats: int) -> dict:
  return benchmark.run_json_subprocess('benchmarks.ablation', '--child',
                                       variant, '--repeats', str(repeats))


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--variants', default=','.join(VARIANTS),
                      help='comma separated subset of ' + ', '.join(VARIANTS))
  parser.add_argument('--repeats', type=int, default=benchmark.DEFAULT_REPEATS,
                      help='timed steps per measurement (after the warm-up)')
  parser.add_argument('--rounds', type=int, default=DEFAULT_ROUNDS,
                      help='runs of every variant, one after the other')
  parser.add_argument('--child', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  unknown = sorted(set(args.variants.split(',')) - set(VARIANTS))
  if unknown:
    parser.error(f'unknown variants {", ".join(unknown)}: use '
                 f'{", ".join(VARIANTS)}')
  return args


def main(argv: Optional[List[str]] = None) -> None:
  args = _parse_args(argv)
  if args.child:
    print(json.dumps(_measure(args.child, args.repeats)))
    return
  variants = args.variants.split(',')
  print('$ python -m benchmarks.ablation ' + ' '.join(sys.argv[1:]))
  print(f'TensorFlow {tf.__version__}, {benchmark._device_type()}, full MNIST '
        f'CapsNet float32: median seconds per step over {args.rounds} rounds '
        f'(range in brackets) of {args.repeats} timed steps each')
  # Round-robin, so that a slow spell of the machine hits every variant.
  results = {variant: [] for variant in variants}
  for round_index in range(args.rounds):
    for variant in variants:
      results[variant].append(_measure_in_subprocess(variant, args.repeats))
    print(f'round {round_index + 1} of {args.rounds} done, load '
          f'{benchmark._load():.2f}', flush=True)
  medians = {variant: {step: statistics.median(
      result[step]['median'] for result in runs) for step in STEPS}
             for variant, runs in results.items()}
  print(f'{"undone":14s}' + ''.join(
      f'{step:>9s} {"range":>13s} {"x none":>7s}' for step in STEPS))
  for variant, runs in results.items():
    line = f'{variant:14s}'
    for step in STEPS:
      seconds = [result[step]['median'] for result in runs]
      ratio = (f'{medians[variant][step] / medians["none"][step]:.2f}'
               if 'none' in medians else '')
      line += (f'{medians[variant][step]:9.3f} '
               f'[{min(seconds):5.3f}, {max(seconds):5.3f}] {ratio:>7s}')
    print(line)


if __name__ == '__main__':
  main()
