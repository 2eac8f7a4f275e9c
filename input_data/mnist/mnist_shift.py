"""Writes shifted MNIST and MultiMNIST tfrecords from the MNIST idx files.

Single digit: every image is zero padded by --pad and written once per
(row, column) shift in [-shift, shift], (2 * shift + 1)^2 records in all, to
`{split}_{shift}shifted_mnist.tfrecords`.

MultiMNIST (--multi_targets): every image, shifted at random, is overlaid on
--num_pairs other images of a different digit (each shifted at random too) by
a pixelwise sum clipped at 255: the first epoch of `canvas.MultiMnist` with
--seed, the pairs that the input pipelines generate on the fly from the same
seed, in the same order. They go to the shards
`multi{split}_{shift}shifted_mnist.tfrecords-0000i-of-0000N` in that order,
--max_shard records each (the last possibly fewer).

The splits: train and test are the whole idx files; valid_train is the
training images from index 10000 on and valid_test the first 10000. The
image count comes from the idx header, so smaller files work too.

Usage (the records go to --output_dir, by default --data_dir):
  python -m input_data.mnist.mnist_shift --data_dir=DIR --split=train --shift=2
  python -m input_data.mnist.mnist_shift --data_dir=DIR --split=test --shift=0
  python -m input_data.mnist.mnist_shift --data_dir=DIR --split=test \
      --shift=6 --pad=4 --multi_targets --num_pairs=1000 --max_shard=100000
"""

import itertools
import os
from typing import BinaryIO, Dict, Iterator, Optional, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from input_data import records
from input_data.mnist import canvas

FLAGS = flags.FLAGS

MAX_PIXEL = 255
# First rows of the training images held out by the validation splits.
VALIDATION_SIZE = 10000
SPLITS = ('train', 'test', 'valid_train', 'valid_test')
# Magic numbers of the idx headers: unsigned bytes (0x08) in 3 or 1 dims.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_IDX_HEADER_WORD_BYTES = 4

MNIST_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'valid_train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'valid_test': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
# Image index ranges [start, end) of each split; None: to the end of the file.
MNIST_RANGE = {
    'train': (0, None),
    'valid_train': (VALIDATION_SIZE, None),
    'valid_test': (0, VALIDATION_SIZE),
    'test': (0, None),
}
TFDS_SPLITS = {
    'train': 'train',
    'valid_train': 'train',
    'valid_test': 'train',
    'test': 'test',
}
MNIST_URL = 'https://storage.googleapis.com/cvdf-datasets/mnist/'

# Records built per step of the writers: bounds the memory of the shifted
# copies (a few tens of MB) while keeping numpy's work vectorised.
_CHUNK_RECORDS = 16384
_TFDS_READ_BATCH = 10000


def shifted_mnist_filename(split: str, shift: int,
                           multi_targets: bool = False) -> str:
  """Name of the record file (the shard prefix for MultiMNIST) of a split.

  The name holds the split exactly as given to --split, so the validation
  files are `valid_train_2shifted_mnist.tfrecords` and
  `valid_test_0shifted_mnist.tfrecords`, the names the reader opens.

  Args:
    split: one of SPLITS.
    shift: the maximum shift.
    multi_targets: MultiMNIST (prefixes 'multi').

  Returns:
    A file name without directory.
  """
  name = '{}_{}shifted_mnist.tfrecords'.format(split, shift)
  return 'multi' + name if multi_targets else name


def parse_idx(data: bytes, expected_magic: int, name: str) -> np.ndarray:
  """Decodes an idx file (big-endian header, then unsigned bytes).

  Args:
    data: the file's bytes.
    expected_magic: IMAGES_MAGIC or LABELS_MAGIC.
    name: the file's name, for error messages.

  Returns:
    uint8 array shaped by the header, e.g. `[num_images, 28, 28]`.

  Raises:
    ValueError: on a wrong magic number or a file shorter than its header
      says.
  """
  word = _IDX_HEADER_WORD_BYTES
  magic = int.from_bytes(data[:word], 'big')
  if magic != expected_magic:
    raise ValueError(
        f'{name} is not an MNIST idx file of the expected kind: magic number '
        f'{magic:#010x}, expected {expected_magic:#010x}')
  num_dims = magic & 0xff  # the magic's last byte counts the dimensions
  header_size = word * (1 + num_dims)
  shape = tuple(int.from_bytes(data[word * (1 + i):word * (2 + i)], 'big')
                for i in range(num_dims))
  size = int(np.prod(shape))
  if len(data) < header_size + size:
    raise ValueError(
        f'{name} is truncated: the header announces {shape} '
        f'({size} bytes), the file holds {len(data) - header_size}')
  return np.frombuffer(data, np.uint8, size, header_size).reshape(shape)


def select_split(images: np.ndarray, labels: np.ndarray,
                 split: str) -> Tuple[np.ndarray, np.ndarray]:
  """Returns the images and labels of a split's index range.

  Args:
    images: uint8 `[num_images, 28, 28]`, the whole train or test file.
    labels: uint8 `[num_images]`.
    split: one of SPLITS.

  Returns:
    The split's images and labels.

  Raises:
    ValueError: if counts disagree or a validation split would be empty.
  """
  if len(images) != len(labels):
    raise ValueError(
        f'{len(images)} images but {len(labels)} labels for split {split}')
  start, end = MNIST_RANGE[split]
  if split.startswith('valid') and len(images) <= VALIDATION_SIZE:
    raise ValueError(
        f'the validation splits need more than {VALIDATION_SIZE} training '
        f'images, found {len(images)}')
  return images[start:end], labels[start:end]


def _open_idx(data_dir: str, name: str) -> BinaryIO:
  """Opens the idx file `name` (or `name.gz`) in data_dir."""
  return records.open_maybe_gzipped(
      os.path.join(data_dir, name),
      f'wget -P {data_dir} {MNIST_URL}{name}.gz   (or pass --source=tfds)')


def read_byte_data(data_dir: str,
                   split: str) -> Tuple[np.ndarray, np.ndarray]:
  """Reads a split from the MNIST idx files (gzipped or not) in data_dir.

  Args:
    data_dir: directory of the idx files.
    split: one of SPLITS.

  Returns:
    uint8 images `[num_images, 28, 28]` and uint8 labels `[num_images]`.
  """
  image_name, label_name = MNIST_FILES[split]
  with _open_idx(data_dir, image_name) as f:
    images = parse_idx(f.read(), IMAGES_MAGIC, image_name)
  with _open_idx(data_dir, label_name) as f:
    labels = parse_idx(f.read(), LABELS_MAGIC, label_name)
  return select_split(images, labels, split)


def read_tfds_data(split: str, tfds_data_dir: Optional[str] = None
                  ) -> Tuple[np.ndarray, np.ndarray]:
  """Reads a split from tensorflow-datasets' mnist.

  The validation ranges index tensorflow-datasets' stored order, which is not
  the order of the idx files.

  Args:
    split: one of SPLITS.
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).

  Returns:
    uint8 images `[num_images, 28, 28]` and uint8 labels `[num_images]`.
  """
  dataset = records.load_tfds('mnist', TFDS_SPLITS[split], tfds_data_dir)
  images, labels = [], []
  for batch in dataset.batch(_TFDS_READ_BATCH).as_numpy_iterator():
    images.append(batch['image'][..., 0])
    labels.append(batch['label'].astype(np.uint8))
  return select_split(np.concatenate(images), np.concatenate(labels), split)


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


def shift_2d(image: np.ndarray, shift: Sequence[int],
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


def single_example(image: np.ndarray, label: int) -> bytes:
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


def multi_example(image_1: np.ndarray, label_1: int, image_2: np.ndarray,
                  label_2: int, merged: np.ndarray) -> bytes:
  """Serializes one MultiMNIST pair in the reference's layout.

  Args:
    image_1: uint8 `[size, size]`, the base digit (shifted).
    label_1: its digit.
    image_2: uint8 `[size, size]`, the overlaid digit (shifted).
    label_2: its digit.
    merged: uint8 `[size, size]`, the clipped sum of both.

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


def shift_write_mnist(images: np.ndarray, labels: np.ndarray, filename: str,
                      shift: int, pad: int) -> int:
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
        writer.write(single_example(image, label))
        count += 1
  return count


def num_shards(num_records: int, max_shard: int) -> int:
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
        yield multi_example(image_1, label_1, image_2, label_2, merged)


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
    ValueError: see `canvas.MultiMnist`.
  """
  generator = canvas.MultiMnist(images, labels, shift=shift, pad=pad,
                                num_pairs=num_pairs, seed=seed)
  filenames = records.sharded_filenames(
      file_prefix, num_shards(len(images) * num_pairs, max_shard))
  examples = _multi_records(generator)
  for filename in filenames:
    with tf.io.TFRecordWriter(filename) as writer:
      for example in itertools.islice(examples, max_shard):
        writer.write(example)
  return filenames


def _define_flags() -> None:
  """Defines the tool's flags.

  Only when run as a script: experiment.py defines a --data_dir too, and
  absl refuses a flag defined twice in one process (e.g. one pytest run).
  """
  flags.DEFINE_string('data_dir', '/tmp/tensorflow/mnist/input_data',
                      'Directory of the MNIST idx files (gzipped or not).')
  flags.DEFINE_string('output_dir', None,
                      'Directory for the records; default: --data_dir.')
  flags.DEFINE_enum('source', 'idx', ['idx', 'tfds'],
                    'Read the idx files in --data_dir, or '
                    'tensorflow-datasets\' mnist.')
  flags.DEFINE_string('tfds_data_dir', None,
                      'tensorflow-datasets\' data directory for '
                      '--source=tfds; default ~/tensorflow_datasets.')
  flags.DEFINE_integer('shift', 2, 'Maximum shift range.', lower_bound=0)
  flags.DEFINE_integer('pad', 0, 'Padding size.', lower_bound=0)
  flags.DEFINE_boolean('multi_targets', False,
                       'If set generate multi digit MNIST.')
  flags.DEFINE_integer('max_shard', 0,
                       'Maximum number of examples in each file.',
                       lower_bound=0)
  flags.DEFINE_integer('num_pairs', 0,
                       'Number of generated pairs for each image.',
                       lower_bound=0)
  flags.DEFINE_enum('split', 'train', list(SPLITS),
                    'The split of data to process.')
  flags.DEFINE_integer('seed', 0,
                       'Seed of the MultiMNIST draws; the input pipelines '
                       '(input_data.datasets) generate the same pairs from '
                       'the same seed.', lower_bound=0)
  flags.register_multi_flags_validator(
      ['multi_targets', 'num_pairs', 'max_shard'],
      lambda f: not f['multi_targets'] or (f['num_pairs'] > 0 and
                                           f['max_shard'] > 0),
      message='--multi_targets needs --num_pairs > 0 and --max_shard > 0')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.source == 'tfds':
    images, labels = read_tfds_data(FLAGS.split, FLAGS.tfds_data_dir)
  else:
    images, labels = read_byte_data(FLAGS.data_dir, FLAGS.split)
  output_dir = FLAGS.output_dir or FLAGS.data_dir
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(output_dir, shifted_mnist_filename(
      FLAGS.split, FLAGS.shift, FLAGS.multi_targets))
  if FLAGS.multi_targets:
    written = shift_write_multi_mnist(
        images, labels=labels, file_prefix=path, shift=FLAGS.shift,
        pad=FLAGS.pad, max_shard=FLAGS.max_shard, num_pairs=FLAGS.num_pairs,
        seed=FLAGS.seed)
    logging.info('Wrote %d pairs to %s', len(images) * FLAGS.num_pairs,
                 f'{path}@{len(written)}')
  else:
    count = shift_write_mnist(images, labels, path, FLAGS.shift, FLAGS.pad)
    logging.info('Wrote %d records to %s', count, path)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
