"""The Fourier convolution: `tf.nn.conv2d` by DFT matrix products, for CPUs.

An optional accelerator, not the paper's math: the capsule layers run it
when asked (`conv_implementation='fourier'`), and TensorFlow's convolution
otherwise. It pays for the primary capsules' large-kernel convolution (9x9,
stride 2, 256 channels in and out), where its frequency products are a
fifth of the direct convolution's multiplications, on CPUs; GPUs have
tuned convolutions of their own. It gives `tf.nn.conv2d`'s numbers up to
float rounding, values and both gradients, in float32, bfloat16 and
float16.

In the frequency domain the convolution is one small complex matrix product
per frequency, `[batch, in_channels] x [in_channels, out_channels]`; with
Gauss's three real products per complex one, all products of all
frequencies run as one batched matrix product. The DFTs are small matrix
products too, one image axis at a time, whose matrices fold in the zero
padding, the stride, the VALID crop and Gauss's sums and differences. The
gradients are the transposed maps. docs/fourier.md derives it with shapes.

Shapes: `h x w` image, `k x k` kernel, `oh x ow` output; DFT lengths `lh`
and `lw` (`_Axis.dft_length`), `hw = lw // 2 + 1` frequencies kept along
the width (a real signal's others are their conjugates), `f = lh * hw`
frequencies in all. An axis written `2 * n` holds (part, n) pairs, part
major, and `n * 2` holds (n, part) pairs; a part is real or imaginary. An
axis `3 * lh` holds Gauss's three operands or products, each `lh` long.
"""

import dataclasses
import functools
from typing import Tuple

import numpy as np
import tensorflow as tf

import errors


@dataclasses.dataclass(frozen=True)
class _Axis:
  """One image axis of a convolution: sizes and the DFT length.

  Attributes:
    out_size: outputs along the axis.
    pad_before: zeros before the input (SAME padding; VALID has none).
    dft_length: `(out_size - 1) * stride + kernel_size`, the span of
      (padded) input that the strided outputs read.
  """
  out_size: int
  pad_before: int
  dft_length: int


def _axis(size: int, *, kernel_size: int, stride: int, padding: str) -> _Axis:
  """The output size, padding and DFT length of one axis of `size` inputs.

  With the DFT length the span the strided outputs read, the circular
  correlation of the DFTs equals the linear one at every output (the kernel
  never wraps around), and VALID's unread last rows drop out.

  Raises:
    errors.ConfigError: for a padding other than SAME or VALID.
  """
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
  """The length-`length` DFT of a `size`-long signal placed at `offset`.

  The offset is SAME's zero padding before the signal; samples at or past
  the length are never read by an output (VALID's crop) and weigh zero.

  Returns:
    The real and imaginary parts `[frequencies, size]` of what sample n adds
    to frequency f, `exp(-2 pi i f (n + offset) / length)`. `frequencies`
    is `length`, or `length // 2 + 1` with half.
  """
  frequencies = length // 2 + 1 if half else length
  position = np.arange(size)[None, :] + offset
  angle = 2 * np.pi * np.arange(frequencies)[:, None] * position / length
  inside = position < length
  return np.cos(angle) * inside, -np.sin(angle) * inside


def _complex_map(real: np.ndarray,
                 imag: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Multiplying complex vectors by the matrix `real + i imag`, in reals.

  Args:
    real: `[m, n]`.
    imag: `[m, n]`.

  Returns:
    `(to_real, to_imag)`, each `[m, n * 2]`: the real and the imaginary
    part of the product of a complex `[n]` stored as (n, part) pairs.
  """
  to_real = np.stack([real, -imag], axis=2).reshape(real.shape[0], -1)
  to_imag = np.stack([imag, real], axis=2).reshape(real.shape[0], -1)
  return to_real, to_imag


@dataclasses.dataclass(frozen=True, eq=False)
class _Plan:
  """The constant matrices of one convolution geometry (see `_plan`).

  Shapes as in the module docstring. `X`, `W` and `Y` are the spectra of
  the image, the kernel and the output, `dY` the output gradient's.

  Attributes:
    height_frequencies: `lh`.
    width_frequencies: `hw`.
    out_height: `oh`.
    out_width: `ow`.
    image_width_dft: `[2 * hw, w]`, image columns to their DFT along the
      width (SAME's padding and VALID's crop folded in).
    image_height_dft: `[3 * lh, h * 2]`, that to the left operands
      `[Xr + Xi, Xr, Xi]` of Gauss's products.
    kernel_width_dft: `[2 * hw, k]`, as image_width_dft for the kernel.
    kernel_height_dft: `[3 * lh, k * 2]`, to the right operands
      `[Wr, Wr + Wi, Wr - Wi]`.
    output_height_idft: `[oh * 2, 3 * lh]`, the products to the inverse
      DFT of `Y = X conj(W)` along the height, at the strided rows only.
    output_width_idft: `[ow, 2 * hw]`, that to the real output at the
      strided columns only, each half-spectrum column also counted for its
      conjugate.
    d_output_for_images: `[3 * lh, oh * 2]`, the output gradient after
      `output_width_idft.T` to the left operands `[dYr + dYi, dYi, dYr]` of
      the image gradient's products.
    d_output_for_kernel: `[3 * lh, oh * 2]`, likewise to the right
      operands `[dYr, dYr + dYi, dYr - dYi]` of the kernel gradient's.
    d_image_height: `[h * 2, 3 * lh]`, the image gradient's products to the
      gradient of the image's width DFT (then `image_width_dft.T`).
    d_kernel_height: `[k * 2, 3 * lh]`, the kernel gradient's products to
      the gradient of the kernel's width DFT (then `kernel_width_dft.T`).
  """
  height_frequencies: int
  width_frequencies: int
  out_height: int
  out_width: int
  image_width_dft: np.ndarray
  image_height_dft: np.ndarray
  kernel_width_dft: np.ndarray
  kernel_height_dft: np.ndarray
  output_height_idft: np.ndarray
  output_width_idft: np.ndarray
  d_output_for_images: np.ndarray
  d_output_for_kernel: np.ndarray
  d_image_height: np.ndarray
  d_kernel_height: np.ndarray

  @property
  def num_frequencies(self) -> int:
    """`f = lh * hw`, the frequency products batched."""
    return self.height_frequencies * self.width_frequencies


@functools.lru_cache(maxsize=None)
def _plan(height: int, width: int, *, kernel_size: int, stride: int,
          padding: str) -> _Plan:
  """The DFT matrices of a convolution's geometry, in float32.

  TensorFlow's convolution is a cross-correlation, so per frequency the
  output spectrum is `Y = X conj(W)`, summed over input channels. Gauss's
  three real products compute any `A conj(B)` from the operand stacks
  `[Ar + Ai, Ar, Ai]` and `[Br, Br + Bi, Br - Bi]`: their products
  `[s0, s1, s2]` give `real = s0 - s2` and `imag = s0 - s1`. The forward
  pass takes `A = X`, `B = W`; the kernel gradient `dW = X^T conj(dY)`
  takes `A = X^T` (the forward pass's image stack, transposed) and
  `B = dY`. The image gradient `dX = dY W^T` is `A conj(B)` with `A = dY`,
  `B = conj(W)^T`, whose stack `[Wr, Wr - Wi, Wr + Wi]^T` is the kernel
  stack with its last two swapped; the left stack swaps its last two
  instead, `[dYr + dYi, dYi, dYr]`, so the kernel stack serves as it is,
  and `s1` and `s2` trade places: `real = s0 - s1`, `imag = s0 - s2`.
  Each reading matrix below applies one such pair of differences and the
  next linear map in one: `M_r (s0 - s2) + M_i (s0 - s1)` is
  `[M_r + M_i, -M_i, -M_r]` on the stack.

  Every step is exact, so only float rounding tells the result from
  `tf.nn.conv2d`'s: with the DFT length of `_axis` the circular
  correlation is the linear one at every output read; the padding's zeros
  and the unread samples add nothing (`_dft_matrix`); Gauss's products are
  an identity; the inverse DFT holds at any position, so evaluating it at
  the strided outputs only loses nothing, and a real output is the real
  part of its half spectrum's sum with each conjugate pair counted twice;
  the gradient of a linear map is its transpose.
  """
  along_height = _axis(height, kernel_size=kernel_size, stride=stride,
                       padding=padding)
  along_width = _axis(width, kernel_size=kernel_size, stride=stride,
                      padding=padding)
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

  # The inverse DFT along the height at the strided rows: row o of a
  # complex Y times exp(+2 pi i stride o frequency / lh), from Yr and from
  # Yi to (o, part) pairs.
  angle_h = (2 * np.pi * stride * np.arange(along_height.out_size)[:, None] *
             np.arange(length_h)[None, :] / length_h)  # [oh, lh]
  cos_h, sin_h = np.cos(angle_h), np.sin(angle_h)
  from_real = np.stack([cos_h, sin_h], axis=1).reshape(-1, length_h)
  from_imag = np.stack([-sin_h, cos_h], axis=1).reshape(-1, length_h)

  # Along the width the real part at the strided columns, every frequency
  # but 0 (and an even length's last) twice for its conjugate; 1 / (lh lw)
  # is the inverse DFT's scale.
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
      # The output is from_real Yr + from_imag Yi along the height, so the
      # transposes take the output gradient's (o, part) pairs to dYr and
      # dYi, stacked for the product that reads them: [dYr + dYi, dYi, dYr],
      # A's stack with its last two swapped (see above), and
      # [dYr, dYr + dYi, dYr - dYi], B's for B = dY.
      d_output_for_images=np.concatenate(
          [from_real.T + from_imag.T, from_imag.T, from_real.T]),
      d_output_for_kernel=np.concatenate(
          [from_real.T, from_real.T + from_imag.T,
           from_real.T - from_imag.T]),
      # [s0, s1, s2] to dX = (s0 - s1) + i (s0 - s2) (the swapped stack),
      # then by the transposed height DFT.
      d_image_height=np.concatenate(
          [image_to_real.T + image_to_imag.T, -image_to_real.T,
           -image_to_imag.T], axis=1),
      # [s0, s1, s2] to dW = (s0 - s2) + i (s0 - s1), then likewise.
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
  """A separable linear map of 2D signals: along the width, then the height.

  Args:
    signal: `[height, width, n]`, n signals, float32 or bfloat16.
    width_map: `[2 * m, width]`, two parts of m outputs.
    height_map: `[r, height * 2]`, on (height, part) pairs.

  Returns:
    `[r, m * n]` in the signal's dtype.
  """
  by_width = tf.matmul(tf.cast(width_map, signal.dtype),
                       signal)                          # [height, 2 * m, n]
  return tf.matmul(tf.cast(height_map, signal.dtype),
                   tf.reshape(by_width, [height_map.shape[1], -1]))


def _height_then_width(spectrum: tf.Tensor, *, height_map: np.ndarray,
                       width_map: np.ndarray) -> tf.Tensor:
  """A separable linear map of 2D signals: along the height, then the width.

  Args:
    spectrum: `[r, m * n]`, float32 or bfloat16.
    height_map: `[height * 2, r]`, to (height, part) pairs.
    width_map: `[width, 2 * m]`, on two parts of m inputs.

  Returns:
    float32 `[height, width, n]`: the second stage runs in float32.
  """
  by_height = tf.matmul(tf.cast(height_map, spectrum.dtype),
                        spectrum)                       # [height * 2, m * n]
  by_height = tf.cast(by_height, tf.float32)
  return tf.matmul(width_map, tf.reshape(
      by_height, [height_map.shape[0] // 2, width_map.shape[1], -1]))


def _product_dtype(dtype: tf.DType) -> tf.DType:
  """The DFTs' and products' dtype: bfloat16 for bfloat16 inputs, else
  float32 (float16's range is too narrow for spectra, sums over images)."""
  return tf.bfloat16 if dtype == tf.bfloat16 else tf.float32


def conv2d(images: tf.Tensor, kernel: tf.Tensor, *, stride: int,
           padding: str) -> tf.Tensor:
  """`tf.nn.conv2d(images, kernel, stride, padding)` by the DFT.

  Everything runs in `_product_dtype` but the last stage of the inverse
  DFTs, float32. The gradients are the transposed maps: the same kinds of
  matrix products. The image stack is kept for the backward pass (for MNIST
  at batch 128, 75 MB); the kernel stack (150 MB) is made again there.

  Args:
    images: `[batch, height, width, in_channels]`, float32, bfloat16 or
      float16.
    kernel: `[k, k, in_channels, out_channels]`, same dtype.
    stride: convolution stride, the same along both axes.
    padding: 'SAME' or 'VALID'.

  Returns:
    `[batch, out_height, out_width, out_channels]` in the images' dtype.

  Raises:
    errors.ConfigError: for a padding other than SAME or VALID.
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

        # One product's operands and result at a time, for memory: the
        # kernel gradient's first, then the image stack is dead; the kernel
        # stack made again (150 MB for MNIST, not kept from the forward
        # pass) only after it, which also keeps grappler from merging the
        # two.
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
