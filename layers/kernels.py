"""Convolution as matrix products of gathered image patches (im2col).

Not the paper's math: a faster way to compute `tf.nn.conv2d` on CPUs for the
primary capsules' convolution, used by the capsule layers in `layers.py`:
there TensorFlow's convolutions (oneDNN) run far below the matrix-multiply
peak for this shape. `conv2d` runs it or TensorFlow's own, as asked;
`models.devices.conv_implementation` chooses for the device.
"""

from typing import List, Optional

import numpy as np
import tensorflow as tf

IMPLEMENTATIONS = ('im2col', 'native')
# The most bytes of image patches made at once; larger batches go in chunks.
# 64 MiB: MNIST training (6 chunks) keeps near the whole batch's speed and
# within 1.5 GiB; docs/speed.md has the measurements.
MAX_PATCH_BYTES = 64 * 2**20


def _patch_indices(height: int, width: int, *, kernel_size: int, stride: int,
                   padding: str) -> np.ndarray:
  """Where every kernel tap reads, for every output position of a convolution.

  Returns:
    `[out_height, out_width, k, k]` int32 indices into the image's
    `height * width` positions flattened row-major, plus one extra position,
    `height * width`, that stands for the zero padding of 'SAME'.
  """
  if padding == 'SAME':
    out_height, out_width = -(-height // stride), -(-width // stride)
    top = max((out_height - 1) * stride + kernel_size - height, 0) // 2
    left = max((out_width - 1) * stride + kernel_size - width, 0) // 2
  else:
    out_height = (height - kernel_size) // stride + 1
    out_width = (width - kernel_size) // stride + 1
    top = left = 0
  taps = np.arange(kernel_size)
  rows = (stride * np.arange(out_height)[:, None, None, None] +
          taps[None, None, :, None] - top)
  columns = (stride * np.arange(out_width)[None, :, None, None] +
             taps[None, None, None, :] - left)
  inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
  return np.where(inside, rows * width + columns,
                  height * width).astype(np.int32)


def patches(images: tf.Tensor, *, kernel_size: int, stride: int,
            padding: str) -> tf.Tensor:
  """The image patch under the kernel at every output position (im2col).

  Args:
    images: `[batch, height, width, channels]`.
    kernel_size: k of a square k x k kernel.
    stride: convolution stride.
    padding: 'SAME' or 'VALID'.

  Returns:
    `[batch, out_height, out_width, k * k * channels]`, the last axis in the
    order of a kernel `[k, k, channels, ...]` reshaped to `[k * k * channels,
    ...]`.
  """
  _, height, width, channels = images.shape
  indices = _patch_indices(height, width, kernel_size=kernel_size,
                           stride=stride, padding=padding)
  out_height, out_width = indices.shape[:2]
  positions = tf.reshape(images, [-1, height * width, channels])
  positions = tf.pad(positions, [[0, 0], [0, 1], [0, 0]])  # + a zero position
  gathered = tf.gather(positions, indices, axis=1)  # [b, oh, ow, k, k, c]
  return tf.reshape(gathered, [-1, out_height, out_width,
                               kernel_size * kernel_size * channels])


@tf.function(jit_compile=True, autograph=False)
def _sum_patches(d_patches: tf.Tensor, indices: tf.Tensor, height: int,
                 width: int) -> tf.Tensor:
  """Adds every patch value back onto the image position it came from.

  The gradient of `patches` (col2im), in float32, compiled by XLA into one
  pass over the patches.

  Args:
    d_patches: `[batch, out_height * out_width * k * k, channels]`.
    indices: `[out_height * out_width * k * k]` int32, `_patch_indices`
      flattened.
    height: image height.
    width: image width.

  Returns:
    float32 `[batch, height, width, channels]`.
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


def _batch_chunks(batch: Optional[int], example_bytes: int) -> List[int]:
  """Sizes of the fewest near-equal batch chunks whose patches fit the cap."""
  if batch is None:
    return [-1]  # Unknown batch size: one chunk of whatever comes.
  num_chunks = min(batch, max(1, -(-batch * example_bytes // MAX_PATCH_BYTES)))
  return [batch // num_chunks + (i < batch % num_chunks)
          for i in range(num_chunks)]


def _im2col_conv2d(images: tf.Tensor, kernel: tf.Tensor, *, stride: int,
                   padding: str) -> tf.Tensor:
  """`tf.nn.conv2d` as matrix products of the image patches.

  For the primary capsules' 9x9 stride 2 convolution over 256 channels the
  forward pass and both gradients are then matrix products, which run near
  the matrix-multiply peak where oneDNN's convolution and its gradients do
  not. The image gradient adds the patch gradients back onto the image
  (`_sum_patches`). The patches, about k * k / stride^2 times the size of
  the images (0.4 GB for MNIST at batch 128 in float32, 1.5 GB for CIFAR10),
  are made for a chunk of the batch at a time (at most MAX_PATCH_BYTES) and
  made again for the kernel gradient rather than kept from the forward pass,
  so that at most one chunk's patches, or their gradient, exist at a time.
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
    return tf.reshape(patches(images, kernel_size=kernel_size, stride=stride,
                              padding=padding), [-1, patch_size])

  @tf.custom_gradient
  def conv(images, kernel):
    matrix = tf.reshape(kernel, [patch_size, out_channels])
    output = tf.concat([tf.matmul(columns_of(part), matrix)
                        for part in tf.split(images, chunks)],
                       axis=0)                         # [b * oh * ow, out]

    def grad(d_output):                                # [b, oh, ow, out]
      d_kernel = tf.zeros_like(matrix)
      d_images = []
      # Chunk after chunk: each product already keeps every core busy, and
      # only one chunk's big intermediates exist at a time.
      for part, d_part in zip(tf.split(images, chunks),
                              tf.split(d_output, chunks)):
        d_part = tf.reshape(d_part, [-1, out_channels])
        # Gathered again once d_part exists: else grappler merges this
        # gather with the forward pass's, whose patches then stay alive.
        with tf.control_dependencies([d_part] + d_images):
          d_kernel += tf.matmul(columns_of(part), d_part,
                                transpose_a=True)      # [p, out]
        with tf.control_dependencies([d_kernel]):
          d_columns = tf.matmul(d_part, matrix,
                                transpose_b=True)      # [b * oh * ow, p]
        d_images.append(_sum_patches(
            tf.reshape(d_columns, [-1, indices.size, in_channels]),
            tf.constant(indices.reshape(-1)), height, width))
      return (tf.cast(tf.concat(d_images, axis=0), images.dtype),
              tf.reshape(d_kernel, kernel.shape))

    return tf.reshape(output, [-1, out_height, out_width, out_channels]), grad

  return conv(images, kernel)


def conv2d(images: tf.Tensor, kernel: tf.Tensor, *, stride: int,
           padding: str, implementation: str = 'im2col') -> tf.Tensor:
  """`tf.nn.conv2d`, by im2col matrix products or by TensorFlow.

  Args:
    images: `[batch, height, width, in_channels]`.
    kernel: `[k, k, in_channels, out_channels]`, same dtype.
    stride: convolution stride.
    padding: 'SAME' or 'VALID'.
    implementation: 'im2col' or 'native' (`tf.nn.conv2d`). Both give the
      same numbers up to float rounding.

  Returns:
    `[batch, out_height, out_width, out_channels]`.

  Raises:
    ValueError: for an unknown implementation.
  """
  if implementation == 'native':
    return tf.nn.conv2d(images, kernel, stride, padding)
  if implementation == 'im2col':
    return _im2col_conv2d(images, kernel, stride=stride, padding=padding)
  raise ValueError(f'convolution implementation {implementation!r}: use one '
                   f'of {", ".join(IMPLEMENTATIONS)}')
