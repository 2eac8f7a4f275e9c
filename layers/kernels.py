"""Convolution as a matrix product of gathered image patches (im2col).

Not the paper's math: a faster way to compute `tf.nn.conv2d` for the primary
capsules' convolution, used by the capsule layers in `layers.py`.
"""

import numpy as np
import tensorflow as tf


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


def conv2d(images: tf.Tensor, kernel: tf.Tensor, *, stride: int,
           padding: str) -> tf.Tensor:
  """`tf.nn.conv2d` as one matrix product of the image patches (im2col).

  For the primary capsules' 9x9 stride 2 convolution over 256 channels,
  gathering the patches and multiplying them by the kernel, and by the output
  gradient for the kernel gradient, runs near the matrix-multiply peak where
  TensorFlow's convolution and kernel gradient (oneDNN) do not: on CPU the
  float32 MNIST training step is 1.24x faster and the evaluation step 1.22x
  (`python -m benchmarks.ablation`). The image gradient is TensorFlow's. The
  patches, about k * k / stride^2 times the size of the images, are kept for
  the backward pass (float32 at batch 128: 0.4 GB for MNIST, 1.5 GB for the
  CIFAR10 model).

  Args:
    images: `[batch, height, width, in_channels]`.
    kernel: `[k, k, in_channels, out_channels]`, same dtype.
    stride: convolution stride.
    padding: 'SAME' or 'VALID'.

  Returns:
    `[batch, out_height, out_width, out_channels]`.
  """
  kernel_size, _, in_channels, out_channels = kernel.shape
  patch_size = kernel_size * kernel_size * in_channels

  @tf.custom_gradient
  def conv(images, kernel):
    columns = patches(images, kernel_size=kernel_size, stride=stride,
                      padding=padding)                 # [b, oh, ow, p]
    _, out_height, out_width, _ = columns.shape
    columns = tf.reshape(columns, [-1, patch_size])    # [b * oh * ow, p]
    output = tf.matmul(columns, tf.reshape(kernel, [patch_size, out_channels]))

    def grad(d_output):                                # [b, oh, ow, out]
      d_images = tf.nn.conv2d_transpose(d_output, kernel, tf.shape(images),
                                        stride, padding)
      # One product after the other, never side by side: each already keeps
      # every core busy. (Which one goes first measured the same.)
      with tf.control_dependencies([d_images]):
        d_kernel = tf.matmul(columns, tf.reshape(d_output, [-1, out_channels]),
                             transpose_a=True)         # [p, out]
      return d_images, tf.reshape(d_kernel, kernel.shape)

    return tf.reshape(output, [-1, out_height, out_width, out_channels]), grad

  return conv(images, kernel)
