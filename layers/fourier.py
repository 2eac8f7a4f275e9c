"""The Fourier convolution: `tf.nn.conv2d` by DFT matrix products, for CPUs.

An optional accelerator, not the paper's math: the capsule layers run it when
asked (`conv_implementation='fourier'`). It gives `tf.nn.conv2d`'s numbers up
to float rounding, values and both gradients, in float32, bfloat16 and
float16. docs/fourier.md derives it with shapes, in the order of this code,
and defines the shapes' names (`lh`, `hw`, `f`; axes `2 * n`, `n * 2`,
`3 * lh`).
"""

import dataclasses
import functools
from typing import Tuple

import numpy as np
import tensorflow as tf

import errors


@dataclasses.dataclass(frozen=True)
class _Axis:
  """One image axis of a convolution (docs/fourier.md, section 2)."""
  out_size: int
  pad_before: int   # SAME's zeros before the input; VALID has none.
  dft_length: int   # The span of (padded) input the strided outputs read.


def _axis(size: int, *, kernel_size: int, stride: int, padding: str) -> _Axis:
  """The `_Axis` of `size` inputs (ConfigError unless SAME or VALID)."""
  if padding == 'SAME':
    out_size = -(-size // stride)
    pad_before = max((out_size - 1) * stride + kernel_size - size, 0) // 2
  elif padding == 'VALID':
    out_size = (size - kernel_size) // stride + 1
    pad_before = 0
  else:
    raise errors.ConfigError(f'padding={padding!r}: use SAME or VALID')
  return _Axis(out_size=out_size, pad_before=pad_before,
               dft_length=(out_size - 1) * stride + kernel_size)


def _dft_matrix(size: int, *, length: int, offset: int,
                half: bool) -> Tuple[np.ndarray, np.ndarray]:
  """Real and imaginary parts `[frequencies, size]` of D (docs section 3).

  `frequencies` is `length`, or `length // 2 + 1` with half.
  """
  frequencies = length // 2 + 1 if half else length
  position = np.arange(size)[None, :] + offset
  angle = 2 * np.pi * np.arange(frequencies)[:, None] * position / length
  inside = position < length
  return np.cos(angle) * inside, -np.sin(angle) * inside


def _complex_map(real: np.ndarray,
                 imag: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """`[m, n]` parts of a complex matrix to `to_real, to_imag` `[m, n * 2]`."""
  to_real = np.stack([real, -imag], axis=2).reshape(real.shape[0], -1)
  to_imag = np.stack([imag, real], axis=2).reshape(real.shape[0], -1)
  return to_real, to_imag


@dataclasses.dataclass(frozen=True, eq=False)
class _Plan:
  """The float32 matrices of one convolution geometry (docs sections 3-6)."""
  height_frequencies: int
  width_frequencies: int
  out_height: int
  out_width: int
  image_width_dft: np.ndarray      # [2 * hw, w]
  image_height_dft: np.ndarray     # [3 * lh, h * 2]
  kernel_width_dft: np.ndarray     # [2 * hw, k]
  kernel_height_dft: np.ndarray    # [3 * lh, k * 2]
  output_height_idft: np.ndarray   # [oh * 2, 3 * lh]
  output_width_idft: np.ndarray    # [ow, 2 * hw]
  d_output_for_images: np.ndarray  # [3 * lh, oh * 2]
  d_output_for_kernel: np.ndarray  # [3 * lh, oh * 2]
  d_image_height: np.ndarray       # [h * 2, 3 * lh]
  d_kernel_height: np.ndarray      # [k * 2, 3 * lh]

  @property
  def num_frequencies(self) -> int:
    """`f = lh * hw`, the frequency products batched."""
    return self.height_frequencies * self.width_frequencies


@functools.lru_cache(maxsize=None)
def _plan(height: int, width: int, *, kernel_size: int, stride: int,
          padding: str) -> _Plan:
  """The `_Plan` of a convolution's geometry (docs/fourier.md, 2-6)."""
  along_height, along_width = (
      _axis(size, kernel_size=kernel_size, stride=stride, padding=padding)
      for size in (height, width))
  length_h, length_w = along_height.dft_length, along_width.dft_length
  half_width = length_w // 2 + 1

  def width_dft(size, offset):  # [2 * hw, size]: rows (part, frequency)
    return np.concatenate(_dft_matrix(size, length=length_w, offset=offset,
                                      half=True))

  def height_dft(size, offset):  # two [lh, size * 2]: to the real, imag
    return _complex_map(*_dft_matrix(size, length=length_h, offset=offset,
                                     half=False))

  image_to_real, image_to_imag = height_dft(height, along_height.pad_before)
  kernel_to_real, kernel_to_imag = height_dft(kernel_size, 0)

  # The inverse DFT at the strided rows, from Yr and Yi (docs section 5).
  angle_h = (2 * np.pi * stride * np.arange(along_height.out_size)[:, None] *
             np.arange(length_h)[None, :] / length_h)  # [oh, lh]
  cos_h, sin_h = np.cos(angle_h), np.sin(angle_h)
  from_real = np.stack([cos_h, sin_h], axis=1).reshape(-1, length_h)
  from_imag = np.stack([-sin_h, cos_h], axis=1).reshape(-1, length_h)

  # Each frequency but 0 (and an even length's last) counts for its
  # conjugate too; 1 / (lh lw) is the inverse DFT's scale.
  frequency_w = np.arange(half_width)[None, :]
  angle_w = (2 * np.pi * stride * np.arange(along_width.out_size)[:, None] *
             frequency_w / length_w)                   # [ow, hw]
  weight = np.where((frequency_w == 0) | (2 * frequency_w == length_w),
                    1.0, 2.0) / (length_h * length_w)

  matrices = dict(
      image_width_dft=width_dft(width, along_width.pad_before),
      image_height_dft=np.concatenate(
          [image_to_real + image_to_imag, image_to_real, image_to_imag]),
      kernel_width_dft=width_dft(kernel_size, 0),
      kernel_height_dft=np.concatenate(
          [kernel_to_real, kernel_to_real + kernel_to_imag,
           kernel_to_real - kernel_to_imag]),
      # [s0, s1, s2] to Y = (s0 - s2) + i (s0 - s1), then to (o, part).
      output_height_idft=np.concatenate(
          [from_real + from_imag, -from_imag, -from_real], axis=1),
      output_width_idft=np.concatenate(
          [np.cos(angle_w) * weight, -np.sin(angle_w) * weight], axis=1),
      # dY's stacks: [dYr + dYi, dYi, dYr], the left one with its last two
      # swapped so that the kernel stack serves as it is, and
      # [dYr, dYr + dYi, dYr - dYi] (docs section 6).
      d_output_for_images=np.concatenate(
          [from_real.T + from_imag.T, from_imag.T, from_real.T]),
      d_output_for_kernel=np.concatenate(
          [from_real.T, from_real.T + from_imag.T,
           from_real.T - from_imag.T]),
      # [s0, s1, s2] to dX = (s0 - s1) + i (s0 - s2) (the swapped stack).
      d_image_height=np.concatenate(
          [image_to_real.T + image_to_imag.T, -image_to_real.T,
           -image_to_imag.T], axis=1),
      # [s0, s1, s2] to dW = (s0 - s2) + i (s0 - s1).
      d_kernel_height=np.concatenate(
          [kernel_to_real.T + kernel_to_imag.T, -kernel_to_imag.T,
           -kernel_to_real.T], axis=1),
  )
  return _Plan(height_frequencies=length_h, width_frequencies=half_width,
               out_height=along_height.out_size, out_width=along_width.out_size,
               **{name: matrix.astype(np.float32)
                  for name, matrix in matrices.items()})


def _width_then_height(signal: tf.Tensor, *, width_map: np.ndarray,
                       height_map: np.ndarray) -> tf.Tensor:
  """`[h, w, n]` by `[2 * m, w]`, then by `[r, h * 2]`: `[r, m * n]`."""
  by_width = tf.matmul(tf.cast(width_map, signal.dtype),
                       signal)                          # [height, 2 * m, n]
  return tf.matmul(tf.cast(height_map, signal.dtype),
                   tf.reshape(by_width, [height_map.shape[1], -1]))


def _height_then_width(spectrum: tf.Tensor, *, height_map: np.ndarray,
                       width_map: np.ndarray) -> tf.Tensor:
  """`[r, m * n]` by `[h * 2, r]`, then in float32 `[w, 2 * m]`: `[h, w, n]`."""
  by_height = tf.matmul(tf.cast(height_map, spectrum.dtype),
                        spectrum)                       # [height * 2, m * n]
  by_height = tf.cast(by_height, tf.float32)
  return tf.matmul(width_map, tf.reshape(
      by_height, [height_map.shape[0] // 2, width_map.shape[1], -1]))


def _product_dtype(dtype: tf.DType) -> tf.DType:
  """bfloat16 for bfloat16, else float32 (float16's range is too narrow)."""
  return tf.bfloat16 if dtype == tf.bfloat16 else tf.float32


def conv2d(images: tf.Tensor, kernel: tf.Tensor, *, stride: int,
           padding: str) -> tf.Tensor:
  """`tf.nn.conv2d(images, kernel, stride, padding)` by the DFT.

  images `[batch, height, width, in_channels]` and kernel `[k, k, in_channels,
  out_channels]` in float32, bfloat16 or float16; one stride for both axes;
  ConfigError for a padding other than SAME or VALID.
  """
  _, height, width, in_channels = images.shape
  kernel_size, _, _, out_channels = kernel.shape
  plan = _plan(height, width, kernel_size=kernel_size, stride=stride,
               padding=padding)
  dtype = _product_dtype(images.dtype)
  frequencies = plan.num_frequencies

  def signals(tensor):  # [h, w, ...] -> [h, w, n]
    return tf.reshape(tf.cast(tensor, dtype),
                      [tensor.shape[0], tensor.shape[1], -1])

  def products(a, b, **transpose):  # One batched product of all three.
    with tf.name_scope('frequency_products'):
      return tf.matmul(a, b, **transpose)

  def by_height(stack):  # [3, f, ..., c] -> [3 * lh, hw * ... * c]
    return tf.reshape(stack, [3 * plan.height_frequencies, -1])

  def kernel_stack(kernel):  # [3, f, in, out]
    return tf.reshape(_width_then_height(
        signals(kernel), width_map=plan.kernel_width_dft,
        height_map=plan.kernel_height_dft),
                      [3, frequencies, in_channels, out_channels])

  @tf.custom_gradient
  def conv(images, kernel):
    image_stack = tf.reshape(_width_then_height(
        signals(tf.transpose(images, [1, 2, 0, 3])),
        width_map=plan.image_width_dft, height_map=plan.image_height_dft),
                             [3, frequencies, -1, in_channels])  # [3,f,b,in]
    output = _height_then_width(
        by_height(products(image_stack, kernel_stack(kernel))),
        height_map=plan.output_height_idft,
        width_map=plan.output_width_idft)              # [oh, ow, b * out]
    output = tf.reshape(output, [plan.out_height, plan.out_width, -1,
                                 out_channels])

    def grad(d_output):                                # [b, oh, ow, out]
      # Named, for profiles: TensorFlow gives gradient ops no scope of theirs.
      with tf.name_scope('fourier_conv2d_grad'):
        d_signals = signals(tf.transpose(d_output, [1, 2, 0, 3]))

        def d_output_stack(height_map):  # [3, f, b, out]
          return tf.reshape(_width_then_height(
              d_signals, width_map=plan.output_width_idft.T,
              height_map=height_map), [3, frequencies, -1, out_channels])

        # One product's operands and result at a time, for memory (docs
        # section 6); the kernel stack made again only after the kernel
        # gradient, which also keeps grappler from merging the two.
        d_kernel = _height_then_width(
            by_height(products(image_stack,
                               d_output_stack(plan.d_output_for_kernel),
                               transpose_a=True)),
            height_map=plan.d_kernel_height,
            width_map=plan.kernel_width_dft.T)         # [k, k, in * out]
        with tf.control_dependencies([d_kernel]):
          kernel_operands = kernel_stack(kernel)
          d_output_operands = d_output_stack(plan.d_output_for_images)
        d_images = _height_then_width(
            by_height(products(d_output_operands, kernel_operands,
                               transpose_b=True)),
            height_map=plan.d_image_height,
            width_map=plan.image_width_dft.T)          # [h, w, b * in]
        d_images = tf.transpose(tf.reshape(
            d_images, [height, width, -1, in_channels]), [2, 0, 1, 3])
        return (tf.cast(d_images, images.dtype),
                tf.cast(tf.reshape(d_kernel, kernel.shape), kernel.dtype))

    return tf.cast(tf.transpose(output, [2, 0, 1, 3]), images.dtype), grad

  with tf.name_scope('fourier_conv2d'):
    return conv(images, kernel)
