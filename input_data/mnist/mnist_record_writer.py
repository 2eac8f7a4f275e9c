"""Shifted MNIST and MultiMNIST as tfrecords, in the reference's layout.

Single digit (`shift_write_mnist`): every image is zero padded by `pad` and
written once per (row, column) shift in [-shift, shift], (2 * shift + 1)^2
records in all, to `{split}_{shift}shifted_mnist.tfrecords`.

MultiMNIST (`shift_write_multi_mnist`): the first epoch of `canvas.MultiMnist`
with the seed, in order, to the shards
`multi{split}_{shift}shifted_mnist.tfrecords-0000i-of-0000N`, max_shard
records each (the last possibly fewer).

`mnist_shift` is the command line of these writers; `dataset.write_records`
writes the single-digit records with them when a run needs them.
"""

import itertools
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

import files
from input_data.mnist import canvas
from input_data import records
import progress

# Records built per step of the writers: bounds the memory of the shifted
# copies (a few tens of MB) while keeping numpy's work vectorised.
_CHUNK_RECORDS = 16384


def shifted_mnist_filename(split: str, *, shift: int,
                           multi_targets: bool = False) -> str:
  """The file name (MultiMNIST: shard prefix) of a split of `idx.SPLITS`.

  The name holds the split exactly as given to --split, so the validation
  files are `valid_train_2shifted_mnist.tfrecords` and
  `valid_test_0shifted_mnist.tfrecords`, the names the reader opens.
  """
  name = '{}_{}shifted_mnist.tfrecords'.format(split, shift)
  return 'multi' + name if multi_targets else name


def all_shifts(shift: int) -> np.ndarray:
  """int `[(2 * shift + 1)^2, 2]`, every (row, column) shift, row-major."""
  steps = np.arange(-shift, shift + 1)
  rows, cols = np.meshgrid(steps, steps, indexing='ij')
  return np.stack([rows.ravel(), cols.ravel()], axis=1)


def shift_2d(image: np.ndarray, *, shift: Sequence[int],
             max_shift: int) -> np.ndarray:
  """An `[h, h]` image shifted as the reference did (see `canvas`)."""
  shifts = tf.constant([shift], tf.int32)
  return canvas.place(tf.constant(image)[None], shifts, pad=0,
                      shift=max_shift)[0].numpy()


def single_example(image: np.ndarray, *, label: int) -> bytes:
  """One uint8 digit `[size, size]` in the reference's layout."""
  return records.serialize(dict(height=image.shape[0], width=image.shape[1],
                                depth=1, label=label,
                                image_raw=image.tobytes()))


def multi_example(merged: np.ndarray, *, image_1: np.ndarray, label_1: int,
                  image_2: np.ndarray, label_2: int) -> bytes:
  """One MultiMNIST pair: the shifted digits and merged, their clipped sum."""
  return records.serialize(dict(
      height=merged.shape[0], width=merged.shape[1], depth=1, label_1=label_1,
      label_2=label_2, image_raw_1=image_1.tobytes(),
      image_raw_2=image_2.tobytes(), merged_raw=merged.tobytes()))


def shifted_examples(images: np.ndarray, *, labels: np.ndarray, shift: int,
                     pad: int) -> Iterator[bytes]:
  """The shifted copies (module doc), serialized, each in `all_shifts` order."""
  shifts = all_shifts(shift).astype(np.int32)
  chunk = max(1, _CHUNK_RECORDS // len(shifts))
  for start in range(0, len(images), chunk):
    digits = images[start:start + chunk]
    copies = canvas.place(  # [chunk * k, h, w], image by image
        np.repeat(digits, len(shifts), axis=0),
        np.tile(shifts, (len(digits), 1)), pad=pad, shift=shift).numpy()
    for image, label in zip(copies, np.repeat(labels[start:start + chunk],
                                              len(shifts))):
      yield single_example(image, label=label)


def shift_write_mnist(images: np.ndarray, *, labels: np.ndarray,
                      filename: str, shift: int, pad: int) -> int:
  """Writes `shifted_examples` to filename; their count."""
  return records.write_tfrecords(filename, shifted_examples(
      images, labels=labels, shift=shift, pad=pad))


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
  """Writes the pairs (module doc) to the shards of file_prefix; their paths.

  Reading the shards in order gives the stream that
  `generated_input.multi_mnist_inputs` makes for training. (The reference
  put each pair in a random shard; the stream is in a random order already.)
  Arguments as `canvas.MultiMnist`.
  """
  generator = canvas.MultiMnist(images, labels, shift=shift, pad=pad,
                                num_pairs=num_pairs, seed=seed)
  filenames = records.sharded_filenames(
      file_prefix, -(-len(images) * num_pairs // max_shard))  # rounded up
  examples = progress.Progress('Writing', total=len(images) * num_pairs,
                               unit='pairs').each(_multi_records(generator))
  for filename in filenames:
    files.write_atomically(filename, lambda temp: records.write_tfrecords(
        temp, itertools.islice(examples, max_shard)))
  return filenames
