"""Tests for the Fourier convolution: tf.nn.conv2d's numbers, by the DFT."""

import numpy as np
import tensorflow as tf

import errors
from layers import fourier


class FourierTest(tf.test.TestCase):

  def testConv2dMatchesTensorFlow(self):
    """tf.nn.conv2d's values and gradients, SAME and VALID, strides 1, 2."""
    # Odd and even DFT lengths, padding before the image, unread rows, and
    # the MNIST primary capsules' 20x20 image and 9x9 kernel.
    for shape, kernel_size in (((2, 7, 6, 3), 3), ((2, 8, 9, 3), 4),
                               ((1, 20, 20, 2), 9)):
      images = tf.random.normal(shape)
      kernel = tf.random.normal((kernel_size, kernel_size, shape[3], 5))
      for padding in ('SAME', 'VALID'):
        for stride in (1, 2):
          with tf.GradientTape(persistent=True) as tape:
            tape.watch([images, kernel])
            expected = tf.nn.conv2d(images, kernel, stride, padding)
            output = fourier.conv2d(images, kernel, stride=stride,
                                    padding=padding)
            weights = tf.random.normal(expected.shape, seed=1)
            expected_loss = tf.reduce_sum(expected * weights)
            loss = tf.reduce_sum(output * weights)
          message = f'{shape} {kernel_size} {padding} {stride}'
          self.assertEqual(output.shape, expected.shape, msg=message)
          self.assertAllClose(output, expected, rtol=1e-5, atol=1e-5,
                              msg=message)
          for wrt in (images, kernel):
            self.assertAllClose(tape.gradient(loss, wrt),
                                tape.gradient(expected_loss, wrt), rtol=1e-5,
                                atol=1e-4, msg=message)

  def testDftMatrixIsNumpysFft(self):
    """The DFT of a signal placed at an offset, as NumPy's zero-padded FFT."""
    signal = np.random.RandomState(0).normal(size=5)
    real, imag = fourier._dft_matrix(5, length=9, offset=2, half=True)
    padded = np.zeros(9)
    padded[2:7] = signal
    self.assertAllClose(real @ signal + 1j * (imag @ signal),
                        np.fft.rfft(padded))
    # VALID's unread samples past the length weigh nothing.
    real, _ = fourier._dft_matrix(5, length=4, offset=0, half=False)
    self.assertAllEqual(real[:, 4], np.zeros(4))

  def testOperandStacksAreTheSpectra(self):
    """The plan's stacks hold Gauss's operands of NumPy's 2D spectra."""
    random = np.random.RandomState(1)
    image, kernel = random.normal(size=(7, 6)), random.normal(size=(3, 3))
    # SAME, stride 2: 4 x 3 outputs, lengths 9 and 7, one zero row before.
    plan = fourier._plan(7, 6, kernel_size=3, stride=2, padding='SAME')
    padded_image, padded_kernel = np.zeros((9, 7)), np.zeros((9, 7))
    padded_image[1:8, 0:6] = image
    padded_kernel[:3, :3] = kernel

    def stack(signal, width_map, height_map):  # [3, lh, hw]
      spectrum = fourier._width_then_height(
          tf.constant(signal[:, :, None]), width_map=width_map,
          height_map=height_map)
      return np.reshape(spectrum, (3, 9, 4))

    x = np.fft.rfft2(padded_image)
    w = np.fft.rfft2(padded_kernel)
    # float32 matrices: 2^-24 relative, times sums of a few dozen terms.
    self.assertAllClose(
        stack(image, plan.image_width_dft, plan.image_height_dft),
        [x.real + x.imag, x.real, x.imag], atol=1e-5)
    self.assertAllClose(
        stack(kernel, plan.kernel_width_dft, plan.kernel_height_dft),
        [w.real, w.real + w.imag, w.real - w.imag], atol=1e-5)

  def testGeometry(self):
    # MNIST's primary capsules: 20x20 -> 6x6, the last row and column
    # unread; 19 x 10 frequencies.
    self.assertEqual(
        fourier._axis(20, kernel_size=9, stride=2, padding='VALID'),
        fourier._Axis(out_size=6, pad_before=0, dft_length=19))
    plan = fourier._plan(20, 20, kernel_size=9, stride=2, padding='VALID')
    self.assertEqual(plan.num_frequencies, 190)
    # CIFAR10's: 24x24 SAME -> 12x12, 3 zero rows before the image.
    self.assertEqual(
        fourier._axis(24, kernel_size=9, stride=2, padding='SAME'),
        fourier._Axis(out_size=12, pad_before=3, dft_length=31))
    with self.assertRaisesRegex(errors.ConfigError, 'use SAME or VALID'):
      fourier._axis(24, kernel_size=9, stride=2, padding='FULL')

  def testConv2dInNarrowDtypes(self):
    """bfloat16 runs in bfloat16; float16's spectra are multiplied float32."""
    images = tf.random.normal((2, 11, 11, 8))
    kernel = tf.random.normal((5, 5, 8, 6))
    weights = tf.random.normal((2, 4, 4, 6))

    def output_and_gradient(dtype):
      cast = tf.cast(images, dtype)
      with tf.GradientTape() as tape:
        tape.watch(cast)
        output = fourier.conv2d(cast, tf.cast(kernel, dtype), stride=2,
                                padding='VALID')
        loss = tf.reduce_sum(tf.cast(output, tf.float32) * weights)
      return output, tape.gradient(loss, cast)

    expected = output_and_gradient(tf.float32)
    # Relative to the whole tensor: bfloat16 keeps 8 bits of mantissa
    # (2^-9 per rounding), float16 11. Rounding only the inputs and outputs
    # to bfloat16 costs 3e-3 here (7e-3 measured with the DFTs and products
    # in bfloat16), so the lower bound shows that they ran in bfloat16;
    # float16's error is its inputs' (4e-4).
    for dtype, low, high in ((tf.bfloat16, 4.5e-3, 2e-2),
                             (tf.float16, 5e-5, 2e-3)):
      for value, reference in zip(output_and_gradient(dtype), expected):
        self.assertEqual(value.dtype, dtype)
        error = float(tf.norm(tf.cast(value, tf.float32) - reference) /
                      tf.norm(reference))
        self.assertBetween(error, low, high, msg=dtype.name)


if __name__ == '__main__':
  tf.test.main()
