"""Before and after of each speed change: the benchmark with one change undone.

Each variant puts back, for one change, the straightforward code the fast
version replaced (kept below, as the record of what was measured), and times
the full MNIST CapsNet training step (batch 128) and evaluation step (batch
100) with `benchmarks.benchmark`, each variant in a fresh Python process so
that nothing traced or cached by one leaks into the next. `all` undoes every
change at once: the straightforward TensorFlow 2 version the speed work
started from. The variants compute the same numbers as the fast code
(`ablation_test.py`), only slower. Changes that measured within the noise (a
constant uniform first route, class-capsule votes as a batched matmul, Adam
as one fused kernel) were taken out of the code; the README keeps their
figures.

  python -m benchmarks.ablation
  python -m benchmarks.ablation --variants none,im2col --rounds 5

The machine's speed drifts by tens of percent over minutes (other tenants,
the load of the runs themselves), so the variants are run round-robin, a few
rounds, and the median over rounds is printed with the range.

Variants (the change that is undone):
  none           nothing: the code as it is.
  im2col         the primary capsules' convolution as one matrix product of
                 gathered patches; undone: `tf.nn.conv2d` and its gradients.
  patch_chunks   im2col's patches made for a chunk of the batch at a time
                 (at most 64 MiB) and gathered again for the kernel gradient;
                 undone: the whole batch's patches at once, the forward
                 pass's kept for the kernel gradient.
  image_grad     im2col's image gradient as a matrix product whose patches
                 XLA adds back onto the image; undone (with patch_chunks):
                 `tf.nn.conv2d_transpose`, as before this change.
  xla_routing    routing compiled by XLA (`jit_compile=True`); undone: run op
                 by op.
  channels_last  primary capsules read conv1's channels-last output; undone:
                 transposed to the reference's channels-first capsules and
                 back inside `_depthwise_conv3d`.
  all            every change above undone together.
"""

import argparse
import contextlib
import json
import statistics
import sys
from typing import Iterator, List, Optional
from unittest import mock

import tensorflow as tf

from benchmarks import benchmark
from layers import kernels
from layers import layers

CHANGES = ('im2col', 'patch_chunks', 'image_grad', 'xla_routing',
           'channels_last')
VARIANTS = ('none',) + CHANGES + ('all',)
STEPS = ('train', 'eval')
DEFAULT_ROUNDS = 3


def _conv2d_op(images, kernel, *, stride, padding, implementation=None):
  """Before `im2col`: TensorFlow's (oneDNN's) convolution."""
  del implementation  # Always TensorFlow's.
  return tf.nn.conv2d(images, kernel, stride, padding)


def _im2col_whole_batch(images, kernel, *, stride, padding):
  """Before `patch_chunks`: one gather, its patches kept for the backward."""
  _, height, width, in_channels = images.shape
  kernel_size, _, _, out_channels = kernel.shape
  patch_size = kernel_size * kernel_size * in_channels
  indices = kernels._patch_indices(height, width, kernel_size=kernel_size,
                                   stride=stride, padding=padding)

  @tf.custom_gradient
  def conv(images, kernel):
    matrix = tf.reshape(kernel, [patch_size, out_channels])
    columns = tf.reshape(kernels.patches(
        images, kernel_size=kernel_size, stride=stride, padding=padding),
                         [-1, patch_size])
    output = tf.matmul(columns, matrix)

    def grad(d_output):
      d_output = tf.reshape(d_output, [-1, out_channels])
      d_kernel = tf.matmul(columns, d_output, transpose_a=True)
      with tf.control_dependencies([d_kernel]):
        d_columns = tf.matmul(d_output, matrix, transpose_b=True)
      d_images = kernels._sum_patches(
          tf.reshape(d_columns, [-1, indices.size, in_channels]),
          tf.constant(indices.reshape(-1)), height, width)
      return (tf.cast(d_images, images.dtype),
              tf.reshape(d_kernel, kernel.shape))

    return tf.reshape(output, [-1, *indices.shape[:2], out_channels]), grad

  return conv(images, kernel)


def _im2col_transposed_image_grad(images, kernel, *, stride, padding):
  """Before `image_grad`: im2col with TensorFlow's image gradient."""
  kernel_size, _, in_channels, out_channels = kernel.shape
  patch_size = kernel_size * kernel_size * in_channels

  @tf.custom_gradient
  def conv(images, kernel):
    columns = kernels.patches(images, kernel_size=kernel_size, stride=stride,
                              padding=padding)
    _, out_height, out_width, _ = columns.shape
    columns = tf.reshape(columns, [-1, patch_size])
    output = tf.matmul(columns, tf.reshape(kernel, [patch_size, out_channels]))

    def grad(d_output):
      d_images = tf.nn.conv2d_transpose(d_output, kernel, tf.shape(images),
                                        stride, padding)
      with tf.control_dependencies([d_images]):
        d_kernel = tf.matmul(columns, tf.reshape(d_output, [-1, out_channels]),
                             transpose_a=True)
      return d_images, tf.reshape(d_kernel, kernel.shape)

    return tf.reshape(output, [-1, out_height, out_width, out_channels]), grad

  return conv(images, kernel)


def _routing_op_by_op(votes, biases, num_routing, leaky):
  """Before `xla_routing`: `_fused_routing` without XLA."""
  return layers._update_routing(tf.cast(votes, tf.float32), biases,
                                num_routing, leaky)


def _votes_channels_first(self, input_tensor):
  """Before `channels_last`: `ConvSlimCapsule.votes` on channels-first input.

  conv1's channels-last output `[b, h, w, 1, 256]` goes to the reference's
  `[b, 1, 256, h, w]`, which `_depthwise_conv3d` transposes back.
  """
  if self.data_format == 'channels_last':
    input_tensor = tf.transpose(input_tensor, [0, 3, 4, 1, 2])
  return layers._depthwise_conv3d(
      self._cast(input_tensor), self._cast(self.kernel),
      input_dim=self.input_dim, output_dim=self.output_dim,
      input_atoms=self.input_atoms, output_atoms=self.output_atoms,
      stride=self.stride, padding=self.padding)


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
  patches = []
  if 'xla_routing' in changes:
    patches.append(mock.patch.object(layers, '_fused_routing',
                                     _routing_op_by_op))
  if 'im2col' in changes:
    patches.append(mock.patch.object(kernels, 'conv2d', _conv2d_op))
  elif 'image_grad' in changes:
    patches.append(mock.patch.object(kernels, '_im2col_conv2d',
                                     _im2col_transposed_image_grad))
  elif 'patch_chunks' in changes:
    patches.append(mock.patch.object(kernels, '_im2col_conv2d',
                                     _im2col_whole_batch))
  if 'channels_last' in changes:
    patches.append(mock.patch.object(layers.ConvSlimCapsule, 'votes',
                                     _votes_channels_first))
  with contextlib.ExitStack() as stack:
    for patch in patches:
      stack.enter_context(patch)
    yield


def _measure(variant: str, repeats: int, memory: bool) -> dict:
  """Seconds of the MNIST steps with `variant` undone, in this process.

  With memory, first the peak resident set of a training step (the process
  is fresh then), in bytes.
  """
  config = benchmark.CONFIGS['mnist']
  with undone(variant):
    result = ({'memory': benchmark.peak_memory(
        config, compute_dtype='float32')['rss']} if memory else {})
    timings = benchmark.benchmark(config, compute_dtype='float32',
                                  repeats=repeats)
  result.update({timing.step: {'median': timing.median,
                               'min': min(timing.seconds),
                               'load': timing.load} for timing in timings})
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
                      'variant (in its fresh process, before the timings)')
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
    print(json.dumps(_measure(args.child, args.repeats, args.memory)))
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
      results[variant].append(_measure_in_subprocess(
          variant, args.repeats, args.memory))
    print(f'round {round_index + 1} of {args.rounds} done, load '
          f'{benchmark._load():.2f}', flush=True)
  medians = {variant: {step: statistics.median(
      result[step]['median'] for result in runs) for step in STEPS}
             for variant, runs in results.items()}
  print(f'{"undone":14s}' + ''.join(
      f'{step:>9s} {"range":>13s} {"x none":>7s}' for step in STEPS) +
        ('  peak memory' if args.memory else ''))
  for variant, runs in results.items():
    line = f'{variant:14s}'
    for step in STEPS:
      seconds = [result[step]['median'] for result in runs]
      ratio = (f'{medians[variant][step] / medians["none"][step]:.2f}'
               if 'none' in medians else '')
      line += (f'{medians[variant][step]:9.3f} '
               f'[{min(seconds):5.3f}, {max(seconds):5.3f}] {ratio:>7s}')
    if args.memory:
      line += f'  {max(run["memory"] for run in runs) / 2**30:.2f} GiB'
    print(line)


if __name__ == '__main__':
  main()
