"""Shifted MNIST and MultiMNIST as tfrecords, in the reference's layout.

Single digit (`shift_write_mnist`): every image is zero padded by `pad` and
written once per (row, column) shift in [-shift, shift], (2 * shift + 1)^2
records in all, to `{split}_{shift}shifted_mnist.tfrecords`.

MultiMNIST (`shift_write_multi_mnist`): every image, shifted at random, is
overlaid on num_pairs other images of a different digit (each shifted at
random too) by a pixelwise sum clipped at 255: the first epoch of
`canvas.MultiMnist` with the seed, the pairs that the input pipelines
generate on the fly from the same seed, in the same order. They go to the
shards `multi{split}_{shift}shifted_mnist.tfrecords-0000i-of-0000N` in that
order, max_shard records each (the last possibly fewer).

`mnist_shift` is the command line of these writers; `prepare` writes the
single-digit records with them when a run needs them.
"""

import itertools
from typing import Dict, Iterator, Sequence

import numpy as np
import tensorflow as tf

from input_data.mnist import canvas
from input_data import records

# Records built per step of the writers: bounds the memory of the shifted
# copies (a few tens of MB) while keeping numpy's work vectorised.
_CHUNK_RECORDS = 16384


def shifted_mnist_filename(split: str, *, shift: int,
                           multi_targets: bool = False) -> str:
  """Name of the record file (the shard prefix for MultiMNIST) of a split.

  The name holds the split exactly as given to --split, so the validation
  files are `valid_train_2shifted_mnist.tfrecords` and
  `valid_test_0shifted_mnist.tfrecords`, the names the reader opens.

  Args:
    split: one of `idx.SPLITS`.
    shift: the maximum shift.
    multi_targets: MultiMNIST (prefixes 'multi').

  Returns:
    A file name without directory.
  """
  name = '{}_{}shifted_mnist.tfrecords'.format(split, shift)
  return 'multi' + name if multi_targets else name


def all_shifts(shift: int) -> np.ndarray:
  """Every (row, column) shift in [-shift, shift], row-major.

  Args:
    shift: the maximum shift.

  Returns:
    int `[(2 * shift + 1)^2, 2]`, from (-shift, -shift) to (shift, shift)
    with the column shift varying fastest, the order of the records.
  """
  steps = np.arange(-shift, shift + 1)
  rows, cols = np.meshgrid(steps, steps, indexing='ij')
  return np.stack([rows.ravel(), cols.ravel()], axis=1)


def shift_2d(image: np.ndarray, *, shift: Sequence[int],
             max_shift: int) -> np.ndarray:
  """Shifts one 2D image by (row, column) `shift`, as the reference did.

  A shift of (1, -2) moves the content one row down and two columns left.

  Args:
    image: `[h, h]`.
    shift: (row, column) shift, each in [-max_shift, max_shift].
    max_shift: bound of the shift.

  Returns:
    `[h, h]`, zero filled.
  """
  shifts = tf.constant([shift], tf.int32)
  return canvas.place(tf.constant(image)[None], shifts, pad=0,
                      shift=max_shift)[0].numpy()


def _int64(value: int) -> tf.train.Feature:
  return records.int64_feature([value])


def _size_features(image_size: int) -> Dict[str, tf.train.Feature]:
  return {
      'height': _int64(image_size),
      'width': _int64(image_size),
      'depth': _int64(1),
  }


def single_example(image: np.ndarray, *, label: int) -> bytes:
  """Serializes one digit in the reference's layout.

  Args:
    image: uint8 `[size, size]`.
    label: the digit.

  Returns:
    A serialized tf.train.Example with height, width, depth, label and
    image_raw.
  """
  feature = _size_features(image.shape[0])
  feature['label'] = _int64(int(label))
  feature['image_raw'] = records.bytes_feature(image.tobytes())
  example = tf.train.Example(features=tf.train.Features(feature=feature))
  return example.SerializeToString(deterministic=True)


def multi_example(merged: np.ndarray, *, image_1: np.ndarray, label_1: int,
                  image_2: np.ndarray, label_2: int) -> bytes:
  """Serializes one MultiMNIST pair in the reference's layout.

  Args:
    merged: uint8 `[size, size]`, the clipped sum of both digits.
    image_1: uint8 `[size, size]`, the base digit (shifted).
    label_1: its digit.
    image_2: uint8 `[size, size]`, the overlaid digit (shifted).
    label_2: its digit.

  Returns:
    A serialized tf.train.Example with height, width, depth, label_1,
    label_2, image_raw_1, image_raw_2 and merged_raw.
  """
  feature = _size_features(merged.shape[0])
  feature['label_1'] = _int64(int(label_1))
  feature['label_2'] = _int64(int(label_2))
  feature['image_raw_1'] = records.bytes_feature(image_1.tobytes())
  feature['image_raw_2'] = records.bytes_feature(image_2.tobytes())
  feature['merged_raw'] = records.bytes_feature(merged.tobytes())
  example = tf.train.Example(features=tf.train.Features(feature=feature))
  return example.SerializeToString(deterministic=True)


def shift_write_mnist(images: np.ndarray, *, labels: np.ndarray,
                      filename: str, shift: int, pad: int) -> int:
  """Writes every shifted copy of every padded image to one record file.

  Records come image by image, each image's copies in `all_shifts` order.

  Args:
    images: uint8 `[num_images, 28, 28]`.
    labels: `[num_images]`.
    filename: the record file to write.
    shift: the maximum shift.
    pad: zero padding on every side, before shifting.

  Returns:
    The number of records written, num_images * (2 * shift + 1)^2.
  """
  shifts = all_shifts(shift).astype(np.int32)
  chunk = max(1, _CHUNK_RECORDS // len(shifts))
  count = 0
  with tf.io.TFRecordWriter(filename) as writer:
    for start in range(0, len(images), chunk):
      digits = images[start:start + chunk]
      copies = canvas.place(  # [chunk * k, h, w], image by image
          np.repeat(digits, len(shifts), axis=0),
          np.tile(shifts, (len(digits), 1)), pad=pad, shift=shift).numpy()
      for image, label in zip(copies, np.repeat(labels[start:start + chunk],
                                                len(shifts))):
        writer.write(single_example(image, label=label))
        count += 1
  return count


def _num_shards(num_records: int, max_shard: int) -> int:
  """The fewest shards of at most max_shard records that hold num_records."""
  return -(-num_records // max_shard)


def _multi_records(generator: canvas.MultiMnist) -> Iterator[bytes]:
  """Serialized pairs of the generator's first epoch, in its order."""
  for round_index in range(generator.num_pairs):
    plan = generator.plan(round_index)
    for start in range(0, generator.num_images, _CHUNK_RECORDS):
      rows = canvas.PairPlan(*(column[start:start + _CHUNK_RECORDS]
                               for column in plan))
      pairs = [array.numpy() for array in generator.compose(rows)]
      for label_1, image_1, label_2, image_2, merged in zip(*pairs):
        yield multi_example(merged, image_1=image_1, label_1=label_1,
                            image_2=image_2, label_2=label_2)


def shift_write_multi_mnist(images: np.ndarray, *, labels: np.ndarray,
                            file_prefix: str, shift: int, pad: int,
                            max_shard: int, num_pairs: int,
                            seed: int) -> Sequence[str]:
  """Writes num_pairs MultiMNIST pairs per image to shards.

  The pairs are the first epoch of `canvas.MultiMnist` with this seed, the
  stream that `generated_input.multi_mnist_inputs` makes for training: the
  same pairs in the same order, shard after shard, max_shard in each (the
  last possibly fewer), so that reading the shards in order gives the
  generated stream. (The reference put each pair in a random shard; the
  stream is in a random order already.)

  Args:
    images: uint8 `[num_images, 28, 28]`.
    labels: `[num_images]`.
    file_prefix: path of the sharded file without the shard suffix.
    shift: the maximum shift.
    pad: zero padding on every side, before shifting.
    max_shard: the most records per shard.
    num_pairs: records per image.
    seed: seed (>= 0) of the draws; the same seed writes the same files.

  Returns:
    The shard paths written.

  Raises:
    errors.ConfigError: see `canvas.MultiMnist`.
  """
  generator = canvas.MultiMnist(images, labels, shift=shift, pad=pad,
                                num_pairs=num_pairs, seed=seed)
  filenames = records.sharded_filenames(
      file_prefix, _num_shards(len(images) * num_pairs, max_shard))
  examples = _multi_records(generator)
  for filename in filenames:
    with tf.io.TFRecordWriter(filename) as writer:
      for example in itertools.islice(examples, max_shard):
        writer.write(example)
  return filenames
