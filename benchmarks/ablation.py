"""Before and after of each speed change: the benchmark with one change undone.

Each variant puts back, for one change, the code the fast version replaced
(kept below, as the record of what was measured), and times the full MNIST
CapsNet training step (batch 128) and evaluation step (batch 100) with
`benchmarks.benchmark`, each variant in a fresh Python process so that
nothing traced or cached by one leaks into the next. `all` undoes every
change at once: the straightforward TensorFlow 2 version the speed work
started from. The variants compute the same numbers as the fast code
(`ablation_test.py`), only slower. Changes that measured within the noise (a
constant uniform first route, Adam as one fused kernel) were taken out of the
code, and so were the variants of the im2col convolution that the Fourier
convolution replaced (its patch chunks and image gradient); docs/speed.md
keeps their figures.

  python -m benchmarks.ablation
  python -m benchmarks.ablation --variants none,fourier --rounds 5

The machine's speed drifts by tens of percent over minutes (other tenants,
the load of the runs themselves), so the variants are run round-robin, a few
rounds, and the median over rounds is printed with the range.

Variants (the change that is undone):
  none           nothing: the code as it is.
  fourier        the primary capsules' convolution by DFT matrix products;
                 undone: im2col, matrix products of gathered image patches in
                 batch chunks of at most 64 MiB, the patch gradients added
                 back onto the image by XLA (the code of commit e5a7b4c).
  im2col         both convolution changes; undone: `tf.nn.conv2d` and its
                 gradients (oneDNN).
  input_major_votes  class-capsule votes made input capsules first and routed
                 in that layout; undone: one einsum into the batch-first
                 layout, which transposes the votes.
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

import numpy as np
import tensorflow as tf

from benchmarks import benchmark
from layers import kernels
from layers import layers

CHANGES = ('fourier', 'im2col', 'input_major_votes', 'xla_routing',
           'channels_last')
VARIANTS = ('none',) + CHANGES + ('all',)
STEPS = ('train', 'eval')
DEFAULT_ROUNDS = 3
# Before `fourier`: the most bytes of image patches made at once.
MAX_PATCH_BYTES = 64 * 2**20


def _conv2d_op(images, kernel, *, stride, padding, implementation=None):
  """Before `im2col`: TensorFlow's (oneDNN's) convolution."""
  del implementation  # Always TensorFlow's.
  return tf.nn.conv2d(images, kernel, stride, padding)


def _patch_indices(height, width, *, kernel_size, stride, padding):
  """Before `fourier`: where every kernel tap reads, for every output.

  `[out_height, out_width, k, k]` int32 indices into the image's positions
  flattened row-major, plus `height * width` for the zero padding of SAME.
  """
  out_height, top, _ = kernels._geometry(
      height, kernel_size=kernel_size, stride=stride, padding=padding)
  out_width, left, _ = kernels._geometry(
      width, kernel_size=kernel_size, stride=stride, padding=padding)
  taps = np.arange(kernel_size)
  rows = (stride * np.arange(out_height)[:, None, None, None] +
          taps[None, None, :, None] - top)
  columns = (stride * np.arange(out_width)[None, :, None, None] +
             taps[None, None, None, :] - left)
  inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
  return np.where(inside, rows * width + columns,
                  height * width).astype(np.int32)


def _patches(images, indices):
  """Before `fourier`: `[b, oh, ow, k, k, c]` image patches (im2col)."""
  _, height, width, channels = images.shape
  positions = tf.reshape(images, [-1, height * width, channels])
  positions = tf.pad(positions, [[0, 0], [0, 1], [0, 0]])  # + a zero position
  return tf.gather(positions, indices, axis=1)


@tf.function(jit_compile=True, autograph=False)
def _sum_patches(d_patches, indices, height, width):
  """Before `fourier`: patch gradients added back onto the image (col2im).

  `[b, oh * ow * k * k, c]` and the flat `_patch_indices` -> float32
  `[b, height, width, c]`.
  """
  batch, num_taps, channels = d_patches.shape
  positions = height * width + 1  # The last one is the zero padding.
  segments = tf.reshape(tf.range(batch)[:, None] * positions + indices[None],
                        [batch * num_taps])
  summed = tf.math.unsorted_segment_sum(
      tf.reshape(tf.cast(d_patches, tf.float32), [batch * num_taps, channels]),
      segments, batch * positions)
  summed = tf.reshape(summed, [batch, positions, channels])[:, :-1]
  return tf.reshape(summed, [batch, height, width, channels])


def _batch_chunks(batch, example_bytes):
  """Before `fourier`: the fewest near-equal chunks under MAX_PATCH_BYTES."""
  if batch is None:
    return [-1]
  num_chunks = min(batch, max(1, -(-batch * example_bytes // MAX_PATCH_BYTES)))
  return [batch // num_chunks + (i < batch % num_chunks)
          for i in range(num_chunks)]


def _im2col_conv2d(images, kernel, *, stride, padding):
  """Before `fourier`: `tf.nn.conv2d` as matrix products of image patches.

  The forward pass and both gradients are matrix products over the patches,
  made for a chunk of the batch at a time and made again for the kernel
  gradient; the image gradient adds the patch gradients back (XLA).
  """
  batch, height, width, in_channels = images.shape
  kernel_size, _, _, out_channels = kernel.shape
  patch_size = kernel_size * kernel_size * in_channels
  indices = _patch_indices(height, width, kernel_size=kernel_size,
                           stride=stride, padding=padding)
  out_height, out_width = indices.shape[:2]
  chunks = _batch_chunks(
      batch, out_height * out_width * patch_size * images.dtype.size)

  def columns_of(images):                              # [b * oh * ow, p]
    return tf.reshape(_patches(images, indices), [-1, patch_size])

  @tf.custom_gradient
  def conv(images, kernel):
    matrix = tf.reshape(kernel, [patch_size, out_channels])
    output = tf.concat([tf.matmul(columns_of(part), matrix)
                        for part in tf.split(images, chunks)], axis=0)

    def grad(d_output):                                # [b, oh, ow, out]
      d_kernel = tf.zeros_like(matrix)
      d_images = []
      for part, d_part in zip(tf.split(images, chunks),
                              tf.split(d_output, chunks)):
        d_part = tf.reshape(d_part, [-1, out_channels])
        # Gathered again once d_part exists, so that the forward pass's
        # patches do not stay alive.
        with tf.control_dependencies([d_part] + d_images):
          d_kernel += tf.matmul(columns_of(part), d_part, transpose_a=True)
        with tf.control_dependencies([d_kernel]):
          d_columns = tf.matmul(d_part, matrix, transpose_b=True)
        d_images.append(_sum_patches(
            tf.reshape(d_columns, [-1, indices.size, in_channels]),
            tf.constant(indices.reshape(-1)), height, width))
      return (tf.cast(tf.concat(d_images, axis=0), images.dtype),
              tf.reshape(d_kernel, kernel.shape))

    return tf.reshape(output, [-1, out_height, out_width, out_channels]), grad

  return conv(images, kernel)


def _capsule_call_batch_first(self, input_tensor):
  """Before `input_major_votes`: `Capsule.call` on batch-first votes."""
  votes = tf.einsum('bia,iaj->bij', self._cast(input_tensor),
                    self._cast(self.kernel))        # [b, in, out * atoms]
  votes = tf.reshape(votes, [-1, self.input_dim, self.output_dim,
                             self.output_atoms])
  return layers._fused_routing(votes, tf.convert_to_tensor(self.biases),
                               self.num_routing, self.leaky)


def _routing_op_by_op(votes, biases, num_routing, leaky, input_axis=1):
  """Before `xla_routing`: `_fused_routing` without XLA."""
  return layers._update_routing(tf.cast(votes, tf.float32), biases,
                                num_routing, leaky, input_axis=input_axis)


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
  elif 'fourier' in changes:
    patches.append(mock.patch.object(kernels, '_fourier_conv2d',
                                     _im2col_conv2d))
  if 'input_major_votes' in changes:
    patches.append(mock.patch.object(layers.Capsule, 'call',
                                     _capsule_call_batch_first))
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
