"""Convolution by the convolution theorem, with the DFTs as matrix products.

Not the paper's math: a faster way to compute `tf.nn.conv2d` on CPUs for the
primary capsules' large-kernel convolution (9x9, stride 2, 256 channels in
and out), used by the capsule layers in `layers.py`. `conv2d` runs it or
TensorFlow's own, as asked; `models.devices.conv_implementation` chooses for
the device.

In the frequency domain the convolution is one small complex matrix product
per frequency: for the MNIST primary capsules 190 frequencies of
`[batch, 256] x [256, 256]`, which with Gauss's three real products per
complex one is a fifth of the multiplications of the direct convolution's
36 positions x 81 taps. All three real products of all frequencies run as
one batched matrix product near the multiply peak. The DFTs are small matrix
products too, one image axis at a time; their matrices fold in the zero
padding, the stride, the VALID crop and Gauss's sums and differences, so the
DFTs hand the products their operands, and the inverse DFT takes their
results, with no elementwise pass and no FFT op in between.
"""

import collections
import functools
from typing import Tuple

import numpy as np
import tensorflow as tf

IMPLEMENTATIONS = ('fourier', 'native')

# A convolution geometry's constant matrices (see `_plan`); the spectra
# have `num_frequencies` = length_h * half_width frequencies. The
# `*_adjoint` ones are the backward pass's; `inverse_rows_adjoint` is a pair,
# the output gradient's stacks for the image and for the kernel gradient.
_Plan = collections.namedtuple('_Plan', (
    'out_height', 'out_width', 'num_frequencies',
    'image_columns', 'image_rows', 'kernel_columns', 'kernel_rows',
    'inverse_rows', 'inverse_columns',
    'image_rows_adjoint', 'kernel_rows_adjoint', 'inverse_rows_adjoint'))


def _geometry(size: int, *, kernel_size: int, stride: int,
              padding: str) -> Tuple[int, int, int]:
  """Output size, zero padding before the input and DFT length of one axis.

  The DFT length is the span of input the strided outputs read, `(out - 1) *
  stride + kernel_size`: with it the circular correlation of the DFTs equals
  the linear one at every output, and VALID's unread last rows drop out.
  """
  if padding == 'SAME':
    out = -(-size // stride)
    before = max((out - 1) * stride + kernel_size - size, 0) // 2
  elif padding == 'VALID':
    out = (size - kernel_size) // stride + 1
    before = 0
  else:
    raise ValueError(f'padding={padding!r}: use SAME or VALID')
  return out, before, (out - 1) * stride + kernel_size


def _dft_matrix(size: int, *, length: int, offset: int,
                half: bool) -> Tuple[np.ndarray, np.ndarray]:
  """The length-`length` DFT of a `size`-long signal placed at `offset`.

  Returns:
    The real and imaginary parts `[frequencies, size]` of what sample n adds
    to frequency f, `exp(-2 pi i f (n + offset) / length)`; zero for samples
    past the length. `frequencies` is `length`, or `length // 2 + 1` with
    half (a real signal's other frequencies are conjugates of these).
  """
  frequencies = length // 2 + 1 if half else length
  position = np.arange(size)[None, :] + offset
  angle = 2 * np.pi * np.arange(frequencies)[:, None] * position / length
  inside = position < length
  return np.cos(angle) * inside, -np.sin(angle) * inside


def _complex_rows(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
  """The real matrix of multiplying complex vectors by `real + i imag`.

  Args:
    real: `[m, n]`.
    imag: `[m, n]`.

  Returns:
    `[2 * m, n * 2]`: rows (part, m), columns (n, part); it maps a complex
    `[n]` stored as `[n, 2]` (real, imaginary) to `[2, m]`.
  """
  matrix = np.zeros([2, real.shape[0], real.shape[1], 2])
  matrix[0, :, :, 0], matrix[0, :, :, 1] = real, -imag
  matrix[1, :, :, 0], matrix[1, :, :, 1] = imag, real
  return matrix.reshape(2 * real.shape[0], 2 * real.shape[1])


def _spectrum_matrices(height: int, width: int, *, lengths: Tuple[int, int],
                       offsets: Tuple[int, int]) -> Tuple[np.ndarray,
                                                          np.ndarray]:
  """The DFT of a `height x width` signal as `_columns_then_rows` takes it.

  Returns:
    columns `[2 * half_width, width]` (rows: part, frequency) and rows
    `[2 * length_h, height * 2]` (rows: part, frequency).
  """
  columns = np.concatenate(_dft_matrix(width, length=lengths[1],
                                       offset=offsets[1], half=True))
  rows = _complex_rows(*_dft_matrix(height, length=lengths[0],
                                    offset=offsets[0], half=False))
  return columns, rows


@functools.lru_cache(maxsize=None)
def _plan(height: int, width: int, *, kernel_size: int, stride: int,
          padding: str) -> _Plan:
  """The DFT matrices of a convolution's geometry, in float32.

  With `X` the image spectrum, `W` the kernel's and `Y = X conj(W)` the
  output's (TensorFlow's convolution is a cross-correlation), Gauss's
  products are
    `k1 = (Xr + Xi) Wr`, `m2 = Xr (Wr + Wi)`, `k3 = Xi (Wr - Wi)`,
    `Yr = k1 - k3`, `Yi = k1 - m2`,
  so the image DFT makes the stack `[Xr + Xi, Xr, Xi]`, the kernel DFT
  `[Wr, Wr + Wi, Wr - Wi]`, and the inverse DFT reads `[k1, m2, k3]`. The
  backward products reuse the two stacks: the image gradient `dX = dY W^T`
  as `[dYr + dYi, dYi, dYr] x [Wr, Wr + Wi, Wr - Wi]^T = [k1, k3, m2]` with
  `dXr = k1 - k3`, `dXi = k1 - m2`; the kernel gradient `dW = X^T conj(dY)`
  as `[Xr + Xi, Xr, Xi]^T x [dYr, dYr + dYi, dYr - dYi] = [k1, m2, k3]`
  with `dWr = k1 - k3`, `dWi = k1 - m2`. The inverse DFT evaluates the real
  inverse only at the strided outputs, every half-spectrum column but the
  first (and an even length's last) counted twice for its conjugate.
  """
  out_height, before_h, length_h = _geometry(
      height, kernel_size=kernel_size, stride=stride, padding=padding)
  out_width, before_w, length_w = _geometry(
      width, kernel_size=kernel_size, stride=stride, padding=padding)
  half_width = length_w // 2 + 1
  lengths = (length_h, length_w)
  image_columns, image_rows = _spectrum_matrices(
      height, width, lengths=lengths, offsets=(before_h, before_w))
  kernel_columns, kernel_rows = _spectrum_matrices(
      kernel_size, kernel_size, lengths=lengths, offsets=(0, 0))

  def parts(matrix, axis):  # The real and imaginary blocks along axis.
    return np.split(matrix, 2, axis=axis)

  image_real, image_imag = parts(image_rows, 0)
  kernel_real, kernel_imag = parts(kernel_rows, 0)
  angle_h = (2 * np.pi * stride * np.arange(out_height)[:, None] *
             np.arange(length_h)[None, :] / length_h)  # [oh, length_h]
  # Rows (part, oh) -> (oh, part), columns (length_h, part) -> (part, ...).
  inverse = _complex_rows(np.cos(angle_h), np.sin(angle_h)).reshape(
      2, out_height, length_h, 2).transpose(1, 0, 3, 2).reshape(
          2 * out_height, 2 * length_h)
  inverse_real, inverse_imag = parts(inverse, 1)
  frequency_w = np.arange(half_width)[None, :]
  angle_w = (2 * np.pi * stride * np.arange(out_width)[:, None] *
             frequency_w / length_w)                   # [ow, half_width]
  weight = np.where((frequency_w == 0) | (2 * frequency_w == length_w),
                    1.0, 2.0) / (length_h * length_w)
  inverse_columns = np.concatenate(
      [np.cos(angle_w) * weight, -np.sin(angle_w) * weight], axis=1)
  d_real, d_imag = parts(inverse.T, 0)     # to dYr and dYi from d_output
  image_t_real, image_t_imag = parts(image_rows.T, 1)
  kernel_t_real, kernel_t_imag = parts(kernel_rows.T, 1)
  matrices = (
      image_columns,
      np.concatenate([image_real + image_imag, image_real, image_imag]),
      kernel_columns,
      np.concatenate([kernel_real, kernel_real + kernel_imag,
                      kernel_real - kernel_imag]),
      np.concatenate([inverse_real + inverse_imag, -inverse_imag,
                      -inverse_real], axis=1),
      inverse_columns,
      np.concatenate([image_t_real + image_t_imag, -image_t_real,
                      -image_t_imag], axis=1),
      np.concatenate([kernel_t_real + kernel_t_imag, -kernel_t_imag,
                      -kernel_t_real], axis=1),
      (np.concatenate([d_real + d_imag, d_imag, d_real]),
       np.concatenate([d_real, d_real + d_imag, d_real - d_imag])),
  )
  return _Plan(out_height, out_width, length_h * half_width,
               *tf.nest.map_structure(lambda matrix: matrix.astype(np.float32),
                                      matrices))


def _columns_then_rows(signal: tf.Tensor, columns: np.ndarray,
                       rows: np.ndarray) -> tf.Tensor:
  """A separable map of 2D signals: along the width, then the height.

  Args:
    signal: `[height, width, n]`, n signals, float32 or bfloat16.
    columns: `[2 * m, width]`, two parts (real, imaginary) of m outputs.
    rows: `[r, height * 2]`, on the (height, part) pairs.

  Returns:
    `[r, m * n]` in the signal's dtype.
  """
  by_column = tf.matmul(tf.cast(columns, signal.dtype), signal)  # [h, 2m, n]
  return tf.matmul(tf.cast(rows, signal.dtype),
                   tf.reshape(by_column, [rows.shape[1], -1]))


def _rows_then_columns(spectrum: tf.Tensor, rows: np.ndarray,
                       columns: np.ndarray) -> tf.Tensor:
  """A separable map of 2D signals: along the height, then the width.

  Args:
    spectrum: `[k, m * n]`, float32 or bfloat16.
    rows: `[2 * height, k]`, rows (height, part).
    columns: `[width, 2 * m]`, on the (part, m) pairs.

  Returns:
    float32 `[height, width, n]`: the second stage runs in float32.
  """
  by_row = tf.matmul(tf.cast(rows, spectrum.dtype), spectrum)  # [2 * h, m * n]
  by_row = tf.cast(by_row, tf.float32)
  return tf.matmul(columns, tf.reshape(
      by_row, [rows.shape[0] // 2, columns.shape[1], -1]))


def _product_dtype(dtype: tf.DType) -> tf.DType:
  """The DFTs' and products' dtype: bfloat16 for bfloat16 inputs, else
  float32 (float16's range is too narrow for spectra, sums over images)."""
  return tf.bfloat16 if dtype == tf.bfloat16 else tf.float32


def _fourier_conv2d(images: tf.Tensor, kernel: tf.Tensor, *, stride: int,
                    padding: str) -> tf.Tensor:
  """`tf.nn.conv2d` by the convolution theorem (see the module docstring).

  Everything runs in `_product_dtype` but the last stage of the inverse DFTs,
  float32. The gradients are the transposed maps: the same kinds of matrix
  products. The image stack is kept for the backward pass (for MNIST at
  batch 128, 75 MB); the kernel stack (150 MB) is made again there.
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

  def blocks(stack):  # [3, f, ..., c] -> [3 * length_h, half_width * ... * c]
    return tf.reshape(stack, [plan.image_rows.shape[0], -1])

  def kernel_spectrum(kernel):  # [3, f, in, out]
    return tf.reshape(_columns_then_rows(
        signals(kernel), plan.kernel_columns, plan.kernel_rows),
                      [3, frequencies, in_channels, out_channels])

  @tf.custom_gradient
  def conv(images, kernel):
    image_stack = tf.reshape(_columns_then_rows(
        signals(tf.transpose(images, [1, 2, 0, 3])), plan.image_columns,
        plan.image_rows), [3, frequencies, -1, in_channels])  # [3, f, b, in]
    output = _rows_then_columns(
        blocks(products(image_stack, kernel_spectrum(kernel))),
        plan.inverse_rows,
        plan.inverse_columns)                          # [oh, ow, b * out]
    output = tf.reshape(output, [plan.out_height, plan.out_width, -1,
                                 out_channels])

    def grad(d_output):                                # [b, oh, ow, out]
      # Named, for profiles: TensorFlow gives gradient ops no scope of theirs.
      with tf.name_scope('fourier_conv2d_grad'):
        d_signals = signals(tf.transpose(d_output, [1, 2, 0, 3]))

        def d_stack(rows):  # [3, f, b, out], for one of the two products.
          return tf.reshape(_columns_then_rows(
              d_signals, plan.inverse_columns.T, rows),
                            [3, frequencies, -1, out_channels])

        # One product's operands and result at a time, for memory: the
        # kernel gradient's first, then the image stack is dead; the kernel
        # stack made again (150 MB for MNIST, not kept from the forward
        # pass) only after it, which also keeps grappler from merging the
        # two.
        d_kernel = _rows_then_columns(
            blocks(products(image_stack, d_stack(plan.inverse_rows_adjoint[1]),
                            transpose_a=True)),
            plan.kernel_rows_adjoint, plan.kernel_columns.T)
        with tf.control_dependencies([d_kernel]):
          kernel_stack = kernel_spectrum(kernel)
          d_for_images = d_stack(plan.inverse_rows_adjoint[0])
        d_images = _rows_then_columns(
            blocks(products(d_for_images, kernel_stack, transpose_b=True)),
            plan.image_rows_adjoint, plan.image_columns.T)  # [h, w, b * in]
        d_images = tf.transpose(tf.reshape(
            d_images, [height, width, -1, in_channels]), [2, 0, 1, 3])
        return (tf.cast(d_images, images.dtype),
                tf.cast(tf.reshape(d_kernel, kernel.shape), kernel.dtype))

    return tf.cast(tf.transpose(output, [2, 0, 1, 3]), images.dtype), grad

  return conv(images, kernel)


def conv2d(images: tf.Tensor, kernel: tf.Tensor, *, stride: int,
           padding: str, implementation: str = 'fourier') -> tf.Tensor:
  """`tf.nn.conv2d`, by DFT matrix products or by TensorFlow.

  Args:
    images: `[batch, height, width, in_channels]`.
    kernel: `[k, k, in_channels, out_channels]`, same dtype.
    stride: convolution stride.
    padding: 'SAME' or 'VALID'.
    implementation: 'fourier' (`_fourier_conv2d`) or 'native'
      (`tf.nn.conv2d`). Both give the same numbers up to float rounding.

  Returns:
    `[batch, out_height, out_width, out_channels]`.

  Raises:
    ValueError: for an unknown implementation.
  """
  if implementation == 'native':
    return tf.nn.conv2d(images, kernel, stride, padding)
  if implementation == 'fourier':
    with tf.name_scope('fourier_conv2d'):
      return _fourier_conv2d(images, kernel, stride=stride, padding=padding)
  raise ValueError(f'convolution implementation {implementation!r}: use one '
                   f'of {", ".join(IMPLEMENTATIONS)}')
